//! Printing ([`write()`]): every orphan, kind by kind, then the trailer (or
//! the error record in its place).

use super::*;

/// Prints every orphan — blobs, revisions, layer links, uploads,
/// repositories, each kind sorted — then the trailer, or, when the walk
/// reported errors (`msgs`), the error record in its place: a list from a
/// failed run is never taken for a complete one ([`Out::end`]).
pub fn write<W: Write>(found: &Found, out: &mut Out<W>, msgs: &Messages) -> std::io::Result<OrphansEnd> {
    for b in found.blobs.iter() {
        out.write(&OrphanRecord::Blob {
            digest: b.digest,
            size: b.size,
            mtime: Time(b.mtime),
        })?;
    }
    for r in found.revisions.iter() {
        out.write(&OrphanRecord::Revision {
            repo: found.names[r.repo as usize].clone(),
            digest: r.digest,
            mtime: Time(crate::time::from_unix_secs(r.secs, 0)),
        })?;
    }
    for (repo, l) in &found.layer_links {
        out.write(&OrphanRecord::LayerLink {
            repo: repo.clone(),
            digest: l.digest,
            mtime: Time(l.mtime),
        })?;
    }
    for (repo, u) in &found.uploads {
        out.write(&OrphanRecord::Upload {
            repo: repo.clone(),
            id: u.id.clone(),
            size: u.size,
            started_at: u.started_at,
        })?;
    }
    for repo in &found.repos {
        out.write(&OrphanRecord::Repo { repo: repo.clone() })?;
    }
    let end = found.trailer();
    out.end(&OrphanRecord::End(end.clone()), msgs)?;
    Ok(end)
}
