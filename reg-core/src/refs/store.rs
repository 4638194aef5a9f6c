//! The in-run manifest store (not the on-disk `--manifest-cache`): every
//! manifest digest the walk meets, interned once as a 4-byte id, with its
//! state and its packed node in one arena ([`InRunManifests`]).

use super::*;

/// A manifest as [`load`] returns it: packed by [`node_of`], with the
/// parser's notes; `None` if its data is missing.
pub(super) type Loaded = Result<Option<(Vec<u8>, Vec<String>)>, Error>;

/// Manifests, through [`Store::manifests`] (the reads all at once), each
/// packed; in the order of `ds`.
pub(super) fn load_many(store: &Store, ds: &[Digest]) -> Vec<Loaded> {
    store
        .manifests(ds)
        .into_par_iter()
        .map(|m| {
            Ok(m?.map(|mut m| {
                let notes = std::mem::take(&mut m.notes);
                (node_of(m), notes)
            }))
        })
        .collect()
}

/// What is known of one manifest.
///
/// `full: false` is a manifest read only for its subject and children: a
/// revision that is not a root, which only a live subject or index can make
/// live. Its configs and layers are not kept (with `--tagged-only` most
/// such revisions stay dead); if it turns out live, it is read again whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Named (a child, a subject, a revision) but not asked for yet.
    Unknown,
    /// To load; first asked for by repository `repo` (for messages).
    Pending { repo: u32, full: bool },
    /// Its data is missing (or, with [`Config::broken_ok`], unusable).
    Missing,
    /// Parsed: its entries are at this place of the arena ([`Arena::get`]).
    Parsed { at: u64, full: bool },
}

pub(super) const S_UNKNOWN: u64 = u64::MAX;
pub(super) const S_MISSING: u64 = u64::MAX - 1;
pub(super) const S_PENDING: u64 = 1 << 62;
pub(super) const S_PART: u64 = 1 << 61;

impl State {
    pub(super) fn encode(self) -> u64 {
        let part = |full: bool| if full { 0 } else { S_PART };
        match self {
            State::Unknown => S_UNKNOWN,
            State::Missing => S_MISSING,
            State::Pending { repo, full } => S_PENDING | part(full) | u64::from(repo),
            State::Parsed { at, full } => {
                assert!(at < S_PART, "manifest arena too large");
                part(full) | at
            }
        }
    }

    pub(super) fn decode(s: u64) -> State {
        let full = s & S_PART == 0;
        match s {
            S_UNKNOWN => State::Unknown,
            S_MISSING => State::Missing,
            s if s & S_PENDING != 0 => State::Pending { repo: s as u32, full },
            s => State::Parsed {
                at: s & (S_PART - 1),
                full,
            },
        }
    }
}

/// The in-run manifest store (not the on-disk `--manifest-cache`): every
/// manifest digest the walk has met, interned once (32 bytes for a
/// sha256 one, plus 4 bytes of hash table and 8 of state), and the parsed
/// manifests packed one after another in one arena: no allocation, hash
/// entry or pointer per manifest. Roots and index children are ids.
#[derive(Default)]
pub(super) struct InRunManifests {
    pub(super) k256: Vec<[u8; 32]>,
    /// sha384 and sha512 digests (rare), whole.
    pub(super) klong: Vec<Digest>,
    /// Ids by digest, hashed by the digest's first eight bytes.
    pub(super) index: hashbrown::HashTable<Id>,
    /// By id (like the keys): the [`State`], encoded.
    pub(super) s256: Vec<u64>,
    pub(super) slong: Vec<u64>,
    pub(super) arena: Arena,
    /// With [`Config::broken_ok`]: manifests that are there but unusable
    /// (loaded as missing), and why.
    pub(super) unusable: HashMap<Digest, String>,
    /// Manifests whose parser notes were warned about.
    pub(super) noted: HashSet<Digest>,
    /// Ids [`InRunManifests::want`] marked pending, in the order asked.
    pub(super) queue: Vec<Id>,
    /// Ids in [`State::Pending`] now: reads to come, for the progress line.
    pub(super) pending: u64,
}

/// The parsed manifests, packed one after another in blocks of [`BLOCK`]
/// bytes (a larger one gets a block of its own): no allocation per
/// manifest, and no reallocation of the whole as it grows (a doubling
/// vector would copy it and hold up to twice its size).
#[derive(Default)]
pub(super) struct Arena {
    pub(super) blocks: Vec<Vec<u8>>,
}

pub(super) const BLOCK: usize = 1 << 20;

impl Arena {
    /// Stores `bytes` (its length, a varint, then the bytes); returns where:
    /// the block in the high 32 bits, the offset in the low ones.
    pub(super) fn push(&mut self, bytes: &[u8]) -> u64 {
        let need = bytes.len() + 10;
        let fits = self.blocks.last().is_some_and(|b| b.capacity() - b.len() >= need);
        if !fits {
            self.blocks.push(Vec::with_capacity(need.max(BLOCK)));
        }
        let index = self.blocks.len() - 1;
        let block = &mut self.blocks[index];
        let at = ((index as u64) << 32) | block.len() as u64;
        put_varint(block, bytes.len() as u64);
        block.extend_from_slice(bytes);
        at
    }

    pub(super) fn get(&self, at: u64) -> &[u8] {
        let block = &self.blocks[(at >> 32) as usize];
        let mut rest = &block[(at & 0xffff_ffff) as usize..];
        let len = take_varint(&mut rest) as usize;
        &rest[..len]
    }
}

