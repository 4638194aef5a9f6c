//! JSON written byte for byte: duplicate keys, keys in other cases and Go's
//! folds, escaped keys, invalid UTF-8, lone surrogate escapes, nesting as
//! deep as Go allows. serde_json cannot write any of that, and a manifest's
//! digest is the hash of its exact bytes, so documents are built here as a
//! tree of raw pieces and written once.

use super::rng::Rng;

/// A JSON value as it will be written. Keys and strings hold the bytes
/// between the quotes, escapes included: `Str(b"\\ud800")` is written
/// `"\ud800"`.
#[derive(Clone, Debug)]
pub enum J {
    /// Members in order; the same key may come twice.
    Obj(Vec<(Vec<u8>, J)>),
    Arr(Vec<J>),
    Str(Vec<u8>),
    /// A number as written (`5`, `-0`, `1e400`).
    Num(String),
    Null,
    /// Written as is (e.g. 9,000 nested arrays).
    Raw(Vec<u8>),
}

impl J {
    /// A string, escaped as any encoder would.
    pub fn str(s: &str) -> J {
        J::Str(escape(s))
    }

    pub fn int(n: u64) -> J {
        J::Num(n.to_string())
    }

    pub fn obj() -> J {
        J::Obj(Vec::new())
    }

    /// Appends a member to an object (a duplicate key is appended too).
    pub fn push(&mut self, key: Vec<u8>, value: J) {
        match self {
            J::Obj(members) => members.push((key, value)),
            other => panic!("push on {other:?}"),
        }
    }

    /// The document's bytes.
    pub fn write(&self, style: Style) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_into(&mut out, style, 0);
        if style == Style::Pretty {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn write_into(&self, out: &mut Vec<u8>, style: Style, depth: usize) {
        match self {
            J::Obj(members) => write_seq(out, style, depth, *b"{}", members, |out, (k, v)| {
                out.push(b'"');
                out.extend_from_slice(k);
                out.extend_from_slice(if style == Style::Pretty { b"\" : " } else { b"\":" });
                v.write_into(out, style, depth + 1);
            }),
            J::Arr(items) => write_seq(out, style, depth, *b"[]", items, |out, v| {
                v.write_into(out, style, depth + 1)
            }),
            J::Str(s) => {
                out.push(b'"');
                out.extend_from_slice(s);
                out.push(b'"');
            }
            J::Num(n) => out.extend_from_slice(n.as_bytes()),
            J::Null => out.extend_from_slice(b"null"),
            J::Raw(r) => out.extend_from_slice(r),
        }
    }
}

/// An object's or array's `brackets` around `items`, each written by
/// `write` after a comma (but the first) and, in [`Style::Pretty`], on a line
/// of its own one tab deeper than `depth`.
fn write_seq<T>(
    out: &mut Vec<u8>,
    style: Style,
    depth: usize,
    [open, close]: [u8; 2],
    items: &[T],
    write: impl Fn(&mut Vec<u8>, &T),
) {
    out.push(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        newline(out, style, depth + 1);
        write(out, item);
    }
    if !items.is_empty() {
        newline(out, style, depth);
    }
    out.push(close);
}

/// In [`Style::Pretty`], a newline and `depth` tabs.
fn newline(out: &mut Vec<u8>, style: Style, depth: usize) {
    if style == Style::Pretty {
        out.extend_from_slice(b"\n");
        out.extend(std::iter::repeat_n(b'\t', depth));
    }
}

/// How the document is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Compact,
    /// Tabs, newlines, spaces around colons, a trailing CRLF.
    Pretty,
}

/// `s` escaped for the inside of a JSON string.
pub fn escape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// How a known key is written. Go's `encoding/json` takes every spelling
/// for the field (keys are unescaped, then matched exactly or, failing
/// that, case-insensitively with `ſ` (U+017F) folding to `s` and the Kelvin
/// sign (U+212A) to `k`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Spelling {
    Exact,
    /// `Layers`, `MediaType`
    Capitalized,
    /// `LAYERS`
    Upper,
    /// `lAyErS`
    Mixed,
    /// `layerſ` (every `s` as U+017F, every `k` as U+212A, as UTF-8)
    LongS,
    /// `\u006cayers`: one letter as a `\u` escape
    Escaped,
    /// `layer\u017f`: the fold written as an escape
    EscapedLongS,
}

