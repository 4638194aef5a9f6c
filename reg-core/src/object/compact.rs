//! Listings held compactly: an area of a bucket (up to hundreds of millions
//! of keys) as sorted blocks of [`BLOCK`] objects, each key front-coded
//! against the one before it (`blobs/sha256/ab/` once a block), runs of
//! lowercase hex digits packed two to a byte, the `/data` and `/link` that
//! end a registry's keys as one byte each, sizes and times as varints
//! (times as the change from the key before, in whole seconds or
//! milliseconds when they are whole: an S3 listing's are), and the content
//! MD5 as one byte when it is what the key says a link holds. A block's
//! first key is not kept apart: a search decodes it from the block.
//!
//! Listed objects enter through one small function, [`Run::push`] (key,
//! size, last-modified, content MD5), whatever lists them.
//!
//! A [`Listing`] is read in place ([`Listing::get`], [`Listing::after`]:
//! a few objects at a time, decoded from their block), never copied whole.
//! Changes made through the backend after listing (deletes, writes) go in
//! a small overlay of exact entries, as does any object the blocks cannot
//! hold exactly (a time that does not fit in 64-bit nanoseconds).
//!
//! What it keeps of an MD5: only a link's (`…/<alg>/<hex>/link`), where
//! the registry's content is `<alg>:<hex>`; one that matches that is a
//! flag, one that does not is kept whole. Other objects keep none: their
//! MD5 is only ever used to answer a link read without a GET
//! ([`crate::storage::Backend::read_expecting`]), and without one the read
//! goes to the store (slower, never wrong).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::Obj;

/// Objects per block.
pub(super) const BLOCK: usize = 32;

/// Objects read from a listing at a time (the block holding the key read
/// last is decoded again for each: a few blocks a chunk keep that small).
pub(super) const CHUNK: usize = 4 * BLOCK;

/// Runs of hex digits at least this long are packed.
const HEX_RUN: usize = 16;

/// Bytes of an encoded key: a packed hex run follows, then an escaped
/// byte; `/data` and `/link`, the last part of most keys of a registry.
const PACKED: u8 = 0;
const ESCAPE: u8 = 1;
const DATA: u8 = 2;
const LINK: u8 = 3;

/// Words [`encode_text`] writes as one byte.
const WORDS: [(u8, &[u8]); 2] = [(DATA, b"/data"), (LINK, b"/link")];

/// The unit of a time's change from the one before (its low two bits).
const SECONDS: u64 = 0;
const MILLIS: u64 = 1;
const NANOS: u64 = 2;

/// What the block says of an object's MD5.
const MD5_NONE: u8 = 0;
const MD5_AS_LINKED: u8 = 1;
const MD5_RAW: u8 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn nibble(b: u8) -> u8 {
    if b.is_ascii_digit() {
        b - b'0'
    } else {
        b - b'a' + 10
    }
}

/// `text` with runs of lowercase hex packed (see the module).
fn encode_text(text: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < text.len() {
        let run = text[i..].iter().take_while(|b| is_hex(**b)).count() & !1;
        if run >= HEX_RUN {
            out.push(PACKED);
            put_varint(out, (run / 2) as u64);
            out.extend(
                text[i..i + run]
                    .chunks(2)
                    .map(|p| nibble(p[0]) << 4 | nibble(p[1])),
            );
            i += run;
            continue;
        }
        if let Some((code, word)) = WORDS.iter().find(|(_, w)| text[i..].starts_with(w)) {
            out.push(*code);
            i += word.len();
            continue;
        }
        let b = text[i];
        if b <= LINK {
            out.push(ESCAPE);
        }
        out.push(b);
        i += 1;
    }
}

fn decode_text(b: &[u8], at: &mut usize, end: usize, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    while *at < end {
        match b[*at] {
            PACKED => {
                *at += 1;
                let n = get_varint(b, at) as usize;
                for &p in &b[*at..*at + n] {
                    out.push(HEX[usize::from(p >> 4)]);
                    out.push(HEX[usize::from(p & 15)]);
                }
                *at += n;
            }
            ESCAPE => {
                out.push(b[*at + 1]);
                *at += 2;
            }
            DATA => {
                out.extend_from_slice(b"/data");
                *at += 1;
            }
            LINK => {
                out.extend_from_slice(b"/link");
                *at += 1;
            }
            c => {
                out.push(c);
                *at += 1;
            }
        }
    }
}

