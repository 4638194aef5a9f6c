//! Requests sent to a remote store, by kind: the same statistic for every
//! store. A provider says what kind each of its requests is
//! ([`RequestKind`]); the counting, the summary line and the progress
//! line's total are written once.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a request does, whatever the store calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// A listing page (flat or delimited).
    List,
    Get,
    Head,
    Put,
    /// A server-side copy.
    Copy,
    /// One multi-object delete (S3 DeleteObjects, an Azure batch) of this
    /// many keys.
    DeleteBatch(u64),
    /// A single-object delete.
    Delete,
    Other,
}

/// Requests sent, by kind (retries count again).
#[derive(Debug, Default)]
pub struct Requests {
    /// What the store calls a multi-object delete (`DeleteObjects` on S3),
    /// for the summary.
    pub batch_name: &'static str,
    pub list: AtomicU64,
    pub get: AtomicU64,
    pub head: AtomicU64,
    pub put: AtomicU64,
    pub copy: AtomicU64,
    /// Multi-object delete requests.
    pub delete_batch: AtomicU64,
    /// Keys sent in multi-object delete requests.
    pub delete_keys: AtomicU64,
    /// Single-key DELETE requests.
    pub delete: AtomicU64,
    pub other: AtomicU64,
    /// Answers 503 (throttling) or 5xx.
    pub throttled: AtomicU64,
    /// Requests that failed without an answer (connection reset, timeout).
    pub failed: AtomicU64,
}

impl Requests {
    /// No request yet; a multi-object delete is named `batch_name`.
    pub fn new(batch_name: &'static str) -> Requests {
        Requests {
            batch_name,
            ..Requests::default()
        }
    }

    /// Counts one request of `kind`.
    pub fn count(&self, kind: RequestKind) {
        let c = match kind {
            RequestKind::List => &self.list,
            RequestKind::Get => &self.get,
            RequestKind::Head => &self.head,
            RequestKind::Put => &self.put,
            RequestKind::Copy => &self.copy,
            RequestKind::DeleteBatch(keys) => {
                self.delete_keys.fetch_add(keys, Ordering::Relaxed);
                &self.delete_batch
            }
            RequestKind::Delete => &self.delete,
            RequestKind::Other => &self.other,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Total requests sent.
    pub fn total(&self) -> u64 {
        [
            &self.list,
            &self.get,
            &self.head,
            &self.put,
            &self.copy,
            &self.delete_batch,
            &self.delete,
            &self.other,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    /// `"57 requests: 40 LIST, 17 GET"`, kinds with a count only; a
    /// multi-object delete is named as the store calls it
    /// (`3 DeleteObjects (20 keys)` on S3).
    pub fn summary(&self) -> String {
        let batch = if self.batch_name.is_empty() {
            "batch deletes"
        } else {
            self.batch_name
        };
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut parts = Vec::new();
        for (c, name) in [
            (&self.list, "LIST"),
            (&self.get, "GET"),
            (&self.head, "HEAD"),
            (&self.put, "PUT"),
            (&self.copy, "COPY"),
            (&self.delete, "DELETE"),
            (&self.other, "other"),
        ] {
            if n(c) > 0 {
                parts.push(format!("{} {name}", n(c)));
            }
        }
        if n(&self.delete_batch) > 0 {
            parts.push(format!(
                "{} {batch} ({} keys)",
                n(&self.delete_batch),
                n(&self.delete_keys)
            ));
        }
        let mut s = format!("{} requests", self.total());
        if !parts.is_empty() {
            let _ = write!(s, ": {}", parts.join(", "));
        }
        if n(&self.throttled) > 0 {
            let _ = write!(s, "; {} answered 5xx/throttled", n(&self.throttled));
        }
        if n(&self.failed) > 0 {
            let _ = write!(s, "; {} failed without an answer", n(&self.failed));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_kind() {
        let r = Requests::new("DeleteObjects");
        for _ in 0..52 {
            r.count(RequestKind::List);
        }
        for _ in 0..13 {
            r.count(RequestKind::Get);
        }
        for keys in [10, 5, 5] {
            r.count(RequestKind::DeleteBatch(keys));
        }
        r.throttled.fetch_add(2, Ordering::Relaxed);
        assert_eq!(r.total(), 68);
        assert_eq!(
            r.summary(),
            "68 requests: 52 LIST, 13 GET, 3 DeleteObjects (20 keys); 2 answered 5xx/throttled"
        );
        assert_eq!(Requests::default().summary(), "0 requests");
    }
}
