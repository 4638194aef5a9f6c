//! Content digests: `sha256:<64 hex>`, `sha384:<96 hex>` and `sha512:<128 hex>`,
//! the algorithms the registry accepts (go-digest's).
//!
//! A [`Digest`] is the only way a string from outside (a link file, a line on
//! stdin, a field of a manifest) becomes part of a storage path: parsing checks
//! the algorithm and that the encoded part is lowercase hex of the right length,
//! so a digest can never carry `/`, `..` or anything else into a path.
//!
//! Digests are kept as raw bytes (32, 48 or 64), not strings, so that sets of
//! millions of them stay small; see [`DigestSet`].

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;

use sha2::Digest as _;

/// A validated content digest: 40 bytes, `Copy`.
///
/// A sha256 digest is held inline; a sha384 or sha512 one (which registries
/// accept but clients almost never push) is held once per process, in a
/// table that only grows, and the digest points at it. Inline, the longer
/// digests made every digest 65 bytes, and every set, map and record that
/// holds digests paid for it.
#[derive(Clone, Copy)]
pub struct Digest(Repr);

#[derive(Clone, Copy)]
enum Repr {
    Sha256([u8; 32]),
    Long(&'static Long),
}

/// A sha384 or sha512 digest, interned ([`intern`]).
#[derive(PartialEq, Eq, Hash)]
struct Long {
    alg: Algorithm,
    bytes: Box<[u8]>,
}

/// The one copy of a long digest: looked up, or leaked once. The table
/// holds each distinct long digest a process meets, for its lifetime.
fn intern(alg: Algorithm, bytes: &[u8]) -> &'static Long {
    static TABLE: std::sync::Mutex<Option<HashSet<&'static Long>>> = std::sync::Mutex::new(None);
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let table = table.get_or_insert_with(HashSet::new);
    let long = Long {
        alg,
        bytes: bytes.into(),
    };
    if let Some(known) = table.get(&long) {
        return known;
    }
    let leaked: &'static Long = Box::leak(Box::new(long));
    table.insert(leaked);
    leaked
}

impl PartialEq for Digest {
    fn eq(&self, other: &Digest) -> bool {
        match (&self.0, &other.0) {
            (Repr::Sha256(a), Repr::Sha256(b)) => a == b,
            (Repr::Long(a), Repr::Long(b)) => std::ptr::eq(*a, *b) || a == b,
            _ => false,
        }
    }
}

impl Eq for Digest {}

impl std::hash::Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes().hash(state)
    }
}

/// By algorithm (sha256, sha384, sha512), then by bytes.
impl Ord for Digest {
    fn cmp(&self, other: &Digest) -> std::cmp::Ordering {
        match (&self.0, &other.0) {
            (Repr::Sha256(a), Repr::Sha256(b)) => a.cmp(b),
            _ => (self.algorithm(), self.bytes()).cmp(&(other.algorithm(), other.bytes())),
        }
    }
}

impl PartialOrd for Digest {
    fn partial_cmp(&self, other: &Digest) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestError {
    input: String,
    why: &'static str,
}

impl DigestError {
    fn new(input: &str, why: &'static str) -> DigestError {
        // Keep messages short even for a garbled multi-kilobyte link file.
        let mut input: String = input.chars().take(80).collect();
        if input.len() >= 80 {
            input.push('…');
        }
        DigestError { input, why }
    }
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid digest {:?}: {}", self.input, self.why)
    }
}

impl std::error::Error for DigestError {}

/// The digest algorithms the registry stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    /// Every algorithm, in the order directories are walked.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha256, Algorithm::Sha384, Algorithm::Sha512];

    /// The name used in digests and as a directory name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The algorithm with this name, if it is one we know.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha384" => Some(Algorithm::Sha384),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// Length of the hex part of a digest.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

