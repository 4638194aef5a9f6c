//! The live progress line: on a terminal (and without `-q`), one line on
//! stderr with what is being walked, the counts so far and the rate, drawn
//! by `indicatif` from the counters of [`reg_core::progress::Progress`].
//! Nothing is drawn when stderr is not a terminal. Messages printed while
//! the line is up go above it (through the progress printer hook).
//!
//! The line appears only once a walk names its phase: reg-orphans and reg-rm
//! wait for their whole stdin first, and a line of theirs drawn meanwhile
//! would fight with the one of the tool before them in the pipeline.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use reg_core::layout::Store;
use reg_core::messages::Messages;
use reg_core::progress::{Progress, Snapshot};
use reg_core::storage::Requests;

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(120);

/// A drawn progress line; cleared when finished or dropped (an error too).
pub struct Live {
    bar: Option<ProgressBar>,
    /// Set (under the lock) once finished: the line is never shown after.
    done: Arc<Mutex<bool>>,
}

impl Live {
    /// Starts the line for `tool` when `msgs` allows progress (stderr is a
    /// terminal, not `-q`); otherwise does nothing.
    pub fn start(tool: &'static str, msgs: &Messages) -> Live {
        Live::start_counting(tool, msgs, None)
    }

    /// [`Live::start`], the line also counting the requests sent to
    /// `store` when it is remote (object storage: most of the time goes
    /// to listing, before any repository or blob is counted).
    pub fn start_for(tool: &'static str, msgs: &Messages, store: &Store) -> Live {
        Live::start_counting(tool, msgs, store.request_counts())
    }

    fn start_counting(tool: &'static str, msgs: &Messages, requests: Option<Arc<Requests>>) -> Live {
        let done = Arc::new(Mutex::new(false));
        if !msgs.progress_enabled() {
            return Live { bar: None, done };
        }
        let counters: Arc<Progress> = Arc::clone(msgs.progress());
        let style = ProgressStyle::with_template("{prefix}: {spinner} {counts} [{elapsed}]")
            .expect("a valid template")
            .with_key("counts", move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&line(&counters.snapshot(), s.elapsed()));
                if let Some(r) = &requests {
                    let _ = write!(w, ", {} requests", r.total());
                }
            });
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(style);
        bar.set_prefix(tool);
        let above = bar.clone();
        msgs.progress()
            .set_printer(Box::new(move |text: &str| above.suspend(|| eprintln!("{text}"))));
        // Shows the line once a phase is named, unless finished by then.
        let (shown, counters, until) = (bar.clone(), Arc::clone(msgs.progress()), Arc::clone(&done));
        std::thread::spawn(move || loop {
            std::thread::sleep(TICK / 2);
            let Ok(done) = until.lock() else { return };
            if *done {
                return;
            }
            if !counters.snapshot().phase.is_empty() {
                shown.set_draw_target(ProgressDrawTarget::stderr());
                shown.enable_steady_tick(TICK);
                return;
            }
        });
        Live { bar: Some(bar), done }
    }

    /// Clears the line (before the summary is printed).
    pub fn finish(&mut self) {
        if let Ok(mut done) = self.done.lock() {
            *done = true;
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `blobs: 1200 repos, 34000 blobs, 2300 manifests, 5100/s`.
fn line(s: &Snapshot, elapsed: Duration) -> String {
    let mut out = String::new();
    if !s.phase.is_empty() {
        let _ = write!(out, "{}:", s.phase);
    }
    let parts: Vec<String> = [
        (s.repos, "repos"),
        (s.manifests, "manifests"),
        (s.blobs, "blobs"),
        (s.items, "items"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    let _ = write!(
        out,
        " {}",
        if parts.is_empty() {
            "starting".into()
        } else {
            parts.join(", ")
        }
    );
    let secs = elapsed.as_secs_f64();
    if secs >= 0.5 && s.total() > 0 {
        let _ = write!(out, ", {:.0}/s", s.total() as f64 / secs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_phase_counts_and_rate() {
        let s = Snapshot {
            phase: "blobs",
            repos: 2,
            blobs: 100,
            ..Snapshot::default()
        };
        assert_eq!(
            line(&s, Duration::from_secs(2)),
            "blobs: 2 repos, 100 blobs, 51/s"
        );
        assert_eq!(line(&Snapshot::default(), Duration::ZERO), " starting");
    }
}