/// A digest's hash: its first eight bytes (digests are uniformly spread).
pub(super) fn hash_of(key: &[u8]) -> u64 {
    u64::from_le_bytes(key[..8].try_into().expect("a digest is longer than 8 bytes"))
}

pub(super) fn key_of<'a>(k256: &'a [[u8; 32]], klong: &'a [Digest], id: Id) -> &'a [u8] {
    if id & IDLONG != 0 {
        klong[(id & !IDLONG) as usize].bytes()
    } else {
        &k256[id as usize]
    }
}

impl InRunManifests {
    pub(super) fn digest(&self, id: Id) -> Digest {
        if id & IDLONG != 0 {
            self.klong[(id & !IDLONG) as usize]
        } else {
            Digest::sha256(self.k256[id as usize])
        }
    }

    /// Orders ids as their digests are ordered.
    pub(super) fn cmp_ids(&self, a: Id, b: Id) -> std::cmp::Ordering {
        if (a | b) & IDLONG != 0 {
            return self.digest(a).cmp(&self.digest(b));
        }
        key_of(&self.k256, &self.klong, a).cmp(key_of(&self.k256, &self.klong, b))
    }

    /// The id of `d`, if it is interned.
    pub(super) fn find(&self, d: &Digest) -> Option<Id> {
        let key = d.bytes();
        self.index
            .find(hash_of(key), |&id| match d.as_sha256() {
                Some(b) => id & IDLONG == 0 && self.k256[id as usize] == *b,
                None => id & IDLONG != 0 && self.klong[(id & !IDLONG) as usize] == *d,
            })
            .copied()
    }

    /// The id of `d`, interned as [`State::Unknown`] if new.
    pub(super) fn intern(&mut self, d: &Digest) -> Id {
        let key = d.bytes();
        let (k256, klong) = (&self.k256, &self.klong);
        let entry = self.index.entry(
            hash_of(key),
            |&id| match d.as_sha256() {
                Some(b) => id & IDLONG == 0 && k256[id as usize] == *b,
                None => id & IDLONG != 0 && klong[(id & !IDLONG) as usize] == *d,
            },
            |&id| hash_of(key_of(k256, klong, id)),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(e) => *e.get(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                assert!(
                    self.k256.len().max(self.klong.len()) < IDLONG as usize,
                    "more than 2^31 manifests"
                );
                let id = match d.as_sha256() {
                    Some(b) => {
                        self.k256.push(*b);
                        self.s256.push(S_UNKNOWN);
                        (self.k256.len() - 1) as Id
                    }
                    None => {
                        self.klong.push(*d);
                        self.slong.push(S_UNKNOWN);
                        (self.klong.len() - 1) as Id | IDLONG
                    }
                };
                v.insert(id);
                id
            }
        }
    }

    pub(super) fn state(&self, id: Id) -> State {
        State::decode(if id & IDLONG != 0 {
            self.slong[(id & !IDLONG) as usize]
        } else {
            self.s256[id as usize]
        })
    }

    pub(super) fn set(&mut self, id: Id, s: State) {
        let slot = if id & IDLONG != 0 {
            &mut self.slong[(id & !IDLONG) as usize]
        } else {
            &mut self.s256[id as usize]
        };
        let was = State::decode(*slot);
        *slot = s.encode();
        match (
            matches!(was, State::Pending { .. }),
            matches!(s, State::Pending { .. }),
        ) {
            (false, true) => self.pending += 1,
            (true, false) => self.pending -= 1,
            _ => {}
        }
    }

    /// Every id, sha256 ones first.
    pub(super) fn ids(&self) -> impl Iterator<Item = Id> {
        (0..self.k256.len() as Id).chain((0..self.klong.len() as Id).map(|i| i | IDLONG))
    }

    /// The parsed manifest `id`, if it is one.
    pub(super) fn node(&self, id: Id) -> Option<Node<'_>> {
        let State::Parsed { at, .. } = self.state(id) else {
            return None;
        };
        Some(Node(self.arena.get(at)))
    }

    /// Stores `raw` (from [`node_of`]) as manifest `id`, parsed, with its
    /// children and subject as ids; without its configs and layers unless
    /// `full`. `scratch` is reused between calls.
    pub(super) fn put(&mut self, id: Id, raw: &[u8], full: bool, scratch: &mut Vec<u8>) {
        scratch.clear();
        for (code, d, size) in Unpack(raw) {
            if code == CHILD || code == SUBJECT {
                scratch.push(code);
                scratch.extend_from_slice(&self.intern(&d).to_le_bytes());
            } else if full {
                pack(scratch, code, &d, size);
            }
        }
        let at = self.arena.push(scratch);
        self.set(id, State::Parsed { at, full });
    }

    /// Marks `id` to load, for repository `repo`: whole if `full` (then a
    /// manifest read only in part is read again), else for its subject and
    /// children only. Nothing changes if that much is known or asked.
    pub(super) fn want(&mut self, id: Id, repo: u32, full: bool) {
        let pending = match self.state(id) {
            State::Unknown => State::Pending { repo, full },
            State::Pending { repo, full: false } if full => State::Pending { repo, full },
            State::Parsed { full: false, .. } if full => State::Pending { repo, full },
            _ => return,
        };
        self.set(id, pending);
        self.queue.push(id);
    }

    /// Distinct manifests read (whole or in part).
    pub(super) fn parsed(&self) -> u64 {
        self.ids()
            .filter(|&id| matches!(self.state(id), State::Parsed { .. }))
            .count() as u64
    }
}