impl Digest {
    /// Parses `alg:hex`, refusing anything that is not exactly a known
    /// algorithm and lowercase hex of its length.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(DigestError::new(s, "expected <algorithm>:<hex>"));
        };
        let Some(alg) = Algorithm::from_name(alg) else {
            return Err(DigestError::new(
                s,
                "unknown algorithm (want sha256, sha384 or sha512)",
            ));
        };
        Digest::from_parts(alg, hex).map_err(|why| DigestError::new(s, why))
    }

    /// Builds a digest from an algorithm and its hex part (as found in a path).
    pub fn from_parts(alg: Algorithm, hex: &str) -> Result<Digest, &'static str> {
        if hex.len() != alg.hex_len() {
            return Err(match alg {
                Algorithm::Sha256 => "sha256 wants 64 hex digits",
                Algorithm::Sha384 => "sha384 wants 96 hex digits",
                Algorithm::Sha512 => "sha512 wants 128 hex digits",
            });
        }
        let mut b = [0u8; 64];
        let b = &mut b[..alg.hex_len() / 2];
        decode_hex(hex, b)?;
        Ok(Digest::from_bytes(alg, b))
    }

    /// A sha256 digest of these bytes.
    pub const fn sha256(bytes: [u8; 32]) -> Digest {
        Digest(Repr::Sha256(bytes))
    }

    /// The digest of `alg` with these raw bytes.
    ///
    /// # Panics
    /// If `bytes` is not as long as `alg`'s digests.
    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Digest {
        assert_eq!(bytes.len() * 2, alg.hex_len(), "{} digest bytes", alg.name());
        match alg {
            Algorithm::Sha256 => Digest::sha256(bytes.try_into().expect("32 bytes")),
            long => Digest(Repr::Long(intern(long, bytes))),
        }
    }

    /// The bytes of a sha256 digest; `None` for the others.
    pub fn as_sha256(&self) -> Option<&[u8; 32]> {
        match &self.0 {
            Repr::Sha256(b) => Some(b),
            Repr::Long(_) => None,
        }
    }

    /// Builds a digest from an algorithm name and hex part, both from a path.
    pub fn from_path_parts(alg: &str, hex: &str) -> Result<Digest, DigestError> {
        let Some(a) = Algorithm::from_name(alg) else {
            return Err(DigestError::new(alg, "unknown algorithm directory"));
        };
        Digest::from_parts(a, hex).map_err(|why| DigestError::new(&format!("{alg}:{hex}"), why))
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest::sha256(sha2::Sha256::digest(data).into())
    }

    /// The digest of `data` under this digest's algorithm.
    pub fn same_alg_of(&self, data: &[u8]) -> Digest {
        match self.algorithm() {
            Algorithm::Sha256 => Digest::sha256_of(data),
            Algorithm::Sha384 => Digest::from_bytes(Algorithm::Sha384, &sha2::Sha384::digest(data)),
            Algorithm::Sha512 => Digest::from_bytes(Algorithm::Sha512, &sha2::Sha512::digest(data)),
        }
    }

    /// Whether `data` hashes to this digest.
    pub fn matches(&self, data: &[u8]) -> bool {
        self.same_alg_of(data) == *self
    }

    /// A streaming hasher for this digest's algorithm.
    pub fn hasher(&self) -> DigestHasher {
        match self.algorithm() {
            Algorithm::Sha256 => DigestHasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => DigestHasher::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => DigestHasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match &self.0 {
            Repr::Sha256(_) => Algorithm::Sha256,
            Repr::Long(l) => l.alg,
        }
    }

    /// The raw digest bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Sha256(b) => b,
            Repr::Long(l) => &l.bytes,
        }
    }

    /// The hex part, lowercase.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(self.bytes().len() * 2);
        for b in self.bytes() {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// `<alg>/<hex>`: how link directories name a digest.
    pub fn path_parts(&self) -> String {
        format!("{}/{}", self.algorithm().name(), self.hex())
    }
}

/// Incremental hashing, for checking blobs too large to read at once.
pub enum DigestHasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl DigestHasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(data),
            DigestHasher::Sha384(h) => h.update(data),
            DigestHasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            DigestHasher::Sha256(h) => Digest::sha256(h.finalize().into()),
            DigestHasher::Sha384(h) => Digest::from_bytes(Algorithm::Sha384, &h.finalize()),
            DigestHasher::Sha512(h) => Digest::from_bytes(Algorithm::Sha512, &h.finalize()),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn decode_hex(hex: &str, out: &mut [u8]) -> Result<(), &'static str> {
    fn val(c: u8) -> Result<u8, &'static str> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Err("hex digits must be lowercase"),
            _ => Err("not a hex digit"),
        }
    }
    for (o, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *o = (val(pair[0])? << 4) | val(pair[1])?;
    }
    Ok(())
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm().name(), self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A hasher for keys that are already uniformly random (digest bytes): it
/// takes the first eight bytes it is given instead of hashing them again.
#[derive(Default, Clone, Copy)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() >= 8 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[..8]);
            self.0 ^= u64::from_le_bytes(b);
        } else {
            for &x in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(x);
            }
        }
    }
    // Slice length prefixes carry no information for fixed-size keys.
    fn write_usize(&mut self, _: usize) {}
}

