//! How many GETs are in flight at once ([`Concurrency`]): chosen by what the
//! store sustains (issue 18). It starts at [`START`], grows while the
//! latency of a round of requests (its slowest answer: the reads of a
//! batch wait for the last, and one stalled in a full queue of connections,
//! a SYN retried after a second, costs the whole batch that second) holds
//! near the best round's, eases off
//! when it does not (requests wait in a queue somewhere: more in flight
//! only makes each slower), and halves on throttling (503 `SlowDown`, 5xx,
//! or a request that failed as transient after its retries). Under
//! [`START`] (after a cut) it grows back round by round whatever the
//! latency, until the store throttles again: latency that is only noisy
//! must not leave the run at a few requests in flight. Bounded by [`MAX`], or by the
//! tools' `-j N` where given.
//!
//! The controller is plain arithmetic over what each request reports
//! ([`Concurrency::done`]); the backend asks it how many to keep in flight
//! ([`Concurrency::limit`]) before each new request.

use std::time::Duration;

/// In flight at first: what the tools kept in flight before it adapted.
pub const START: usize = 32;

/// The most in flight, whatever the store sustains: past this the
/// machine's own work per answer (TLS, signing, parsing) is what limits.
pub const MAX: usize = 256;

/// Latency within this factor of the best round's "holds": grow.
const HOLDS: f64 = 1.5;

/// Latency past this factor of the best round's: ease off.
const SLOWER: f64 = 2.5;

/// Growth per round that held, easing per round that did not, and the
/// cut on throttling.
const GROW: f64 = 1.25;
const EASE: f64 = 0.8;
const CUT: f64 = 0.5;

/// A round is at least this many answers (its slowest is the latency).
const MIN_ROUND: usize = 8;

/// The controller: the limit, the best round's latency, and the
/// round in progress.
#[derive(Debug)]
pub struct Concurrency {
    limit: f64,
    max: usize,
    /// The lowest latency of a round so far.
    best: Option<Duration>,
    /// Latencies of the answers of this round.
    round: Vec<Duration>,
    /// The store's count of throttling answers last seen (see
    /// [`Concurrency::done`]).
    throttled: Option<u64>,
    /// After a cut: answers still to come of requests sent before it, which
    /// neither cut again nor count in a round.
    cooling: usize,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency::new(MAX)
    }
}

impl Concurrency {
    /// Starts at [`START`] (or `max` if lower), never past `max` (at most
    /// [`MAX`]).
    pub fn new(max: usize) -> Concurrency {
        let max = max.clamp(1, MAX);
        Concurrency {
            limit: START.min(max) as f64,
            max,
            best: None,
            round: Vec::new(),
            throttled: None,
            cooling: 0,
        }
    }

    /// A new bound (the tools' `-j N`); the limit is brought under it.
    pub fn cap(&mut self, max: usize) {
        let max = max.clamp(1, MAX);
        self.max = max;
        self.limit = self.limit.min(max as f64);
    }

    /// How many requests to keep in flight now.
    pub fn limit(&self) -> usize {
        (self.limit as usize).clamp(1, self.max)
    }

    /// One answer came after `took`; `throttled` is the store's count of
    /// throttling answers so far (it only grows; more than last time is
    /// throttling), `failed_transient` says this request failed as
    /// transient after its retries (throttling too).
    pub fn done(&mut self, took: Duration, throttled: u64, failed_transient: bool) {
        let seen = *self.throttled.get_or_insert(throttled);
        self.throttled = Some(seen.max(throttled));
        let signal = throttled > seen || failed_transient;
        if self.cooling > 0 {
            self.cooling -= 1;
            return;
        }
        if signal {
            // At once, not at the end of the round; what was in flight
            // then answers before anything more is decided.
            self.cooling = self.limit();
            self.limit = (self.limit * CUT).max(1.0);
            self.round.clear();
            return;
        }
        self.round.push(took);
        if self.round.len() >= self.limit().max(MIN_ROUND) {
            self.end_round();
        }
    }

