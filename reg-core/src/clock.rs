//! "Now", for every age the tools measure: the grace periods of
//! reg-orphans and reg-rm (`--min-age`), the upload age, `reg-refs
//! --keep-recent`.
//!
//! An age compares a time the storage wrote with "now". On object storage
//! those times are the server's (`LastModified`), so "now" is the server's
//! too, read from the `Date` header of its answers ([`Store::now`]): with
//! this machine's clock a day ahead, a blob uploaded a second ago would
//! look a day old, and no grace period would protect a push in progress.
//! A local clock that differs from the server's by more than
//! [`SKEW_WARNING`] is warned about.
//!
//! On a filesystem the times are set by whoever writes (this machine, or an
//! NFS server), and "now" is this machine's clock. After a walk, a tree
//! whose newest modification time seen is ahead of it by more than
//! [`SKEW_WARNING`] is warned about ([`Store::check_tree_clock`]): this
//! clock is behind the writer's (recent files then look younger: they are
//! kept, but longer than asked). A clock ahead of the writer's cannot be
//! told from the tree.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::Result;
use crate::layout::Store;
use crate::messages::Messages;
use crate::time::Time;

/// How far apart this machine's clock and the storage's may be before the
/// tools say so.
pub const SKEW_WARNING: Duration = Duration::from_secs(60);

impl Store {
    /// "Now" for every age: the storage server's time on object storage
    /// (warning through `msgs` when `local`, this machine's clock, differs
    /// from it by more than [`SKEW_WARNING`]), `local` on a filesystem.
    pub fn now(&self, local: SystemTime, msgs: &Messages) -> Result<SystemTime> {
        let Some(server) = self.backend().server_now()? else {
            if self.backend().capabilities().remote {
                msgs.warn(format!(
                    "{}: the storage server's answers carry no Date header: ages are measured by this \
                     machine's clock ({})",
                    self.display("").display(),
                    Time(local)
                ));
            }
            return Ok(local);
        };
        if let Some(w) = skew_warning(&self.display(""), local, server) {
            msgs.warn(w);
        }
        Ok(server)
    }

    /// After a walk: warns through `msgs` when the newest modification time
    /// the storage returned is ahead of `local`, this machine's clock, by
    /// more than [`SKEW_WARNING`] (the filesystem's; see the module).
    pub fn check_tree_clock(&self, local: SystemTime, msgs: &Messages) {
        let Some(newest) = self.backend().newest_mtime() else {
            return;
        };
        if let Ok(ahead) = newest.duration_since(local) {
            if ahead > SKEW_WARNING {
                msgs.warn(format!(
                    "{}: the newest modification time seen ({}) is {} ahead of this machine's clock \
                     ({}): is this clock behind the one that writes the tree (an NFS server's)? Ages \
                     are measured by this clock, so recent files are kept longer than asked",
                    self.display("").display(),
                    Time(newest),
                    rounded(ahead),
                    Time(local)
                ));
            }
        }
    }
}

/// The warning for a local clock that differs from the server's, if it
/// does by more than [`SKEW_WARNING`].
fn skew_warning(root: &Path, local: SystemTime, server: SystemTime) -> Option<String> {
    let (by, way) = match local.duration_since(server) {
        Ok(ahead) => (ahead, "ahead of"),
        Err(e) => (e.duration(), "behind"),
    };
    (by > SKEW_WARNING).then(|| {
        format!(
            "this machine's clock ({}) is {} {way} the storage server's ({}, from the Date of its \
             answers, {}): ages are measured by the server's clock",
            Time(local),
            rounded(by),
            Time(server),
            root.display()
        )
    })
}

/// A duration as people read it (`1day 2h`): to the nearest minute from an
/// hour on, else to the nearest second (a `Date` has whole seconds: a skew
/// of a day reads as `1day`, not `23h 59m 59s`).
fn rounded(d: Duration) -> String {
    let unit = if d >= Duration::from_secs(3600) { 60 } else { 1 };
    let secs = (d.as_millis() + unit * 500) / (unit * 1000) * unit;
    humantime::format_duration(Duration::from_secs(secs as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn a_skew_over_a_minute_either_way_is_named() {
        let server = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let root = Path::new("s3://b/r/docker/registry/v2");
        let w = skew_warning(root, server + DAY, server).unwrap();
        assert!(w.contains("is 1day ahead of the storage server's"), "{w}");
        assert!(
            w.contains("s3://b/r/docker/registry/v2") && w.contains("2023-11-14T22:13:20Z"),
            "{w}"
        );
        let w = skew_warning(root, server - Duration::from_secs(90), server).unwrap();
        assert!(w.contains("is 1m 30s behind"), "{w}");
        // The server's Date has whole seconds.
        let w = skew_warning(root, server + DAY - Duration::from_millis(700), server).unwrap();
        assert!(w.contains("is 1day ahead"), "{w}");
        for close in [server, server + SKEW_WARNING, server - Duration::from_secs(59)] {
            assert_eq!(skew_warning(root, close, server), None);
        }
    }

    #[test]
    fn on_a_filesystem_now_is_local_and_a_tree_ahead_of_it_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let file = v2.join("blobs/sha256/ab/data");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, b"x").unwrap();
        let store = Store::fs(v2);
        let msgs = Messages::muted("test");
        let local = SystemTime::now();
        assert_eq!(store.now(local, &msgs).unwrap(), local);
        // Nothing seen yet, then a tree as new as this clock: no warning.
        store.check_tree_clock(local, &msgs);
        assert!(store.meta("blobs/sha256/ab/data").unwrap().is_some());
        store.check_tree_clock(local, &msgs);
        assert_eq!(msgs.warnings(), 0);
        // This clock a day behind the tree's writer.
        store.check_tree_clock(local - DAY, &msgs);
        assert_eq!(msgs.warnings(), 1);
    }
}