/// The content a link at `key` holds when it is the registry's:
/// `…/<alg>/<hex>/link` holds `<alg>:<hex>`.
fn linked(key: &str) -> Option<String> {
    let rest = key.strip_suffix("/link")?;
    let (rest, hex) = rest.rsplit_once('/')?;
    let alg = rest.rsplit('/').next()?;
    Some(format!("{alg}:{hex}"))
}

/// Nanoseconds since the epoch, if they fit.
fn nanos(t: SystemTime) -> Option<i64> {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).ok(),
        Err(e) => i64::try_from(e.duration().as_nanos()).ok().map(|n| -n),
    }
}

fn time_of(n: i64) -> SystemTime {
    if n >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(n as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos(n.unsigned_abs())
    }
}

/// The change `d` (nanoseconds) from the time before, as a varint's value:
/// in the largest whole unit, the unit in the low two bits; `None` if it
/// does not fit (times centuries apart).
fn encode_change(d: i64) -> Option<u64> {
    let (v, unit) = if d % 1_000_000_000 == 0 {
        (d / 1_000_000_000, SECONDS)
    } else if d % 1_000_000 == 0 {
        (d / 1_000_000, MILLIS)
    } else {
        (d, NANOS)
    };
    let z = zigzag(v);
    (z <= u64::MAX >> 2).then_some(z << 2 | unit)
}

fn decode_change(v: u64) -> i64 {
    let d = unzigzag(v >> 2);
    match v & 3 {
        SECONDS => d * 1_000_000_000,
        MILLIS => d * 1_000_000,
        _ => d,
    }
}

/// What [`Block::walk`] calls on each object.
type Walk<'a> = dyn FnMut(&[u8], u64, i64, u8, &[u8]) -> bool + 'a;

/// Blocks written to a file instead of held: the listing of an inventory
/// report, which stands for the whole bucket for a whole run (a live
/// listing is held a part at a time). An unnamed temporary file in the
/// temporary directory (`TMPDIR`), gone when the run ends however it
/// ends; about 45 bytes an object. A block is read back with one `pread`
/// each time it is walked; what is read stays in the page cache, not in
/// the process's memory.
#[derive(Debug)]
pub(super) struct Spool {
    file: std::fs::File,
    end: std::sync::atomic::AtomicU64,
    /// Bytes it takes at most, as if the disk were full there (tests).
    limit: u64,
}

impl Spool {
    pub(super) fn new() -> std::io::Result<Spool> {
        Spool::within(u64::MAX)
    }

    /// A spool that fails as a full disk would past `limit` bytes.
    pub(super) fn within(limit: u64) -> std::io::Result<Spool> {
        Ok(Spool {
            file: tempfile::tempfile()?,
            end: std::sync::atomic::AtomicU64::new(0),
            limit,
        })
    }

    /// Where the spool's file is made, for messages.
    pub(super) fn dir() -> std::path::PathBuf {
        std::env::temp_dir()
    }

    fn put(&self, bytes: &[u8]) -> std::io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let at = self
            .end
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if at.saturating_add(bytes.len() as u64) > self.limit {
            return Err(std::io::ErrorKind::StorageFull.into());
        }
        self.file.write_all_at(bytes, at)?;
        Ok(at)
    }

    /// A block's bytes, read back. A temporary file written by this run
    /// that cannot be read back is a broken disk: the run stops there
    /// (its output is then cut short, which the next tool refuses), never
    /// goes on with a listing that lacks what was in it.
    fn get(&self, at: u64, len: u32) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let mut out = vec![0; len as usize];
        if let Err(e) = self.file.read_exact_at(&mut out, at) {
            panic!(
                "cannot read back the listing spooled to a temporary file in {}: {e}",
                Spool::dir().display()
            );
        }
        out
    }
}