impl Spelling {
    pub const FOLDS: [Spelling; 6] = [
        Spelling::Capitalized,
        Spelling::Upper,
        Spelling::Mixed,
        Spelling::LongS,
        Spelling::Escaped,
        Spelling::EscapedLongS,
    ];

    /// A word for descriptions.
    pub fn name(self) -> &'static str {
        match self {
            Spelling::Exact => "exact",
            Spelling::Capitalized => "capitalized",
            Spelling::Upper => "upper case",
            Spelling::Mixed => "mixed case",
            Spelling::LongS => "long s / Kelvin fold",
            Spelling::Escaped => "\\u-escaped letter",
            Spelling::EscapedLongS => "\\u017f-escaped fold",
        }
    }

    /// The key bytes for `field` (ASCII) in this spelling. Spellings that
    /// do not apply to the field (no `s` or `k` for the folds) fall back
    /// to [`Spelling::Capitalized`]; [`Spelling::applies`] tells.
    pub fn write(self, field: &str, rng: &mut Rng) -> Vec<u8> {
        let foldable = |c: char| matches!(c, 's' | 'S' | 'k' | 'K');
        match self {
            Spelling::Exact => field.as_bytes().to_vec(),
            Spelling::Capitalized => {
                let mut c = field.chars();
                let first = c.next().map(|f| f.to_ascii_uppercase()).into_iter();
                first.chain(c).collect::<String>().into_bytes()
            }
            Spelling::Upper => field.to_ascii_uppercase().into_bytes(),
            Spelling::Mixed => {
                let mut s: Vec<u8> = field
                    .bytes()
                    .map(|b| {
                        if rng.chance(50) {
                            b.to_ascii_uppercase()
                        } else {
                            b.to_ascii_lowercase()
                        }
                    })
                    .collect();
                if s == field.as_bytes() {
                    s[0] = s[0].to_ascii_uppercase();
                }
                s
            }
            Spelling::LongS | Spelling::EscapedLongS if !field.chars().any(foldable) => {
                Spelling::Capitalized.write(field, rng)
            }
            Spelling::LongS => field
                .chars()
                .map(|c| match c {
                    's' | 'S' => 'ſ',
                    'k' | 'K' => 'K',
                    c => c,
                })
                .collect::<String>()
                .into_bytes(),
            Spelling::EscapedLongS => field
                .chars()
                .map(|c| match c {
                    's' | 'S' => "\\u017f".to_string(),
                    'k' | 'K' => "\\u212A".to_string(),
                    c => c.to_string(),
                })
                .collect::<String>()
                .into_bytes(),
            Spelling::Escaped => {
                let at = rng.below(field.len());
                let mut out = Vec::new();
                for (i, b) in field.bytes().enumerate() {
                    if i == at {
                        let hex = if rng.chance(50) {
                            format!("\\u{:04x}", b)
                        } else {
                            format!("\\u{:04X}", b)
                        };
                        out.extend_from_slice(hex.as_bytes());
                    } else {
                        out.push(b);
                    }
                }
                out
            }
        }
    }

    /// Whether writing `field` this way is what the name says (a long-s
    /// fold needs an `s` or a `k`).
    pub fn applies(self, field: &str) -> bool {
        match self {
            Spelling::LongS | Spelling::EscapedLongS => {
                field.chars().any(|c| matches!(c, 's' | 'S' | 'k' | 'K'))
            }
            _ => true,
        }
    }
}

/// Values for fields the registry does not know, chosen to trip a reader
/// that is stricter than Go's: Go skips any well-formed value, with
/// invalid UTF-8 and lone surrogates, up to 10,000 levels deep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Junk {
    /// Bytes that are not UTF-8 inside a string.
    InvalidUtf8,
    /// `"\ud800"` and friends.
    LoneSurrogate,
    /// `"\u0000"`
    Nul,
    /// Arrays or objects nested `n` deep.
    Deep(usize),
    /// `1e400`, `-0`, thirty digits.
    Number,
    /// An object that looks like a descriptor, naming a digest nothing stores.
    Descriptor,
}

impl Junk {
    pub fn name(self) -> String {
        match self {
            Junk::InvalidUtf8 => "invalid UTF-8".into(),
            Junk::LoneSurrogate => "lone surrogate escapes".into(),
            Junk::Nul => "NUL escape".into(),
            Junk::Deep(n) => format!("nesting {n} deep"),
            Junk::Number => "out-of-range numbers".into(),
            Junk::Descriptor => "descriptor-like object".into(),
        }
    }