    fn end_round(&mut self) {
        self.round.sort_unstable();
        let latency = self.round[self.round.len() - 1];
        self.round.clear();
        let best = self.best.map_or(latency, |b| b.min(latency));
        self.best = Some(best);
        let ratio = latency.as_secs_f64() / best.as_secs_f64().max(1e-6);
        let start = START.min(self.max) as f64;
        if ratio <= HOLDS || self.limit < start {
            // At least one more: a limit of 1 grows too; past the start
            // only while latency holds.
            let grown = (self.limit * GROW).max(self.limit + 1.0).min(self.max as f64);
            self.limit = if ratio <= HOLDS { grown } else { grown.min(start) };
        } else if ratio > SLOWER {
            // Undoes growth only: slower answers alone (a store slower
            // now, whatever is in flight) never take it under the start.
            let floor = START.min(self.max) as f64;
            if self.limit > floor {
                self.limit = (self.limit * EASE).max(floor);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Runs rounds of `limit` answers each taking what `latency` says for
    /// the limit of the moment; returns the limits seen, one a round.
    fn rounds(c: &mut Concurrency, n: usize, latency: impl Fn(usize) -> Duration) -> Vec<usize> {
        let mut seen = Vec::new();
        for _ in 0..n {
            let l = c.limit();
            for _ in 0..l.max(MIN_ROUND) {
                c.done(latency(l), 0, false);
            }
            seen.push(c.limit());
        }
        seen
    }

    #[test]
    fn starts_at_32_and_grows_to_the_bound_while_latency_holds() {
        let mut c = Concurrency::default();
        assert_eq!(c.limit(), START);
        let seen = rounds(&mut c, 30, |_| 20 * MS);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert_eq!(c.limit(), MAX);
        // Never past the bound.
        rounds(&mut c, 5, |_| 20 * MS);
        assert_eq!(c.limit(), MAX);
    }

    #[test]
    fn the_bound_given_is_kept() {
        let mut c = Concurrency::new(8);
        assert_eq!(c.limit(), 8);
        rounds(&mut c, 10, |_| 20 * MS);
        assert_eq!(c.limit(), 8);
        let mut c = Concurrency::new(100_000);
        rounds(&mut c, 40, |_| 20 * MS);
        assert_eq!(c.limit(), MAX);
        c.cap(64);
        assert_eq!(c.limit(), 64);
        let mut c = Concurrency::new(0);
        assert_eq!(c.limit(), 1);
        rounds(&mut c, 10, |_| 20 * MS);
        assert_eq!(c.limit(), 1);
    }

    /// A store that answers in 20 ms up to 100 in flight and queues the
    /// rest: growth stops once latency has grown, and the limit stays put.
    #[test]
    fn growth_stops_where_latency_grows() {
        let mut c = Concurrency::default();
        let queueing = |l: usize| Duration::from_secs_f64(0.020 * (l as f64 / 100.0).max(1.0));
        let seen = rounds(&mut c, 60, queueing);
        let last = &seen[30..];
        assert!(
            last.iter().all(|&l| l == last[0] && (100..=200).contains(&l)),
            "{seen:?}"
        );
    }

    /// One stalled answer in a round (a full queue of connections: a SYN
    /// retried after a second) eases the limit off: the batch waits for it.
    #[test]
    fn a_stall_in_a_round_eases_off() {
        let mut c = Concurrency::default();
        rounds(&mut c, 2, |_| 20 * MS);
        let before = c.limit();
        for i in 0..before {
            c.done(if i == 3 { 1000 * MS } else { 20 * MS }, 0, false);
        }
        assert!(c.limit() < before, "{} {before}", c.limit());
        rounds(&mut c, 1, |_| 20 * MS);
        assert!(c.limit() > START);
    }

    /// After cuts, it grows back to the start even when latency is only
    /// noisy (here five times the best round's), though not past it.
    #[test]
    fn after_a_cut_it_grows_back_to_the_start() {
        let mut c = Concurrency::default();
        rounds(&mut c, 2, |_| 10 * MS);
        for n in 1..=6 {
            c.done(10 * MS, n, false);
            // What was in flight at the cut answers.
            while c.cooling > 0 {
                c.done(10 * MS, n, false);
            }
        }
        assert!(c.limit() < 8, "{}", c.limit());
        let seen = rounds(&mut c, 40, |_| 50 * MS);
        assert_eq!(c.limit(), START, "{seen:?}");
    }

    /// Latency far past the best round's eases the limit off, but not
    /// under the start: slower answers alone are no throttling.
    #[test]
    fn much_slower_answers_ease_off_to_the_start() {
        let mut c = Concurrency::default();
        rounds(&mut c, 6, |_| 10 * MS);
        let before = c.limit();
        assert!(before > START);
        rounds(&mut c, 1, |_| 100 * MS);
        assert!(c.limit() < before);
        rounds(&mut c, 100, |_| 100 * MS);
        assert_eq!(c.limit(), START);
    }

    /// Throttling halves the limit at once; what was in flight then does
    /// not cut again; a transient failure counts as throttling; down to 1,
    /// and up again once the store keeps up.
    #[test]
    fn throttling_halves_it() {
        let mut c = Concurrency::default();
        rounds(&mut c, 12, |_| 20 * MS);
        assert_eq!(c.limit(), MAX);
        // The first count seen is no throttling (earlier requests' answers).
        let mut c2 = Concurrency::default();
        c2.done(20 * MS, 7, false);
        assert_eq!(c2.limit(), START);
        c.done(20 * MS, 0, false);
        c.done(20 * MS, 1, false);
        assert_eq!(c.limit(), MAX / 2);
        // The MAX requests in flight at the cut answer, throttled or not.
        for _ in 0..MAX {
            c.done(20 * MS, 2, false);
        }
        assert_eq!(c.limit(), MAX / 2);
        c.done(20 * MS, 3, false);
        assert_eq!(c.limit(), MAX / 4);
        for _ in 0..MAX / 2 {
            c.done(20 * MS, 3, false);
        }
        c.done(20 * MS, 3, true);
        assert_eq!(c.limit(), MAX / 8);
        for _ in 0..1000 {
            c.done(20 * MS, 3, true);
        }
        assert_eq!(c.limit(), 1);
        rounds(&mut c, 3, |_| 20 * MS);
        assert!(c.limit() > 1);
    }
}