/// Up to [`BLOCK`] objects, sorted, encoded. The first object's key is
/// whole (nothing shared) and its time is in nanoseconds since the epoch;
/// each later one's is the change from the one before. Held, or in a
/// [`Spool`] with its first key held as encoded (what a search reads).
#[derive(Debug)]
enum Block {
    Held(Box<[u8]>),
    Spooled {
        spool: std::sync::Arc<Spool>,
        at: u64,
        len: u32,
        first: Box<[u8]>,
    },
}

impl Block {
    fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Block::Held(b) => std::borrow::Cow::Borrowed(b),
            Block::Spooled { spool, at, len, .. } => std::borrow::Cow::Owned(spool.get(*at, *len)),
        }
    }

    /// The block written to `spool`, its first key held.
    fn spooled(&self, spool: &std::sync::Arc<Spool>) -> std::io::Result<Block> {
        let bytes = self.bytes();
        let at = spool.put(&bytes)?;
        // The first key as encoded (its hex packed: about 50 bytes where
        // a blob's key is 86).
        let mut i = 0;
        let _shared = get_varint(&bytes, &mut i);
        let len = get_varint(&bytes, &mut i) as usize;
        Ok(Block::Spooled {
            spool: spool.clone(),
            at,
            len: u32::try_from(bytes.len()).expect("a block is a few KiB"),
            first: bytes[i..i + len].into(),
        })
    }

    /// Walks the block's objects in order: `f` gets each key (bytes), size,
    /// time (nanoseconds) and MD5 field (its tag, and the raw bytes after
    /// it), and says whether to go on.
    fn walk(&self, f: &mut Walk) {
        let b = self.bytes();
        let b = &*b;
        let mut key: Vec<u8> = Vec::with_capacity(128);
        let (mut at, mut mtime) = (0usize, 0i64);
        while at < b.len() {
            let first = at == 0;
            let shared = get_varint(b, &mut at) as usize;
            let len = get_varint(b, &mut at) as usize;
            key.truncate(shared);
            let end = at + len;
            decode_text(b, &mut at, end, &mut key);
            let size = get_varint(b, &mut at);
            let t = get_varint(b, &mut at);
            mtime = if first {
                unzigzag(t)
            } else {
                mtime + decode_change(t)
            };
            let tag = b[at];
            let raw = if tag == MD5_RAW {
                &b[at + 1..at + 17]
            } else {
                &b[at..at]
            };
            at += 1 + raw.len();
            if !f(&key, size, mtime, tag, raw) {
                return;
            }
        }
    }

    /// An object as kept: its MD5 worked out only if `md5` asks.
    fn obj(key: &str, size: u64, mtime: i64, tag: u8, raw: &[u8], md5: bool) -> Obj {
        let md5 = match tag {
            _ if !md5 => None,
            MD5_AS_LINKED => linked(key).map(|l| super::md5_of(l.as_bytes())),
            MD5_RAW => raw.try_into().ok(),
            _ => None,
        };
        Obj {
            size,
            mtime: time_of(mtime),
            md5,
        }
    }

    fn text(key: &[u8]) -> String {
        String::from_utf8(key.to_vec()).expect("keys are encoded from strings")
    }

    /// Every object of the block, in order (with their MD5s if `md5`).
    fn decode(&self, md5: bool) -> Vec<(String, Obj)> {
        let mut out = Vec::with_capacity(BLOCK);
        self.walk(&mut |key, size, mtime, tag, raw| {
            let text = Block::text(key);
            let o = Block::obj(&text, size, mtime, tag, raw, md5);
            out.push((text, o));
            true
        });
        out
    }

    /// The object `key`, with its MD5.
    fn find(&self, want: &str) -> Option<Obj> {
        let mut found = None;
        self.walk(&mut |key, size, mtime, tag, raw| match key.cmp(want.as_bytes()) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => {
                found = Some(Block::obj(want, size, mtime, tag, raw, true));
                false
            }
            std::cmp::Ordering::Greater => false,
        });
        found
    }

    /// The first key of the block, into `key` (cleared first).
    fn first_into(&self, key: &mut Vec<u8>) {
        let b = match self {
            Block::Held(b) => b,
            Block::Spooled { first, .. } => {
                key.clear();
                decode_text(first, &mut 0, first.len(), key);
                return;
            }
        };
        let mut at = 0;
        let _shared = get_varint(b, &mut at);
        let len = get_varint(b, &mut at) as usize;
        key.clear();
        let end = at + len;
        decode_text(b, &mut at, end, key);
    }

    fn first(&self) -> String {
        let mut key = Vec::new();
        self.first_into(&mut key);
        Block::text(&key)
    }

    /// The last key of the block.
    fn last(&self) -> String {
        let mut last = Vec::new();
        self.walk(&mut |key, _, _, _, _| {
            last.clear();
            last.extend_from_slice(key);
            true
        });
        Block::text(&last)
    }
}