/// `BuildHasher` for [`PrehashedHasher`].
pub type Prehashed = BuildHasherDefault<PrehashedHasher>;

/// A compact set of digests: 32 bytes per sha256 entry plus hash table slack
/// (the longer digests, rare, as they are).
#[derive(Default, Clone)]
pub struct DigestSet {
    sha256: HashSet<[u8; 32], Prehashed>,
    long: HashSet<Digest, Prehashed>,
}

impl DigestSet {
    pub fn new() -> DigestSet {
        DigestSet::default()
    }

    /// Adds a digest; true if it was not there yet.
    pub fn insert(&mut self, d: Digest) -> bool {
        match d.as_sha256() {
            Some(b) => self.sha256.insert(*b),
            None => self.long.insert(d),
        }
    }

    pub fn contains(&self, d: &Digest) -> bool {
        match d.as_sha256() {
            Some(b) => self.sha256.contains(b),
            None => self.long.contains(d),
        }
    }

    pub fn len(&self) -> usize {
        self.sha256.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every digest, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Digest> + '_ {
        self.sha256
            .iter()
            .map(|b| Digest::sha256(*b))
            .chain(self.long.iter().copied())
    }

    pub fn extend(&mut self, other: DigestSet) {
        self.sha256.extend(other.sha256);
        self.long.extend(other.long);
    }
}

impl FromIterator<Digest> for DigestSet {
    fn from_iter<I: IntoIterator<Item = Digest>>(iter: I) -> DigestSet {
        let mut s = DigestSet::new();
        for d in iter {
            s.insert(d);
        }
        s
    }
}

// ---- compact sets and hashers -------------------------------------------

/// Hashes a manifest id (a small dense integer) by itself.
pub(crate) type IdHash = BuildHasherDefault<IdHasher>;

#[derive(Default)]
pub(crate) struct IdHasher(pub(crate) u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Spread the id over the high bits the table looks at too.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i);
    }
}

/// A set built by pushing and then sorted once ([`SortedSet::finish`]):
/// exactly the size of its keys, without a hash table's slack (a table of a
/// million digests can take twice their size). Lookups are binary searches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SortedSet<K> {
    pub(crate) items: Vec<K>,
    /// How many items the last compaction left.
    clean: usize,
    /// For large sets of digests: where the items whose first two bytes
    /// are `p` start (`index[p]`) and end (`index[p + 1]`), so that a lookup
    /// searches a few items instead of the whole list.
    pub(crate) index: Vec<u32>,
}

impl<K> Default for SortedSet<K> {
    fn default() -> SortedSet<K> {
        SortedSet {
            items: Vec::new(),
            clean: 0,
            index: Vec::new(),
        }
    }
}

/// A key of a [`SortedSet`]; digests say their first two bytes (uniformly
/// random, so they index the set evenly).
pub(crate) trait Key: Ord + Copy {
    fn top16(&self) -> Option<u16> {
        None
    }
}

impl Key for u64 {
    fn top16(&self) -> Option<u16> {
        Some((self >> 48) as u16)
    }
}

impl Key for (u32, u64) {}

/// Whole digests (reg-rm's named blobs): their order is by algorithm
/// first, so no index by the first two bytes.
impl Key for Digest {}

impl Key for u32 {}

impl<K: Key> SortedSet<K> {
    pub(crate) fn insert(&mut self, k: K) {
        if self.items.last() == Some(&k) {
            return;
        }
        self.items.push(k);
        // Sorting away duplicates whenever the list doubles keeps it within
        // twice the set's size while reading.
        if self.items.len() >= 2 * self.clean.max(1 << 16) {
            self.compact();
        }
    }

    pub(crate) fn compact(&mut self) {
        self.items.sort_unstable();
        self.items.dedup();
        self.clean = self.items.len();
    }

    /// Sorts and dedups: call once every key is in, before any lookup.
    pub(crate) fn finish(&mut self) {
        self.compact();
        self.items.shrink_to_fit();
        self.index.clear();
        if self.items.len() >= 1 << 16 && self.items[0].top16().is_some() {
            self.index = (0..=1u32 << 16)
                .map(|p| self.items.partition_point(|k| k.top16().map_or(0, u32::from) < p) as u32)
                .collect();
        }
    }

