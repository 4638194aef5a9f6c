//! The stderr side of the tools: warnings and errors as they come, counted
//! (so a walk that met a bad path still finishes and still fails), the
//! summary line, and the progress counters a binary may draw.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::progress::Progress;

/// Bold red, for `error:`.
pub const RED: &str = "\x1b[1;31m";
/// Bold yellow, for `warning:`.
pub const YELLOW: &str = "\x1b[1;33m";

/// `text` in `color` (an ANSI SGR sequence such as [`RED`]) when `on`.
pub fn label(text: &str, color: &str, on: bool) -> String {
    if on {
        format!("{color}{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `n` and the noun that goes with it: `1 upload`, `2 uploads`, `0 uploads`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The human side on stderr: warnings and errors as they come, counted, so
/// a run that met a bad path still finishes and still exits non-zero.
pub struct Messages {
    tool: &'static str,
    errors: AtomicU64,
    warnings: AtomicU64,
    quiet: bool,
    /// Whether [`Messages::summary`] prints (by default: unless quiet).
    summary: bool,
    /// Counts, prints nothing (a second look whose messages were said once).
    muted: bool,
    /// Colors the `error:` and `warning:` labels (`--color`).
    color: bool,
    /// What the walks have done so far, for a live line on a terminal.
    progress: Arc<Progress>,
}

impl Messages {
    pub fn new(tool: &'static str, quiet: bool) -> Messages {
        Messages {
            tool,
            errors: AtomicU64::new(0),
            warnings: AtomicU64::new(0),
            quiet,
            summary: !quiet,
            muted: false,
            color: false,
            progress: Arc::default(),
        }
    }

    /// Colors the `error:` and `warning:` labels (stderr is a terminal, or
    /// `--color always`).
    pub fn colored(mut self, on: bool) -> Messages {
        self.color = on;
        self
    }

    /// Prints the summary only when `show` (and never when quiet): reg-ls,
    /// reg-refs and reg-orphans print it on a terminal or with `--stats`.
    pub fn summary_when(mut self, show: bool) -> Messages {
        self.summary = show && !self.quiet;
        self
    }

    /// The counters the walks bump; a binary may draw them.
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// Messages that are counted but not printed.
    pub fn muted(tool: &'static str) -> Messages {
        Messages {
            muted: true,
            ..Messages::new(tool, true)
        }
    }

    /// Messages that are counted but not printed, whose walks still bump
    /// this one's progress counters: a second look, said once already,
    /// that the live line still shows.
    pub fn muted_sharing_progress(&self) -> Messages {
        Messages {
            progress: Arc::clone(&self.progress),
            ..Messages::muted(self.tool)
        }
    }

    /// Reports a problem that makes the run fail in the end.
    pub fn error(&self, msg: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if !self.muted {
            let label = label("error:", RED, self.color);
            self.progress.eprintln(&format!("{}: {label} {msg}", self.tool));
        }
    }

    /// Reports a storage problem: a warning if [`crate::Error::is_warning`]
    /// says it stops nothing, an error otherwise.
    pub fn problem(&self, e: crate::Error) {
        if e.is_warning() {
            self.warn(e);
        } else {
            self.error(e);
        }
    }

    /// Reports a problem that does not change the exit status.
    pub fn warn(&self, msg: impl std::fmt::Display) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
        if !self.muted {
            let label = label("warning:", YELLOW, self.color);
            self.progress.eprintln(&format!("{}: {label} {msg}", self.tool));
        }
    }

    /// A hint for people, unless `-q`: why a run found nothing, say.
    pub fn hint(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            self.note(msg);
        }
    }

    /// A note for people (not counted), e.g. the cache reminder.
    pub fn note(&self, msg: impl std::fmt::Display) {
        if !self.muted {
            self.progress.eprintln(&format!("{}: {msg}", self.tool));
        }
    }

    /// The tool's name, as messages start with it.
    pub fn tool(&self) -> &'static str {
        self.tool
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn warnings(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }

    /// Prints the one-line summary unless `-q` (or [`Messages::summary_when`]
    /// said not to). Call it only once the run is done: a run cut short (a
    /// closed stdout) returns an error before it.
    pub fn summary(&self, line: impl std::fmt::Display) {
        if self.summary {
            let mut extra = String::new();
            if self.errors() > 0 {
                extra.push_str(&format!(", {}", count(self.errors(), "error", "errors")));
            }
            if self.warnings() > 0 {
                extra.push_str(&format!(", {}", count(self.warnings(), "warning", "warnings")));
            }
            self.progress.eprintln(&format!("{}: {line}{extra}", self.tool));
        }
    }

    /// Whether progress may be shown (stderr is a terminal).
    pub fn progress_enabled(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_in_words_and_labels_in_color() {
        assert_eq!(count(1, "upload", "uploads"), "1 upload");
        assert_eq!(count(0, "upload", "uploads"), "0 uploads");
        assert_eq!(count(2, "repository", "repositories"), "2 repositories");
        assert_eq!(label("error:", RED, false), "error:");
        assert_eq!(label("error:", RED, true), "\x1b[1;31merror:\x1b[0m");
    }
}