    /// Whether the junk is a string (the only thing an `annotations` map
    /// of strings takes).
    pub fn is_string(self) -> bool {
        matches!(self, Junk::InvalidUtf8 | Junk::LoneSurrogate | Junk::Nul)
    }

    pub fn value(self, rng: &mut Rng) -> J {
        match self {
            Junk::InvalidUtf8 => {
                let pieces: [&[u8]; 4] = [b"\xff\xfe", b"caf\xc3", b"\xed\xa0\x80", b"\xc0\xaf"];
                let mut s = b"junk ".to_vec();
                s.extend_from_slice(pieces[rng.below(pieces.len())]);
                J::Str(s)
            }
            Junk::LoneSurrogate => {
                let pieces = ["\\ud800", "\\udc00x", "x\\ud83d", "\\ud800\\ud800", "\\uDFFF"];
                J::Str(rng.pick(&pieces).as_bytes().to_vec())
            }
            Junk::Nul => J::Str(b"a\\u0000b".to_vec()),
            Junk::Deep(n) => {
                let mut r = Vec::with_capacity(n * 8);
                if rng.chance(50) {
                    r.extend(std::iter::repeat_n(b'[', n));
                    r.extend(std::iter::repeat_n(b']', n));
                } else {
                    for _ in 0..n - 1 {
                        r.extend_from_slice(b"{\"a\":");
                    }
                    r.extend_from_slice(b"{}");
                    r.extend(std::iter::repeat_n(b'}', n - 1));
                }
                J::Raw(r)
            }
            Junk::Number => {
                let n = ["1e400", "-0", "123456789012345678901234567890", "-1.5E-400"];
                J::Num((*rng.pick(&n)).to_owned())
            }
            Junk::Descriptor => {
                let mut o = J::obj();
                o.push(b"mediaType".to_vec(), J::str("application/vnd.example.decoy"));
                o.push(b"digest".to_vec(), J::str(&format!("sha256:{}", rng.hex(64))));
                o.push(b"size".to_vec(), J::int(rng.range(1, 9999) as u64));
                o
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_duplicates_and_raw_bytes() {
        let mut o = J::obj();
        o.push(b"a".to_vec(), J::int(1));
        o.push(b"A".to_vec(), J::Null);
        o.push(b"x".to_vec(), J::Str(b"\xff\\ud800".to_vec()));
        o.push(
            b"l".to_vec(),
            J::Arr(vec![J::str("q\"\\\n"), J::Raw(b"[[]]".to_vec())]),
        );
        assert_eq!(
            o.write(Style::Compact),
            b"{\"a\":1,\"A\":null,\"x\":\"\xff\\ud800\",\"l\":[\"q\\\"\\\\\\u000a\",[[]]]}".to_vec()
        );
        let pretty = o.write(Style::Pretty);
        assert!(
            pretty.starts_with(b"{\n\t\"a\" : 1,"),
            "{}",
            String::from_utf8_lossy(&pretty)
        );
        assert!(pretty.ends_with(b"}\r\n"));
    }

    #[test]
    fn spellings() {
        let mut r = Rng::new(3);
        assert_eq!(Spelling::Capitalized.write("mediaType", &mut r), b"MediaType");
        assert_eq!(Spelling::Upper.write("layers", &mut r), b"LAYERS");
        assert_eq!(Spelling::LongS.write("layers", &mut r), "layerſ".as_bytes());
        assert_eq!(Spelling::EscapedLongS.write("size", &mut r), b"\\u017fize");
        assert!(!Spelling::LongS.applies("config"));
        assert_eq!(Spelling::LongS.write("config", &mut r), b"Config");
        for _ in 0..50 {
            assert_ne!(Spelling::Mixed.write("digest", &mut r), b"digest");
            let e = Spelling::Escaped.write("digest", &mut r);
            assert_eq!(e.len(), "digest".len() + 5);
        }
    }

    #[test]
    fn deep_junk_is_as_deep_as_asked() {
        let mut r = Rng::new(1);
        for _ in 0..4 {
            let J::Raw(b) = Junk::Deep(100).value(&mut r) else {
                panic!("raw")
            };
            let depth = b
                .iter()
                .scan(0i32, |d, c| {
                    *d += match c {
                        b'[' | b'{' => 1,
                        b']' | b'}' => -1,
                        _ => 0,
                    };
                    Some(*d)
                })
                .max();
            assert_eq!(depth, Some(100));
        }
    }
}
