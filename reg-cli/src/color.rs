//! `--color WHEN`: whether what the tools color on stderr is colored (the
//! `error:` and `warning:` labels of their messages, clap's usage errors)
//! and whether clap colors `--help`.
//!
//! The flag is read before clap parses the command line, so that clap's own
//! usage errors follow it too; `auto` colors stderr when it is a terminal and
//! `NO_COLOR` is not set to anything (<https://no-color.org>), and leaves
//! `--help` on stdout to clap's own detection (which honours `NO_COLOR`
//! too). `always` and `never` win over `NO_COLOR`.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::OnceLock;

/// What `--color` takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// When stderr is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    /// Always, even into a file or a pipe.
    Always,
    /// Never.
    Never,
}

impl ColorWhen {
    /// For clap: `auto` stays clap's (it decides per stream).
    pub fn clap(self) -> clap::ColorChoice {
        match self {
            ColorWhen::Auto => clap::ColorChoice::Auto,
            ColorWhen::Always => clap::ColorChoice::Always,
            ColorWhen::Never => clap::ColorChoice::Never,
        }
    }

    /// Whether stderr is colored, given whether it is a terminal and the
    /// value of `NO_COLOR`.
    pub fn stderr(self, terminal: bool, no_color: Option<&str>) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => terminal && no_color.is_none_or(str::is_empty),
        }
    }
}

/// `--color`'s value in a raw command line, before clap parses it (the last
/// one wins, as with clap; an invalid one counts as `auto`, and clap then
/// refuses it).
pub fn from_args(args: impl IntoIterator<Item = OsString>) -> ColorWhen {
    let mut when = ColorWhen::Auto;
    let mut args = args.into_iter().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy().into_owned();
        if a == "--" {
            break;
        }
        let value = if a == "--color" {
            args.next().map(|v| v.to_string_lossy().into_owned())
        } else {
            a.strip_prefix("--color=").map(str::to_string)
        };
        if let Some(v) = value {
            when = <ColorWhen as clap::ValueEnum>::from_str(&v, false).unwrap_or_default();
        }
    }
    when
}

static STDERR: OnceLock<bool> = OnceLock::new();

/// Decides, once per process, whether stderr is colored.
pub fn init(when: ColorWhen) -> bool {
    *STDERR.get_or_init(|| {
        let no_color = std::env::var("NO_COLOR").ok();
        when.stderr(std::io::stderr().is_terminal(), no_color.as_deref())
    })
}

/// Whether stderr is colored (as [`init`] decided; never before).
pub fn stderr() -> bool {
    STDERR.get().copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        std::iter::once("tool")
            .chain(a.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn the_flag_is_read_before_clap() {
        assert_eq!(from_args(args(&[])), ColorWhen::Auto);
        assert_eq!(from_args(args(&["--color", "never", "x"])), ColorWhen::Never);
        assert_eq!(from_args(args(&["--color=always"])), ColorWhen::Always);
        assert_eq!(
            from_args(args(&["--color=always", "--color", "never"])),
            ColorWhen::Never
        );
        assert_eq!(from_args(args(&["--", "--color=always"])), ColorWhen::Auto);
        assert_eq!(from_args(args(&["--color=sometimes"])), ColorWhen::Auto);
    }

    #[test]
    fn no_color_is_honoured_by_auto_only() {
        assert!(ColorWhen::Auto.stderr(true, None));
        assert!(ColorWhen::Auto.stderr(true, Some("")), "set but empty: not set");
        assert!(!ColorWhen::Auto.stderr(true, Some("1")));
        assert!(!ColorWhen::Auto.stderr(false, None));
        assert!(ColorWhen::Always.stderr(false, Some("1")));
        assert!(!ColorWhen::Never.stderr(true, None));
    }
}
