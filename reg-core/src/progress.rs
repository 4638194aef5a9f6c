//! Progress of the long walks, as plain counters.
//!
//! The walks bump these counters (relaxed atomics: a few per directory,
//! never per byte) and name the phase they are in; they never draw
//! anything. A binary that wants a live line on a terminal reads the
//! counters from another thread (the tools do, with `indicatif`); nothing
//! here writes to stderr. Messages for people printed while such a line is
//! drawn go through the [`Progress::set_printer`] hook so the line is not
//! torn (see [`crate::messages::Messages`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Prints one line of stderr text above a live progress line.
pub type Printer = Box<dyn Fn(&str) + Send + Sync>;

/// Counters the walks bump.
#[derive(Default)]
pub struct Progress {
    phase: Mutex<&'static str>,
    /// Repositories walked.
    pub repos: AtomicU64,
    /// Blob directories walked (listed, looked at, or re-hashed).
    pub blobs: AtomicU64,
    /// Manifests read and parsed.
    pub manifests: AtomicU64,
    /// Items acted on (reg-rm: records written).
    pub items: AtomicU64,
    printer: OnceLock<Printer>,
}

/// What [`Progress::snapshot`] reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub phase: &'static str,
    pub repos: u64,
    pub blobs: u64,
    pub manifests: u64,
    pub items: u64,
}

impl Snapshot {
    /// Everything counted, for a rate.
    pub fn total(&self) -> u64 {
        self.repos + self.blobs + self.manifests + self.items
    }
}

impl Progress {
    /// Names what is being walked now (`"repositories"`, `"blobs"`, …).
    pub fn phase(&self, name: &'static str) {
        if let Ok(mut p) = self.phase.lock() {
            *p = name;
        }
    }

    pub fn add_repos(&self, n: u64) {
        self.repos.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_blobs(&self, n: u64) {
        self.blobs.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_manifests(&self, n: u64) {
        self.manifests.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_items(&self, n: u64) {
        self.items.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            phase: self.phase.lock().map(|p| *p).unwrap_or(""),
            repos: self.repos.load(Ordering::Relaxed),
            blobs: self.blobs.load(Ordering::Relaxed),
            manifests: self.manifests.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
        }
    }

    /// Routes stderr lines through `p` from now on (once; later calls are
    /// ignored).
    pub fn set_printer(&self, p: Printer) {
        let _ = self.printer.set(p);
    }

    /// Prints a line of stderr text, above the live line if one is drawn.
    pub fn eprintln(&self, line: &str) {
        match self.printer.get() {
            Some(p) => p(line),
            None => eprintln!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let p = Progress::default();
        p.phase("blobs");
        p.add_blobs(3);
        p.add_repos(2);
        p.add_manifests(1);
        let s = p.snapshot();
        assert_eq!(
            (s.phase, s.blobs, s.repos, s.manifests, s.total()),
            ("blobs", 3, 2, 1, 6)
        );
    }
}
