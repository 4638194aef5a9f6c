//! Removing a repository so that a push cannot outrun it (issue 16).
//!
//! A repository goes once it holds no tag, revision or upload
//! ([`super::guard::Guard::repo`]). A push can land after that look: a CI
//! job pushing an image again whose blobs the repository still links sends
//! only the manifest (the registry answers its blob checks from those
//! `_layers` links), and the registry writes a revision link and a tag. If
//! the links then went, the new tag would not pull. So the removal
//!
//! 1. lists the repository's own keys (`_manifests`, `_layers`, `_uploads`)
//!    and removes exactly those, one by one: whatever is written after the
//!    listing stays;
//! 2. removes nothing when the listing holds a tag, a revision link, an
//!    upload or a young `_layers` link ([`pushed`]): none was there when
//!    the guard looked, so one is there now because a push landed, and the
//!    repository is left whole (`"kept"`);
//! 3. lists again once the keys are gone: a tag, revision, upload or young
//!    link that appeared meanwhile keeps the repository, and every
//!    `_layers` link removed is written back, byte for byte (the pushed
//!    manifest may need them); the record says so (`"kept"`, not
//!    `"deleted"`).
//!
//! What remains is a push that lands after the second look: by then the
//! links are gone, and the registry refuses a manifest whose blobs the
//! repository does not link, unless the client uploads them again, which
//! writes new links.

use super::phases::Runner;
use super::report::RmRecord;
use crate::layout::paths;
use crate::storage::Scanned;

/// The largest link file written back (a digest is at most 135 bytes).
const LINK_LIMIT: u64 = 4096;

/// The directories of a repository that are its own (a nested repository
/// may live beside them).
pub(super) const OWN: [&str; 3] = ["_manifests", "_layers", "_uploads"];

/// Why the keys of `repo` show a push that landed after the guard looked,
/// if they do: a tag (anything below `_manifests/tags/`), a revision link,
/// an upload, or a `_layers` link for which `young` says true (given its
/// key). `keys` are relative to `v2`.
pub(super) fn pushed(repo: &str, keys: &[String], young: &dyn Fn(&str) -> bool) -> Option<String> {
    let base = paths::repo(repo);
    for key in keys {
        let Some(rel) = key.strip_prefix(&base).and_then(|k| k.strip_prefix('/')) else {
            continue;
        };
        let parts: Vec<&str> = rel.split('/').collect();
        let why = match parts.as_slice() {
            ["_manifests", "tags", tag, ..] => format!("tag {tag:?} appeared"),
            ["_manifests", "revisions", alg, hex, "link"] => format!("revision {alg}:{hex} appeared"),
            ["_uploads", id, ..] => format!("upload {id} appeared"),
            ["_layers", alg, hex, "link"] if young(key) => format!("_layers link {alg}:{hex} is new"),
            _ => continue,
        };
        return Some(why);
    }
    None
}

impl Runner<'_> {
    /// Every key below the repository's own directories; `None` if they
    /// could not all be listed (reported).
    fn own_keys(&self, repo: &str) -> Option<Vec<String>> {
        let mut keys = Vec::new();
        let mut ok = true;
        for own in OWN {
            let dir = format!("{}/{own}", paths::repo(repo));
            let scanned = self
                .store()
                .backend()
                .scan(&dir, &|_, _| false, false, &mut |item| match item {
                    Scanned::Object { key, .. } => keys.push(key),
                    Scanned::Prefix(_) => {}
                    Scanned::Problem(e) => {
                        self.guard.msgs.error(e);
                        ok = false;
                    }
                });
            if let Err(e) = scanned {
                self.guard.msgs.error(e);
                ok = false;
            }
        }
        ok.then_some(keys)
    }

    /// Whether the `_layers` link `key` is younger than `--min-age`.
    fn young_link(&self, key: &str) -> bool {
        match self.store().link_mtime(key) {
            Ok(Some(m)) => self.guard.young(key, m),
            Ok(None) => false,
            // Cannot tell: as good as new.
            Err(_) => true,
        }
    }

    /// Removes repository `repo`, which the guard found empty, as the
    /// module says: its keys as listed, then a second look. `rec` is its
    /// record; `None` if a removal failed (reported).
    pub(super) fn remove_repo(&self, rec: RmRecord, repo: &str) -> Option<RmRecord> {
        let Some(keys) = self.own_keys(repo) else {
            return Some(rec.kept("cannot list what it holds (see errors)"));
        };
        if let Some(why) = pushed(repo, &keys, &|k| self.young_link(k)) {
            return Some(rec.kept(format!(
                "pushed to during this run ({why} after reg-rm looked): left whole"
            )));
        }
        // The `_layers` links as they are, to write back if a push needs them.
        let mut links: Vec<(String, Vec<u8>)> = Vec::new();
        for key in keys.iter().filter(|k| is_layer_link(repo, k)) {
            let expected = link_text(key);
            match self
                .store()
                .backend()
                .read_expecting(key, LINK_LIMIT, &[expected.as_bytes()])
            {
                Ok(Some((bytes, _))) => links.push((key.clone(), bytes)),
                Ok(None) => {}
                Err(e) => {
                    self.guard.msgs.error(e);
                    return Some(rec.kept("cannot read its _layers links (see errors)"));
                }
            }
        }
        #[cfg(any(test, feature = "test-hooks"))]
        if let Some(hook) = &self.guard.cfg.hooks.before_repo_removal {
            (hook.0)();
        }
        let mut one = [self.act.finish(rec.clone(), &keys)];
        self.act.flush(&mut one);
        let [done] = one;
        // A backend that caches listings (object storage) lists it anew.
        self.store().refresh_below(&paths::repo(repo));
        let appeared = match self.own_keys(repo) {
            Some(now) => pushed(repo, &now, &|k| self.young_link(k)),
            None => Some("its keys could not be listed again".into()),
        };
        let Some(why) = appeared else {
            // `None`: a removal failed (reported); the rest may be gone.
            let mut done = done?;
            // Its directories, now empty (the filesystem's): a repository
            // that held nothing else is removed by removing them.
            if self.act.remove_empty_dirs(repo) > 0 && !done.action.removes() {
                done = done.done(self.act.action(), 0);
            }
            return Some(done);
        };
        let mut back = 0;
        let mut failed = 0;
        for (key, bytes) in &links {
            match self.store().backend().write_new(key, bytes) {
                Ok(_) => back += 1,
                Err(e) => {
                    self.guard.msgs.error(e);
                    failed += 1;
                }
            }
        }
        let mut note = format!("pushed to during this run ({why} while reg-rm removed it)");
        if !links.is_empty() {
            note.push_str(&format!("; its {back} _layers links were written back"));
        }
        if failed > 0 {
            note.push_str(&format!(" ({failed} could not be: see errors)"));
        }
        Some(rec.kept(note))
    }
}

/// Whether `key` is a `_layers/<alg>/<hex>/link` of `repo`.
fn is_layer_link(repo: &str, key: &str) -> bool {
    key.strip_prefix(&paths::repo(repo))
        .and_then(|k| k.strip_prefix("/_layers/"))
        .is_some_and(|k| k.split('/').count() == 3 && k.ends_with("/link"))
}

/// What a `_layers/<alg>/<hex>/link` holds when it names its own path's
/// digest (`<alg>:<hex>`): read without a request where a listing vouches
/// for it.
fn link_text(key: &str) -> String {
    let mut parts = key.rsplit('/').skip(1);
    match (parts.next(), parts.next()) {
        (Some(hex), Some(alg)) => format!("{alg}:{hex}"),
        _ => String::new(),
    }
}