    pub(crate) fn position(&self, k: &K) -> Option<usize> {
        match k.top16() {
            Some(p) if !self.index.is_empty() => {
                let (lo, hi) = (
                    self.index[p as usize] as usize,
                    self.index[p as usize + 1] as usize,
                );
                self.items[lo..hi].binary_search(k).ok().map(|i| lo + i)
            }
            _ => self.items.binary_search(k).ok(),
        }
    }

    pub(crate) fn contains(&self, k: &K) -> bool {
        self.position(k).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<K: Key> FromIterator<K> for SortedSet<K> {
    fn from_iter<I: IntoIterator<Item = K>>(iter: I) -> SortedSet<K> {
        let mut s = SortedSet::default();
        for k in iter {
            s.insert(k);
        }
        s.finish();
        s
    }
}

/// Some of a finished [`SortedSet`]'s keys, a bit each: reg-rm's doomed
/// blobs among the blobs named, 1/320 of their digests' size (a set of
/// their own took 5.5 MB at 1M objects; issue 18).
#[derive(Clone, Debug)]
pub(crate) struct Subset<'s, K> {
    of: &'s SortedSet<K>,
    bits: Vec<u64>,
    len: usize,
}

impl<'s, K: Key> Subset<'s, K> {
    /// None of `of`'s keys.
    pub(crate) fn none_of(of: &'s SortedSet<K>) -> Subset<'s, K> {
        Subset {
            of,
            bits: vec![0; of.len().div_ceil(64)],
            len: 0,
        }
    }

    /// Adds `k`; false (and nothing added) if the set it is a part of does
    /// not have it.
    pub(crate) fn insert(&mut self, k: &K) -> bool {
        let Some(i) = self.of.position(k) else {
            return false;
        };
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
            self.len += 1;
        }
        true
    }

    /// Where `k` is in the whole set, if it is in this part of it.
    pub(crate) fn position(&self, k: &K) -> Option<usize> {
        self.of
            .position(k)
            .filter(|&i| self.bits[i / 64] & (1 << (i % 64)) != 0)
    }

    pub(crate) fn contains(&self, k: &K) -> bool {
        self.position(k).is_some()
    }

    /// Where each key in it is in the whole set, in order.
    pub(crate) fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.iter().enumerate().flat_map(|(w, &word)| {
            let mut left = word;
            std::iter::from_fn(move || {
                (left != 0).then(|| {
                    let b = left.trailing_zeros() as usize;
                    left &= left - 1;
                    w * 64 + b
                })
            })
        })
    }

