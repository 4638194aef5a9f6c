//! Progress of the long walks, as plain counters, one phase at a time.
//!
//! A walk names what it is doing now ([`Progress::start`]: "parsing
//! manifests", "deleting blobs"), what it counts ("manifests") and, where it
//! is known, how many there are to do; then it bumps the count as it goes
//! (relaxed atomics: a few per directory, never per byte). The next phase
//! starts from zero. A phase whose total grows as it goes (manifests whose
//! children are found as their indexes are read) says so with
//! [`Progress::add_total`].
//!
//! Nothing here draws: a binary that wants a live line on a terminal reads
//! [`Progress::snapshot`] from another thread (the tools do, with
//! `indicatif`, which turns a count and a total into a rate and an ETA);
//! nothing here writes to stderr but [`Progress::eprintln`]. Messages for
//! people printed while such a line is drawn go through the
//! [`Progress::set_printer`] hook so the line is not torn (see
//! [`crate::messages::Messages`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Prints one line of stderr text above a live progress line.
pub type Printer = Box<dyn Fn(&str) + Send + Sync>;

/// A total not known (yet).
const UNKNOWN: u64 = u64::MAX;

/// What the tool is doing now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Phase {
    /// What it does, for people: `"parsing manifests"`, `"deleting blobs"`.
    pub name: String,
    /// What the count counts (`"manifests"`), or `""` for a phase that only
    /// waits (a listing on object storage, counted in requests).
    pub unit: &'static str,
    /// A second count shown beside the first (`"blobs"` found while walking
    /// blob prefix directories), if any.
    pub also: Option<&'static str>,
}

impl Phase {
    /// A phase named `name` that counts `unit`.
    pub fn new(name: impl Into<String>, unit: &'static str) -> Phase {
        Phase {
            name: name.into(),
            unit,
            also: None,
        }
    }

    /// With a second count, of `what`.
    pub fn also(mut self, what: &'static str) -> Phase {
        self.also = Some(what);
        self
    }
}

/// Counters the walks bump.
#[derive(Default)]
pub struct Progress {
    phase: Mutex<Phase>,
    /// Said before every phase name (`"looking again: "`), or empty.
    context: Mutex<String>,
    /// Phases started so far: a drawer that sees it change starts its rate
    /// and ETA afresh.
    seq: AtomicU64,
    done: AtomicU64,
    /// [`UNKNOWN`] or the total of the phase.
    total: AtomicU64,
    also: AtomicU64,
    /// Test hook: how long each phase is held once named (see
    /// [`Progress::hold_phases`]).
    hold: OnceLock<Duration>,
    /// The last phase (its `seq`) the drawer says it drew: a held phase
    /// also waits for it.
    drawn: AtomicU64,
    printer: OnceLock<Printer>,
}

/// What [`Progress::snapshot`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Phases started so far (0: none yet).
    pub seq: u64,
    pub phase: Phase,
    /// Done in this phase.
    pub done: u64,
    /// To do in this phase, when known.
    pub total: Option<u64>,
    /// The phase's second count ([`Phase::also`]).
    pub also: u64,
}

impl Progress {
    /// Starts a phase: `total` things to do, when known (`None`: not
    /// known). The count starts from zero.
    pub fn start(&self, mut phase: Phase, total: Option<u64>) {
        if let Ok(ctx) = self.context.lock() {
            if !ctx.is_empty() {
                phase.name = format!("{ctx}: {}", phase.name);
            }
        }
        let mut seq = 0;
        if let Ok(mut p) = self.phase.lock() {
            self.done.store(0, Ordering::Relaxed);
            self.also.store(0, Ordering::Relaxed);
            self.total.store(total.unwrap_or(UNKNOWN), Ordering::Relaxed);
            *p = phase;
            seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        }
        if let Some(&d) = self.hold.get() {
            // At least `d`, and until drawn (a loaded machine can keep the
            // drawer from its tick that long), but never past 5 s more.
            let start = std::time::Instant::now();
            std::thread::sleep(d);
            while self.drawn.load(Ordering::Relaxed) < seq && start.elapsed() < d + Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// The drawer drew phase `seq` (a [`Snapshot::seq`]): a held phase may
    /// end.
    pub fn drawn(&self, seq: u64) {
        self.drawn.fetch_max(seq, Ordering::Relaxed);
    }

    /// Says `context` before every phase name from now on (`""`: nothing):
    /// reg-rm's second look runs the same walks as its first.
    pub fn set_context(&self, context: &str) {
        if let Ok(mut c) = self.context.lock() {
            *c = context.to_string();
        }
    }

    /// Sets the phase's total (now known).
    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Release);
    }

    /// Adds to the phase's total (more found to do); a total not known
    /// becomes `n`.
    pub fn add_total(&self, n: u64) {
        let _ = self
            .total
            .fetch_update(Ordering::Release, Ordering::Relaxed, |t| {
                Some(if t == UNKNOWN { n } else { t.saturating_add(n) })
            });
    }

    /// Counts `n` more done.
    pub fn inc(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Release);
    }

    /// Done so far in this phase.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Counts `n` more of the phase's second count.
    pub fn add_also(&self, n: u64) {
        self.also.fetch_add(n, Ordering::Relaxed);
    }

    /// Test hook: holds every phase at least `d` once named, so that a test
    /// of the live line sees each phase of a small tree (see the binaries'
    /// `REG_TEST_PROGRESS_HOLD`). Set once; later calls are ignored.
    pub fn hold_phases(&self, d: Duration) {
        let _ = self.hold.set(d);
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        // Under the lock [`Progress::start`] takes: a phase with its own counts.
        let phase = self.phase.lock();
        // Done before total: a total is set before the work it counts
        // (Release there, Acquire here), so a count read first is never
        // past the total read after it.
        let done = self.done.load(Ordering::Acquire);
        let total = self.total.load(Ordering::Acquire);
        Snapshot {
            seq: self.seq.load(Ordering::Relaxed),
            phase: phase.map(|p| p.clone()).unwrap_or_default(),
            done,
            total: (total != UNKNOWN).then_some(total),
            also: self.also.load(Ordering::Relaxed),
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
    fn a_phase_counts_from_zero_toward_its_total() {
        let p = Progress::default();
        assert_eq!(p.snapshot().seq, 0, "nothing started");
        p.start(
            Phase::new("reading blobs", "prefix directories").also("blobs"),
            Some(256),
        );
        p.inc(3);
        p.add_also(40);
        let s = p.snapshot();
        assert_eq!(
            (
                s.seq,
                s.phase.name.as_str(),
                s.phase.unit,
                s.done,
                s.total,
                s.also
            ),
            (1, "reading blobs", "prefix directories", 3, Some(256), 40)
        );
        p.start(Phase::new("listing repositories", ""), None);
        let s = p.snapshot();
        assert_eq!((s.seq, s.done, s.total, s.also), (2, 0, None, 0));
        p.add_total(5);
        p.add_total(2);
        assert_eq!(p.snapshot().total, Some(7), "a total found as it goes");
        p.set_total(3);
        assert_eq!(p.snapshot().total, Some(3));
    }

    #[test]
    fn a_context_is_said_before_the_phase() {
        let p = Progress::default();
        p.set_context("looking again");
        p.start(Phase::new("parsing manifests", "manifests"), Some(1));
        assert_eq!(p.snapshot().phase.name, "looking again: parsing manifests");
        p.set_context("");
        p.start(Phase::new("deleting blobs", "blobs"), Some(1));
        assert_eq!(p.snapshot().phase.name, "deleting blobs");
    }
}
