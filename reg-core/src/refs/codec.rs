//! The packed form of the graph's data: digests as a code byte, the raw
//! digest and a varint size ([`pack`], [`Unpack`]), and a parsed manifest as
//! one byte string of them ([`node_of`], [`Node`]).

use super::*;
use crate::digest::Algorithm;

// ---- packed digests -----------------------------------------------------------

// A packed entry: a tag byte (a code in the low bits, `SHA512` or `SHA384`
// if the digest is not a sha256 one, `SIZED` if a size follows), the digest's
// raw bytes (32, 48 or 64), then the size as a LEB128 varint. About 36 bytes for a sha256 layer
// instead of the 152 of an [`Edge`]. In the cache's arena, the entries that
// name manifests (children, subject) hold a 4-byte manifest id instead of
// the digest.
pub(super) const CODE_MASK: u8 = 0x0f;
pub(super) const SHA512: u8 = 0x10;
pub(super) const SIZED: u8 = 0x20;
pub(super) const SHA384: u8 = 0x40;
/// Codes: the three edge kinds a manifest has itself, and its subject.
pub(super) const CHILD: u8 = 0;
pub(super) const CONFIG: u8 = 1;
pub(super) const LAYER: u8 = 2;
pub(super) const SUBJECT: u8 = 3;

pub(super) fn pack(buf: &mut Vec<u8>, code: u8, d: &Digest, size: Option<u64>) {
    let mut tag = code;
    match d.algorithm() {
        Algorithm::Sha256 => {}
        Algorithm::Sha384 => tag |= SHA384,
        Algorithm::Sha512 => tag |= SHA512,
    }
    if size.is_some() {
        tag |= SIZED;
    }
    buf.push(tag);
    buf.extend_from_slice(d.bytes());
    if let Some(s) = size {
        put_varint(buf, s);
    }
}

pub(super) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a LEB128 varint off the front of `rest`.
pub(super) fn take_varint(rest: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let (&b, r) = rest.split_first().expect("a complete varint");
        *rest = r;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// Reads a packed digest (after its tag byte) off the front of `rest`.
pub(super) fn take_digest(tag: u8, rest: &mut &[u8]) -> Digest {
    let alg = if tag & SHA512 != 0 {
        Algorithm::Sha512
    } else if tag & SHA384 != 0 {
        Algorithm::Sha384
    } else {
        Algorithm::Sha256
    };
    let (b, r) = rest.split_at(alg.hex_len() / 2);
    *rest = r;
    Digest::from_bytes(alg, b)
}

/// The entries of a packed byte string, as (code, digest, size).
pub(super) struct Unpack<'a>(pub(super) &'a [u8]);

impl Iterator for Unpack<'_> {
    type Item = (u8, Digest, Option<u64>);

    fn next(&mut self) -> Option<Self::Item> {
        let (&tag, mut rest) = self.0.split_first()?;
        let d = take_digest(tag, &mut rest);
        let size = (tag & SIZED != 0).then(|| take_varint(&mut rest));
        self.0 = rest;
        Some((tag & CODE_MASK, d, size))
    }
}

// ---- manifests ------------------------------------------------------------

/// A manifest id: an index into the cache's sha256 keys or, with [`IDLONG`]
/// set, into its longer (sha384, sha512) ones.
pub(super) type Id = u32;
pub(super) const IDLONG: Id = 1 << 31;

/// One entry of a parsed manifest in the cache's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Item {
    /// An index entry (or a descriptor whose media type says manifest).
    Child(Id),
    Subject(Id),
    /// A config (code [`CONFIG`]) or a layer or other blob ([`LAYER`]).
    Blob(u8, Digest, Option<u64>),
}

/// The entries of a parsed manifest, as stored in the arena.
#[derive(Clone, Copy)]
pub(super) struct Node<'a>(pub(super) &'a [u8]);

impl<'a> Node<'a> {
    pub(super) fn items(self) -> impl Iterator<Item = Item> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let (&tag, r) = rest.split_first()?;
            rest = r;
            let code = tag & CODE_MASK;
            Some(match code {
                CHILD | SUBJECT => {
                    let (b, r) = rest.split_at(4);
                    rest = r;
                    let id = Id::from_le_bytes(b.try_into().expect("4 bytes"));
                    if code == CHILD {
                        Item::Child(id)
                    } else {
                        Item::Subject(id)
                    }
                }
                _ => {
                    let d = take_digest(tag, &mut rest);
                    let size = (tag & SIZED != 0).then(|| take_varint(&mut rest));
                    Item::Blob(code, d, size)
                }
            })
        })
    }

    pub(super) fn subjects(self) -> impl Iterator<Item = Id> + 'a {
        self.items().filter_map(|i| match i {
            Item::Subject(s) => Some(s),
            _ => None,
        })
    }

    pub(super) fn children(self) -> impl Iterator<Item = Id> + 'a {
        self.items().filter_map(|i| match i {
            Item::Child(c) => Some(c),
            _ => None,
        })
    }

    /// Child, config and layer edges, in output order.
    pub(super) fn edges(
        self,
        cache: &'a InRunManifests,
    ) -> impl Iterator<Item = (EdgeKind, Digest, Option<u64>)> + 'a {
        self.items().filter_map(move |i| match i {
            Item::Child(c) => Some((EdgeKind::Manifest, cache.digest(c), None)),
            Item::Blob(CONFIG, d, size) => Some((EdgeKind::Config, d, size)),
            Item::Blob(_, d, size) => Some((EdgeKind::Layer, d, size)),
            Item::Subject(_) => None,
        })
    }

    pub(super) fn edge_count(self) -> usize {
        self.items().filter(|i| !matches!(i, Item::Subject(_))).count()
    }
}

/// What the graph keeps of a parsed manifest, packed with full digests (see
/// [`pack`]): its subject, then its children (index entries to follow), then
/// its config, layers and other blobs in document order — each (kind,
/// target) once, as it is printed. [`InRunManifests::put`] stores it in the arena.
pub(super) fn node_of(m: manifest::Manifest) -> Vec<u8> {
    let mut buf = Vec::with_capacity(40 * (m.layers.len() + m.children.len() + m.other.len() + 2));
    for s in &m.subjects {
        pack(&mut buf, SUBJECT, &s.digest, None);
    }
    // One edge per (kind, target) within a manifest: an image may list the
    // same layer twice; the first one is kept.
    let mut seen: HashSet<(u8, Digest)> = HashSet::new();
    let mut add = |buf: &mut Vec<u8>, code: u8, d: &manifest::Descriptor, size: Option<u64>| {
        if seen.insert((code, d.digest)) {
            pack(buf, code, &d.digest, size);
        }
    };
    // Every descriptor of an unknown kind is kept: as a blob, or, when its
    // media type says it is a manifest, as a child followed like an index
    // entry (so what it references is kept too). When in doubt, keep.
    let is_manifest = |d: &manifest::Descriptor| {
        d.media_type
            .as_deref()
            .is_some_and(|t| manifest::Kind::from_media_type(t) != manifest::Kind::Unknown)
    };
    for d in m.children.iter().chain(m.other.iter().filter(|d| is_manifest(d))) {
        add(&mut buf, CHILD, d, None);
    }
    for c in &m.configs {
        add(&mut buf, CONFIG, c, c.size);
    }
    // Layers, artifact blobs and schema1 fsLayers: blobs to keep.
    for d in m.layers.iter().chain(m.other.iter().filter(|d| !is_manifest(d))) {
        add(&mut buf, LAYER, d, d.size);
    }
    buf
}