    /// Its keys, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = K> + '_ {
        self.positions().map(|i| self.of.items[i])
    }

    /// Keeps only the keys `keep` says to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let gone: Vec<usize> = self.positions().filter(|&i| !keep(&self.of.items[i])).collect();
        for i in gone {
            self.bits[i / 64] &= !(1 << (i % 64));
            self.len -= 1;
        }
    }

    /// Empties it.
    pub(crate) fn clear(&mut self) {
        self.bits.fill(0);
        self.len = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What the referenced sets hold of a digest: its first eight bytes.
///
/// Only ever used to ask "does the input name this?", so two digests that
/// share their first eight bytes can only make an unreferenced one look
/// referenced, which keeps it: never the other way. Digests are uniformly
/// spread (a chance of 2^-64 per pair; someone who can push could make such
/// a pair with about 2^32 hashes, and that would only keep a blob). A
/// quarter of the memory of whole digests, at a million of them.
pub(crate) fn key(d: &Digest) -> u64 {
    u64::from_be_bytes(
        d.bytes()[..8]
            .try_into()
            .expect("a digest is longer than 8 bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_subset_holds_only_keys_of_its_set_a_bit_each() {
        let all: SortedSet<u32> = [5, 1, 9, 200, 64, 63, 65, 7].into_iter().collect();
        let mut some = Subset::none_of(&all);
        assert!(some.is_empty());
        assert!(!some.insert(&6), "not in the set: refused");
        for k in [65, 1, 200, 63, 65] {
            assert!(some.insert(&k));
        }
        assert_eq!(some.len(), 4);
        assert_eq!(some.iter().collect::<Vec<_>>(), [1, 63, 65, 200]);
        assert!(some.contains(&63) && !some.contains(&64) && !some.contains(&6));
        some.retain(|&k| k != 63 && k != 200);
        assert_eq!(some.iter().collect::<Vec<_>>(), [1, 65]);
        assert_eq!(some.len(), 2);
        assert_eq!(some.positions().collect::<Vec<_>>(), [0, 6]);
        some.clear();
        assert!(some.is_empty() && some.iter().next().is_none());
        // Across words of bits.
        let many: SortedSet<u32> = (0..1000).collect();
        let mut odd = Subset::none_of(&many);
        (1..1000).step_by(2).for_each(|k| {
            odd.insert(&k);
        });
        assert_eq!(odd.len(), 500);
        assert!(odd.iter().eq((1..1000).step_by(2)));
    }

    #[test]
    fn long_digests_are_held_once_and_ordered_by_algorithm_then_bytes() {
        assert_eq!(std::mem::size_of::<Digest>(), 40);
        let parse =
            |alg: &str, hex: &str, n: usize| Digest::parse(&format!("{alg}:{}", hex.repeat(n))).unwrap();
        let (a, b) = (parse("sha512", "ab", 64), parse("sha512", "ab", 64));
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.bytes(), b.bytes()), "one copy of a long digest");
        let state = std::hash::RandomState::new();
        assert_eq!(
            std::hash::BuildHasher::hash_one(&state, a),
            std::hash::BuildHasher::hash_one(&state, b)
        );
        let mut all = [
            parse("sha512", "00", 64),
            parse("sha384", "ff", 48),
            parse("sha256", "ff", 32),
            parse("sha384", "01", 48),
            parse("sha256", "00", 32),
            a,
        ];
        all.sort();
        let names: Vec<String> = all.iter().map(|d| d.to_string()[..8].to_string()).collect();
        assert_eq!(
            names,
            ["sha256:0", "sha256:f", "sha384:0", "sha384:f", "sha512:0", "sha512:a"]
        );
        assert_ne!(parse("sha384", "ab", 48), parse("sha512", "ab", 64));
        let set: HashSet<Digest> = [a, b, parse("sha384", "ab", 48)].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert_eq!(a.as_sha256(), None);
        assert_eq!(Digest::from_bytes(Algorithm::Sha512, a.bytes()), a);
    }

    #[test]
    fn parses_and_prints() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::sha256_of(b""));
        assert!(d.matches(b""));
        assert!(!d.matches(b"x"));
        for (alg, n) in [("sha384", 48), ("sha512", 64)] {
            let long = format!("{alg}:{}", "ab".repeat(n));
            let d = Digest::parse(&long).unwrap();
            assert_eq!(d.to_string(), long);
            assert_eq!(d.algorithm().name(), alg);
            assert_eq!(d.bytes().len(), n);
        }
        let d384 = Digest::parse(&format!("sha384:{}", "0".repeat(96))).unwrap();
        let of = d384.same_alg_of(b"");
        assert_eq!(
            of.to_string(),
            "sha384:38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"
        );
        assert!(of.matches(b""));
        let mut h = of.hasher();
        h.update(b"");
        assert_eq!(h.finish(), of);
    }

    #[test]
    fn rejects_what_is_not_a_digest() {
        let table = [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "sha256:../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85\n",
            " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha384:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "blake3:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ];
        for s in table {
            assert!(Digest::parse(s).is_err(), "{s:?} parsed");
        }
    }

    #[test]
    fn error_names_the_input() {
        let e = Digest::parse("sha256:zz").unwrap_err().to_string();
        assert!(e.contains("sha256:zz"), "{e}");
    }

    #[test]
    fn serde_round_trip() {
        let d = Digest::parse(EMPTY).unwrap();
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(j, format!("\"{EMPTY}\""));
        let back: Digest = serde_json::from_str(&j).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
    }

    #[test]
    fn set_is_compact_and_exact() {
        let mut s = DigestSet::new();
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        assert!(s.insert(a));
        assert!(!s.insert(a));
        assert!(s.contains(&a));
        assert!(!s.contains(&b));
        assert_eq!(s.len(), 1);
        assert_eq!(std::mem::size_of::<[u8; 32]>(), 32);
    }

    #[test]
    fn streaming_hash_matches() {
        let d = Digest::sha256_of(b"hello world");
        let mut h = d.hasher();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), d);
    }
}