/// Sorted objects being encoded into blocks, and those the blocks cannot
/// hold exactly.
#[derive(Debug, Default)]
pub(super) struct Run {
    blocks: Vec<Block>,
    cur: Vec<u8>,
    in_cur: usize,
    prev: String,
    prev_mtime: i64,
    exact: BTreeMap<String, Obj>,
    spool: Option<std::sync::Arc<Spool>>,
    spool_failed: Option<std::io::Error>,
}

impl Run {
    /// Adds one listed object; keys must come in ascending order (a key
    /// not above the one before goes in the exact overlay).
    pub(super) fn push(&mut self, key: &str, size: u64, mtime: SystemTime, md5: Option<[u8; 16]>) {
        let obj = Obj { size, mtime, md5 };
        let Some(n) = nanos(mtime) else {
            self.exact.insert(key.to_string(), obj);
            return;
        };
        if (self.in_cur > 0 || !self.blocks.is_empty()) && key <= self.prev.as_str() {
            self.exact.insert(key.to_string(), obj);
            return;
        }
        if self.in_cur == BLOCK {
            self.seal();
        }
        let change = match self.in_cur {
            0 => Some(zigzag(n)),
            _ => n.checked_sub(self.prev_mtime).and_then(encode_change),
        };
        let Some(change) = change else {
            self.exact.insert(key.to_string(), obj);
            return;
        };
        let out = &mut self.cur;
        let shared = if self.in_cur == 0 {
            0
        } else {
            // Shared bytes, backed off to a character boundary.
            let mut s = self
                .prev
                .bytes()
                .zip(key.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            while !key.is_char_boundary(s) {
                s -= 1;
            }
            s
        };
        put_varint(out, shared as u64);
        let mut text = Vec::new();
        encode_text(&key.as_bytes()[shared..], &mut text);
        put_varint(out, text.len() as u64);
        out.extend_from_slice(&text);
        put_varint(out, size);
        put_varint(out, change);
        self.prev_mtime = n;
        match (md5, linked(key)) {
            (None, _) | (Some(_), None) => out.push(MD5_NONE),
            (Some(m), Some(l)) if super::md5_of(l.as_bytes()) == m => out.push(MD5_AS_LINKED),
            (Some(m), Some(_)) => {
                out.push(MD5_RAW);
                out.extend_from_slice(&m);
            }
        }
        self.in_cur += 1;
        self.prev.clear();
        self.prev.push_str(key);
    }

    fn seal(&mut self) {
        if self.in_cur == 0 {
            return;
        }
        let held = Block::Held(std::mem::take(&mut self.cur).into_boxed_slice());
        self.in_cur = 0;
        let Some(spool) = &self.spool else {
            self.blocks.push(held);
            return;
        };
        match held.spooled(spool) {
            Ok(b) => self.blocks.push(b),
            // Held, and the failure told by `Run::finish`.
            Err(e) => {
                self.blocks.push(held);
                self.spool_failed.get_or_insert(e);
            }
        }
    }

    /// A run whose sealed blocks go to `spool`.
    pub(super) fn spooled(spool: std::sync::Arc<Spool>) -> Run {
        Run {
            spool: Some(spool),
            ..Run::default()
        }
    }

    /// Seals the run: its last block is written like the others, and the
    /// first failure to write one to the spool, if any, is returned (the
    /// blocks that failed are held instead).
    pub(super) fn finish(&mut self) -> std::io::Result<()> {
        self.seal();
        self.spool_failed.take().map_or(Ok(()), Err)
    }

    /// `objects` sorted, as a run.
    pub(super) fn of(mut objects: Vec<(String, Obj)>) -> Run {
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        let mut r = Run::default();
        for (k, o) in objects {
            r.push(&k, o.size, o.mtime, o.md5);
        }
        r.seal();
        r
    }
}

/// A few objects of a listing from a key prefix, after a key (see
/// [`Listing::each_below`]).
pub(super) type Chunk<'a> = dyn Fn(&str, Option<&str>) -> Vec<(String, Obj)> + 'a;

/// A listed area: sorted blocks, and an overlay of what changed since.
#[derive(Debug, Default)]
pub(super) struct Listing {
    blocks: Vec<Block>,
    /// Objects held exactly: written since, or not fit for the blocks.
    added: BTreeMap<String, Obj>,
    /// Keys of the blocks that are gone (deleted, or listed anew).
    removed: BTreeSet<String>,
}

impl Listing {
    /// The listing of `runs` (listed parts of the area, in any order;
    /// where two hold the same key, the later run's entry stands).
    pub(super) fn of(mut runs: Vec<Run>) -> Listing {
        for r in &mut runs {
            r.seal();
        }
        runs.retain(|r| !r.blocks.is_empty() || !r.exact.is_empty());
        runs.sort_by_cached_key(|r| r.blocks.first().map(Block::first));
        // Parts are disjoint key ranges: their blocks follow each other.
        let last_of = |r: &Run| r.blocks.last().map(Block::last);
        let disjoint = runs
            .windows(2)
            .all(|w| match (last_of(&w[0]), w[1].blocks.first()) {
                (Some(last), Some(next)) => last < next.first(),
                _ => true,
            });
        let mut out = Listing::default();
        if disjoint {
            for r in runs {
                out.blocks.extend(r.blocks);
                out.added.extend(r.exact);
            }
        } else {
            // Overlapping parts (never from a registry's layout): merged
            // the slow way.
            let mut all = BTreeMap::new();
            let spool = runs.iter().find_map(|r| r.spool.clone());
            for r in runs {
                for b in &r.blocks {
                    all.extend(b.decode(true));
                }
                all.extend(r.exact);
            }
            let (fit, exact): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, o)| nanos(o.mtime).is_some());
            let mut r = match spool {
                Some(spool) => Run::spooled(spool),
                None => Run::default(),
            };
            for (k, o) in fit {
                r.push(&k, o.size, o.mtime, o.md5);
            }
            r.seal();
            out.blocks = r.blocks;
            out.added = r.exact;
            out.added.extend(exact);
        }
        // A key in both the blocks and the overlay: the overlay's stands.
        out.removed = out
            .added
            .keys()
            .filter(|k| out.block_get(k).is_some())
            .cloned()
            .collect();
        out
    }

    /// The block `key` would be in.
    fn block_of(&self, key: &str) -> Option<usize> {
        // A binary search over the blocks' first keys, decoded into one
        // buffer.
        let (mut lo, mut hi) = (0, self.blocks.len());
        let mut first = Vec::with_capacity(128);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            self.blocks[mid].first_into(&mut first);
            if first.as_slice() <= key.as_bytes() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    fn block_get(&self, key: &str) -> Option<Obj> {
        self.blocks[self.block_of(key)?].find(key)
    }

    /// Moves its blocks into `spool`, keeping each block's first key; a
    /// block the spool cannot take stays held (and so do those after it).
    pub(super) fn spool_into(&mut self, spool: &std::sync::Arc<Spool>) -> std::io::Result<()> {
        for b in &mut self.blocks {
            if matches!(b, Block::Held(_)) {
                *b = b.spooled(spool)?;
            }
        }
        Ok(())
    }

    /// Whether its blocks are all in a spool.
    #[cfg(test)]
    pub(super) fn is_spooled(&self) -> bool {
        self.blocks.iter().all(|b| matches!(b, Block::Spooled { .. }))
    }

    /// Whether it holds no object.
    pub(super) fn is_empty(&self) -> bool {
        self.after("", None, 1, false).is_empty()
    }

    pub(super) fn get(&self, key: &str) -> Option<Obj> {
        if let Some(o) = self.added.get(key) {
            return Some(o.clone());
        }
        if self.removed.contains(key) {
            return None;
        }
        self.block_get(key)
    }

    pub(super) fn remove(&mut self, key: &str) {
        self.added.remove(key);
        if self.block_get(key).is_some() {
            self.removed.insert(key.to_string());
        }
    }

    pub(super) fn insert(&mut self, key: String, o: Obj) {
        if self.block_get(&key).is_some() {
            self.removed.insert(key.clone());
        }
        self.added.insert(key, o);
    }

    /// Up to `n` objects whose keys start with `prefix`, after `after`
    /// (from the first, when `after` is `None`), in order; with their MD5s
    /// only if `md5` (a scan needs none, and working out a link's costs a
    /// hash). Stops at the first key past the prefix.
    pub(super) fn after(&self, prefix: &str, after: Option<&str>, n: usize, md5: bool) -> Vec<(String, Obj)> {
        let start = after.unwrap_or(prefix);
        let past = |k: &str| match after {
            Some(a) => k > a,
            None => k >= prefix,
        };
        let mut base = Vec::new();
        let mut b = self.block_of(start).unwrap_or(0);
        let mut done = false;
        while !done && b < self.blocks.len() && base.len() < n {
            let removed = &self.removed;
            self.blocks[b].walk(&mut |key, size, mtime, tag, raw| {
                let Ok(k) = std::str::from_utf8(key) else {
                    return true;
                };
                if !past(k) {
                    return true;
                }
                if !k.starts_with(prefix) {
                    done = true;
                    return false;
                }
                if !removed.contains(k) {
                    base.push((k.to_string(), Block::obj(k, size, mtime, tag, raw, md5)));
                }
                base.len() < n
            });
            b += 1;
        }
        let bound = match after {
            Some(a) => std::ops::Bound::Excluded(a.to_string()),
            None => std::ops::Bound::Included(prefix.to_string()),
        };
        let added = self
            .added
            .range((bound, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(n)
            .map(|(k, o)| (k.clone(), o.clone()));
        // Merge the two sorted sequences.
        let mut out: Vec<(String, Obj)> = Vec::with_capacity(n);
        let mut base = base.into_iter().peekable();
        let mut added = added.peekable();
        while out.len() < n {
            let next = match (base.peek(), added.peek()) {
                (Some(x), Some(y)) if x.0 < y.0 => base.next(),
                (Some(_), Some(_)) => added.next(),
                (Some(_), None) => base.next(),
                (None, Some(_)) => added.next(),
                (None, None) => None,
            };
            match next {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    }

    /// Calls `visit` on each object whose key starts with `prefix`, in
    /// order, [`CHUNK`] objects at a time from [`Listing::after`]
    /// (`chunk` is called with the lock taken to reach the listing).
    pub(super) fn each_below(chunk: &Chunk, prefix: &str, visit: &mut dyn FnMut(String, Obj)) {
        let mut after: Option<String> = None;
        loop {
            let got = chunk(prefix, after.as_deref());
            let full = got.len() == CHUNK;
            // The next chunk starts after this one's last key (one copy a
            // chunk, not one a key).
            after = got.last().map(|(k, _)| k.clone());
            for (k, o) in got {
                if !k.starts_with(prefix) {
                    return;
                }
                visit(k, o);
            }
            if !full {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(size: u64, secs: u64, md5: Option<[u8; 16]>) -> Obj {
        Obj {
            size,
            mtime: SystemTime::UNIX_EPOCH + Duration::from_millis(secs * 1000 + 123),
            md5,
        }
    }

    fn same(a: &Obj, b: &Obj) -> bool {
        a.size == b.size && a.mtime == b.mtime && a.md5 == b.md5
    }

    /// Every object comes back exactly as listed: keys with and without hex
    /// runs (odd, short, upper case, bytes 0 and 1, non-ASCII), sizes,
    /// times going back and forth (and before the epoch), link MD5s that
    /// match their key and that do not.
    #[test]
    fn blocks_give_back_what_was_listed() {
        let hex = "0123456789abcdef".repeat(4);
        let link = |alg: &str, h: &str| format!("repositories/a/_layers/{alg}/{h}/link");
        let linked_md5 = |k: &str| Some(super::super::md5_of(linked(k).unwrap().as_bytes()));
        let mut objects: Vec<(String, Obj)> = Vec::new();
        for i in 0..100u64 {
            let k = format!("blobs/sha256/{:02x}/{hex}{i:03}/data", i % 7);
            objects.push((
                k,
                obj(
                    i * 1_000_003,
                    1_700_000_000 - (i % 5) * 86_400,
                    Some([i as u8; 16]),
                ),
            ));
        }
        let l1 = link("sha256", &hex);
        let l2 = link("sha512", &hex[..63]);
        objects.push((l1.clone(), obj(71, 5, linked_md5(&l1))));
        objects.push((l2.clone(), obj(7, 5, Some([9; 16]))));
        for k in [
            "repositories/a/ABCDEF0123456789ABCDEF/x",
            "repositories/a/\u{0}\u{1}zz",
            "repositories/a/\u{2}\u{3}/data\u{2}/datax/link/linked/dat",
            "repositories/a/_layers/sha256/x/link/data",
            "repositories/é/ü/_uploads/0123456789abcdef0123456789abcdef0/startedat",
            "repositories/a/_manifests/tags/0123456789abcdef01/current/link",
        ] {
            objects.push((k.to_string(), obj(0, 0, None)));
        }
        let mut before = obj(1, 0, None);
        before.mtime = SystemTime::UNIX_EPOCH - Duration::from_secs(10);
        objects.push(("repositories/old".into(), before));
        let mut far = obj(1, 0, None);
        far.mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40);
        objects.push(("repositories/far".into(), far));
        // Times in whole seconds, milliseconds and nanoseconds; changes
        // too large for a varint of the unit (100 and 400 years).
        let at = |k: &str, t: SystemTime| {
            (
                format!("repositories/times/{k}"),
                Obj {
                    mtime: t,
                    ..obj(1, 0, None)
                },
            )
        };
        let epoch = SystemTime::UNIX_EPOCH;
        let year = Duration::from_secs(365 * 86_400);
        for (k, t) in [
            ("a", epoch + Duration::from_secs(1_700_000_000)),
            ("b", epoch + Duration::from_millis(1_700_000_000_007)),
            ("c", epoch + Duration::from_nanos(1_700_000_000_000_000_009)),
            ("d", epoch + Duration::from_secs(1_600_000_000)),
            ("e", epoch - year * 200),
            ("f", epoch + year * 200),
            ("g", epoch + year * 100 + Duration::from_nanos(3)),
            ("h", epoch + Duration::from_nanos(1)),
        ] {
            objects.push(at(k, t));
        }

        let mut want = objects.clone();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        for spooled in [false, true] {
            let listing = if spooled {
                // In a spool, in two runs that overlap (merged the slow
                // way, into the spool again).
                let spool = std::sync::Arc::new(Spool::new().unwrap());
                let mut runs = vec![Run::spooled(spool.clone()), Run::spooled(spool)];
                for (i, (k, o)) in want.iter().enumerate() {
                    runs[i % 2].push(k, o.size, o.mtime, o.md5);
                }
                for r in &mut runs {
                    r.finish().unwrap();
                }
                Listing::of(runs)
            } else {
                Listing::of(vec![Run::of(objects.clone())])
            };
            assert!(listing
                .blocks
                .iter()
                .all(|b| matches!(b, Block::Spooled { .. }) == spooled));
            gives_back(&listing, &want, &l1, &l2);
        }
        let spool = std::sync::Arc::new(Spool::new().unwrap());
        let mut run = Run::spooled(spool);
        for (k, o) in &want {
            run.push(k, o.size, o.mtime, o.md5);
        }
        run.finish().unwrap();
        gives_back(&Listing::of(vec![run]), &want, &l1, &l2);
    }

    fn gives_back(listing: &Listing, want: &[(String, Obj)], l1: &str, l2: &str) {
        let linked_md5 = |k: &str| Some(super::super::md5_of(linked(k).unwrap().as_bytes()));
        for (k, o) in want {
            let got = listing.get(k).unwrap_or_else(|| panic!("{k:?} lost"));
            let o = match (o.md5, linked(k)) {
                // Only links keep an MD5.
                (Some(_), None) => Obj {
                    md5: None,
                    ..o.clone()
                },
                _ => o.clone(),
            };
            assert!(same(&got, &o), "{k:?}: {got:?} != {o:?}");
        }
        assert!(listing.get("blobs/sha256/00/x").is_none());
        let mut all = Vec::new();
        Listing::each_below(&|p, a| listing.after(p, a, CHUNK, true), "", &mut |k, _| {
            all.push(k)
        });
        let keys: Vec<String> = want.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(all, keys);
        // An MD5 the key explains is one byte; others are kept whole.
        assert_eq!(listing.get(l1).unwrap().md5, linked_md5(l1));
        assert_eq!(listing.get(l2).unwrap().md5, Some([9; 16]));
    }

    /// A registry's blob keys take about 44 bytes each: 31 or 32 of
    /// packed digest, a byte for `/data`, a size, a time's change in
    /// seconds (S3 lists whole seconds) and an MD5 flag.
    #[test]
    fn a_blob_key_takes_about_44_bytes() {
        use sha2::Digest as _;
        let n = 4096u64;
        let mut objects: Vec<(String, Obj)> = (0..n)
            .map(|i| {
                let hex: String = sha2::Sha256::digest(i.to_le_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let key = format!("blobs/sha256/{}/{hex}/data", &hex[..2]);
                // Spread over 180 days, as the benchmark's trees are.
                let secs = 1_780_000_000 + (i * 7_919_993) % 15_552_000;
                (key, obj(1_000_000 + i * 37, secs, None))
            })
            .collect();
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        let run = Run::of(objects);
        assert!(run.exact.is_empty());
        let bytes: usize = run.blocks.iter().map(|b| b.bytes().len()).sum();
        let per = bytes as f64 / n as f64;
        assert!((40.0..=45.0).contains(&per), "{per:.1} bytes a key");
    }

    /// Parts listed apart, in any order, make one listing; a range is read
    /// across block and part boundaries, with deletes and writes since.
    #[test]
    fn ranges_span_parts_and_see_changes() {
        let key = |i: u32| format!("blobs/sha256/{:02x}/{:064x}/data", i / 40, i);
        let part =
            |r: std::ops::Range<u32>| Run::of(r.map(|i| (key(i), obj(u64::from(i), 1, None))).collect());
        let mut l = Listing::of(vec![part(200..400), part(0..77), part(77..200)]);
        let below = |l: &Listing, p: &str| {
            let mut v = Vec::new();
            Listing::each_below(&|p, a| l.after(p, a, CHUNK, true), p, &mut |k, o| {
                v.push((k, o.size))
            });
            v
        };
        let want: Vec<(String, u64)> = (40..80).map(|i| (key(i), u64::from(i))).collect();
        assert_eq!(below(&l, "blobs/sha256/01/"), want);
        l.remove(&key(41));
        l.remove(&key(79));
        l.insert(key(41) + "x", obj(5, 1, None));
        l.insert(key(50), obj(6, 1, None));
        let mut want: Vec<(String, u64)> = (40..79)
            .filter(|i| *i != 41)
            .map(|i| (key(i), if i == 50 { 6 } else { u64::from(i) }))
            .collect();
        want.insert(1, (key(41) + "x", 5));
        assert_eq!(below(&l, "blobs/sha256/01/"), want);
        assert!(l.get(&key(41)).is_none());
        assert_eq!(l.get(&key(50)).unwrap().size, 6);
        assert_eq!(below(&l, "blobs/sha256/09/").len(), 40);
        assert!(below(&l, "blobs/sha256/0a/").is_empty());
        // Across several chunks of CHUNK objects: each once, in order.
        let all = below(&l, "blobs/");
        assert!(all.len() > 3 * CHUNK);
        assert_eq!(all.len(), 399);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        // Overlapping parts: merged, the later part's entry standing.
        let l = Listing::of(vec![part(0..50), part(10..20)]);
        assert_eq!(below(&l, "").len(), 50);
    }
}
