//! The live progress line: on a terminal (and without `-q`), one line on
//! stderr that says what the tool is doing now, drawn by `indicatif` from
//! the counters of [`reg_core::progress::Progress`]. Each phase is a fresh
//! start for indicatif: its count, its total where the walk knows one (then
//! indicatif's percentage and ETA), and indicatif's rate, a moving average
//! of this phase's own unit:
//!
//! ```text
//! reg-refs: parsing manifests 12,345/41,820 manifests (29%), 2150/s, ETA 14s [6s]
//! reg-ls: reading blobs 97/256 prefix directories (37%), 40/s, ETA 4s, 38,000 blobs [2s]
//! reg-rm: listing repositories ⠙ [1s]
//! ```
//!
//! Nothing is drawn when stderr is not a terminal. Messages printed while
//! the line is up go above it (through the progress printer hook).
//!
//! The line appears only once a walk names its phase: reg-orphans and reg-rm
//! wait for their whole stdin first, and a line of theirs drawn meanwhile
//! would fight with the one of the tool before them in the pipeline.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{HumanCount, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use reg_core::layout::Store;
use reg_core::messages::Messages;
use reg_core::progress::{Progress, Snapshot};
use reg_core::storage::Requests;

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(120);

/// Test hook: `REG_TEST_PROGRESS_HOLD=DURATION` holds every phase that long
/// once named, so that a test in a pseudo-terminal sees each phase of a
/// small tree drawn (`tests/tests/progress.rs`).
pub const HOLD_ENV: &str = "REG_TEST_PROGRESS_HOLD";

/// A drawn progress line; cleared when finished or dropped (an error too).
pub struct ProgressLine {
    /// The bar of the phase drawn now, if any.
    bar: Arc<Mutex<Option<ProgressBar>>>,
    /// Set (under the lock) once finished: the line is never drawn after.
    done: Arc<Mutex<bool>>,
}

impl ProgressLine {
    /// Starts the line for `tool` when `msgs` allows progress (stderr is a
    /// terminal, not `-q`); otherwise does nothing.
    pub fn start(tool: &'static str, msgs: &Messages) -> ProgressLine {
        ProgressLine::start_counting(tool, msgs, None)
    }

    /// [`ProgressLine::start`], the line also counting the requests sent to
    /// `store` when it is remote (object storage: most of the time goes
    /// to listing, before any repository or blob is counted).
    pub fn start_for(tool: &'static str, msgs: &Messages, store: &Store) -> ProgressLine {
        ProgressLine::start_counting(tool, msgs, store.request_counts())
    }

    fn start_counting(tool: &'static str, msgs: &Messages, requests: Option<Arc<Requests>>) -> ProgressLine {
        let live = ProgressLine {
            bar: Arc::default(),
            done: Arc::default(),
        };
        if !msgs.progress_enabled() {
            return live;
        }
        let counters: Arc<Progress> = Arc::clone(msgs.progress());
        if let Some(hold) = std::env::var(HOLD_ENV)
            .ok()
            .and_then(|v| reg_core::time::parse_duration(&v).ok())
        {
            counters.hold_phases(hold);
        }
        let above = Arc::clone(&live.bar);
        msgs.progress().set_printer(Box::new(move |text: &str| {
            let bar = above.lock().ok().and_then(|b| b.clone());
            match bar {
                Some(bar) => bar.suspend(|| eprintln!("{text}")),
                None => eprintln!("{text}"),
            }
        }));
        let (current, until) = (Arc::clone(&live.bar), Arc::clone(&live.done));
        std::thread::spawn(move || {
            // The phase drawn, and whether with a total.
            let mut shown = (0, false);
            loop {
                std::thread::sleep(TICK);
                let Ok(done) = until.lock() else { return };
                if *done {
                    return;
                }
                let s = counters.snapshot();
                if s.seq == 0 {
                    // No phase named yet: nothing to draw.
                    continue;
                }
                let Ok(mut current) = current.lock() else { return };
                if (s.seq, s.total.is_some()) != shown {
                    // A new phase (or its total now known): a bar of its
                    // own, with its count, rate and ETA, drawn once set up.
                    let bar = ProgressBar::with_draw_target(s.total, ProgressDrawTarget::hidden())
                        .with_style(style(&s, &counters, requests.clone()))
                        .with_prefix(tool)
                        .with_message(s.phase.name.clone())
                        .with_position(s.done);
                    if let Some(old) = current.take() {
                        old.finish_and_clear();
                    }
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                    *current = Some(bar);
                    shown = (s.seq, s.total.is_some());
                }
                if let Some(bar) = current.as_ref() {
                    if let Some(n) = s.total {
                        bar.set_length(n);
                    }
                    bar.set_position(s.done);
                    bar.tick();
                    counters.drawn(s.seq);
                }
            }
        });
        live
    }

