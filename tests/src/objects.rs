//! What the object-storage tests share whatever the store: uploading a
//! registry tree to it, copying it back to a directory (each file with its
//! object's LastModified as mtime), and the base64 and HTTP dates a signed
//! request needs.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload};
use reg_core::storage::{Backend, Scanned};

/// Uploads every file under `v2` (a `docker/registry/v2` directory) to
/// `store` as the object `V2_PREFIX/<path>`, 16 at once; how many.
pub fn upload(store: Arc<dyn ObjectStore>, v2_prefix: &str, v2: &Path) -> Result<usize> {
    let mut files = Vec::new();
    for e in walkdir(v2)? {
        let rel = e.strip_prefix(v2)?.to_string_lossy().into_owned();
        files.push((e, format!("{v2_prefix}/{rel}")));
    }
    let n = files.len();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut puts = futures::stream::iter(files)
            .map(|(path, key)| {
                let store = store.clone();
                async move {
                    let bytes = fs::read(&path).with_context(|| path.display().to_string())?;
                    store
                        .put(&Key::from(key.as_str()), PutPayload::from(bytes))
                        .await
                        .with_context(|| key.clone())?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(16);
        while let Some(r) = puts.next().await {
            r?;
        }
        anyhow::Ok(())
    })?;
    Ok(n)
}

/// Every regular file below `dir`.
fn walkdir(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            } else {
                bail!("{}: neither a file nor a directory", e.path().display());
            }
        }
    }
    Ok(out)
}

/// Copies every object of the registry `b` lists to the directory `dest`
/// (as `dest/docker/registry/v2/...`), each file with its object's
/// LastModified as mtime: the same tree on a filesystem, to compare the
/// tools' records on both, or to serve it with the real registry.
pub fn mirror(b: &dyn Backend, dest: &Path) -> Result<()> {
    let v2 = dest.join("docker/registry/v2");
    for area in ["blobs", "repositories"] {
        let mut objects = Vec::new();
        b.scan(area, &|_, _| false, true, &mut |item| {
            if let Scanned::Object { key, meta } = item {
                objects.push((key, meta));
            }
        })?;
        for (key, meta) in objects {
            let bytes = b
                .read(&key, u64::MAX)?
                .with_context(|| format!("{key} vanished"))?;
            let path = v2.join(&key);
            fs::create_dir_all(path.parent().expect("a key has a parent"))?;
            fs::write(&path, bytes)?;
            if let Some(m) = meta {
                fs::File::options()
                    .write(true)
                    .open(&path)?
                    .set_modified(m.mtime)?;
            }
        }
    }
    Ok(())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64, padded.
pub fn base64_encode(b: &[u8]) -> String {
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padded.
pub fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let (mut n, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&x| x == c).context("not base64")? as u32;
        n = n << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((n >> bits) as u8);
        }
    }
    Ok(out)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_dates() {
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