    /// Clears the line (before the summary is printed).
    pub fn finish(&mut self) {
        if let Ok(mut done) = self.done.lock() {
            *done = true;
        }
        if let Some(bar) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The template of a phase: with a total, its count out of it, the share
/// done, the rate and the ETA; without, a spinner, the count and the rate.
fn template(s: &Snapshot) -> String {
    let unit = s.phase.unit.replace(['{', '}'], "");
    match (s.total.is_some(), unit.is_empty()) {
        (true, _) => format!(
            "{{prefix}}: {{msg}} {{human_pos}}/{{human_len}} {unit} ({{percent}}%){{rate}}{{eta}}{{extra}} [{{elapsed}}]"
        ),
        (false, false) => format!("{{prefix}}: {{msg}} {{spinner}} {{human_pos}} {unit}{{rate}}{{extra}} [{{elapsed}}]"),
        (false, true) => "{prefix}: {msg} {spinner}{extra} [{elapsed}]".to_string(),
    }
}

fn style(s: &Snapshot, counters: &Arc<Progress>, requests: Option<Arc<Requests>>) -> ProgressStyle {
    let also = s.phase.also;
    let counters = Arc::clone(counters);
    ProgressStyle::with_template(&template(s))
        .expect("a valid template")
        .with_key("rate", |st: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&rate(st.pos(), st.per_sec()));
        })
        .with_key("eta", |st: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&eta(st.pos(), st.len(), st.eta()));
        })
        .with_key("extra", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&extra(also, counters.snapshot().also, requests.as_deref()));
        })
}

/// `, 2150/s` once something is done (indicatif's moving average).
fn rate(pos: u64, per_sec: f64) -> String {
    if pos == 0 || !per_sec.is_finite() || per_sec <= 0.0 {
        return String::new();
    }
    if per_sec >= 10.0 {
        format!(", {}/s", HumanCount(per_sec.round() as u64))
    } else {
        format!(", {per_sec:.1}/s")
    }
}

/// `, ETA 14s` once a rate is known and something is left.
fn eta(pos: u64, len: Option<u64>, eta: Duration) -> String {
    match len {
        Some(len) if pos > 0 && pos < len && !eta.is_zero() => format!(", ETA {:#}", HumanDuration(eta)),
        _ => String::new(),
    }
}

/// `, 38,000 blobs, 57 requests`: the phase's second count, and the
/// requests sent to object storage so far.
fn extra(also: Option<&'static str>, n: u64, requests: Option<&Requests>) -> String {
    let mut out = String::new();
    if let Some(what) = also {
        let _ = write!(out, ", {} {what}", HumanCount(n));
    }
    if let Some(r) = requests {
        let _ = write!(out, ", {} requests", HumanCount(r.total()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reg_core::progress::Phase;

    fn snapshot(unit: &'static str, total: Option<u64>) -> Snapshot {
        Snapshot {
            seq: 1,
            phase: Phase::new("parsing manifests", unit),
            total,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_phase_with_a_total_shows_it_with_rate_and_eta() {
        let t = template(&snapshot("manifests", Some(10)));
        assert!(
            t.contains("{human_pos}/{human_len} manifests ({percent}%){rate}{eta}"),
            "{t}"
        );
        let t = template(&snapshot("manifests", None));
        assert!(t.contains("{spinner} {human_pos} manifests{rate}"), "{t}");
        assert!(!t.contains("len") && !t.contains("eta"), "{t}");
        let t = template(&snapshot("", None));
        assert_eq!(t, "{prefix}: {msg} {spinner}{extra} [{elapsed}]");
        for s in [
            snapshot("manifests", Some(1)),
            snapshot("x", None),
            snapshot("", None),
        ] {
            ProgressStyle::with_template(&template(&s)).unwrap();
        }
    }

    #[test]
    fn rate_and_eta_only_once_known() {
        assert_eq!(rate(0, 100.0), "");
        assert_eq!(rate(5, f64::NAN), "");
        assert_eq!(rate(5, 2.25), ", 2.2/s");
        assert_eq!(rate(5, 2150.4), ", 2,150/s");
        assert_eq!(eta(0, Some(10), Duration::from_secs(3)), "");
        assert_eq!(eta(5, None, Duration::from_secs(3)), "");
        assert_eq!(eta(5, Some(10), Duration::from_secs(14)), ", ETA 14s");
        assert_eq!(eta(10, Some(10), Duration::from_secs(14)), "");
        assert_eq!(extra(Some("blobs"), 38_000, None), ", 38,000 blobs");
        assert_eq!(extra(None, 0, None), "");
    }
}
