//! JSON as the registry reads it: Go's `encoding/json`, not serde's.
//!
//! The registry decodes manifests with Go's decoder, which accepts documents
//! serde_json refuses and reads keys serde would not match. To read
//! manifests as the registry does, [`Doc::parse`] mirrors what Go accepts:
//! - the grammar of RFC 8259, with Go's nesting limit (10,000 levels);
//! - invalid UTF-8 and lone surrogate escapes (`"\ud800"`) inside strings,
//!   which Go replaces with U+FFFD instead of failing;
//! - every member of an object, duplicates included, in document order (Go
//!   lets a later duplicate overwrite or merge into an earlier one, so a
//!   reader that keeps the union must see them all).
//!
//! [`key_matches`] is Go's matching of an object key to a struct field:
//! case-insensitive, with the Unicode folds that reach ASCII letters.
//!
//! The tree is flat (nodes in one vector, linked by index), so deep
//! documents cost neither stack to build nor stack to drop.

use std::fmt;

/// Go's `maxNestingDepth`: deeper documents are refused by the registry.
pub const MAX_DEPTH: usize = 10_000;

/// What a node holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Type {
    /// "an array", "a string", …: for messages.
    pub fn article_name(self) -> &'static str {
        match self {
            Type::Null => "null",
            Type::Bool => "a boolean",
            Type::Number => "a number",
            Type::String => "a string",
            Type::Array => "an array",
            Type::Object => "an object",
        }
    }
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    ty: Type,
    /// The member's key (objects' members only), in `Doc::text`.
    key: (u32, u32),
    /// A string's decoded text, a number's literal, in `Doc::text`.
    text: (u32, u32),
    first: u32,
    next: u32,
}

/// A parsed document.
#[derive(Debug)]
pub struct Doc {
    nodes: Vec<Node>,
    /// Decoded keys and strings, one after another.
    text: String,
}

/// Why a document is not JSON, with Go's idea of where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// 1-based.
    pub line: usize,
    /// 1-based column of the offending byte (0 at the end of an empty input).
    pub column: usize,
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {} column {}", self.message, self.line, self.column)
    }
}

impl std::error::Error for JsonError {}

/// A node of a [`Doc`].
#[derive(Clone, Copy)]
pub struct Value<'a> {
    doc: &'a Doc,
    at: u32,
}

impl<'a> Value<'a> {
    fn node(&self) -> &'a Node {
        &self.doc.nodes[self.at as usize]
    }

    pub fn ty(&self) -> Type {
        self.node().ty
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&'a str> {
        (self.ty() == Type::String).then(|| self.doc.slice(self.node().text))
    }

    /// A number that is a non-negative integer (Go's `int64` takes
    /// negatives too; sizes only inform).
    pub fn as_u64(&self) -> Option<u64> {
        (self.ty() == Type::Number)
            .then(|| self.doc.slice(self.node().text).parse().ok())
            .flatten()
    }

    fn children(&self) -> impl Iterator<Item = Value<'a>> + 'a {
        let doc = self.doc;
        let mut at = self.node().first;
        std::iter::from_fn(move || {
            if at == NONE {
                return None;
            }
            let v = Value { doc, at };
            at = doc.nodes[at as usize].next;
            Some(v)
        })
    }

    /// An object's members, duplicates included, in document order; nothing
    /// for other types.
    pub fn members(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let object = self.ty() == Type::Object;
        let doc = self.doc;
        self.children()
            .filter(move |_| object)
            .map(move |v| (doc.slice(v.node().key), v))
    }

    /// The values of every member whose key Go would match to `field`.
    pub fn fields(&self, field: &'static str) -> impl Iterator<Item = Value<'a>> + 'a {
        self.members()
            .filter(move |(k, _)| key_matches(k, field))
            .map(|(_, v)| v)
    }

    /// An array's items; nothing for other types.
    pub fn items(&self) -> impl Iterator<Item = Value<'a>> + 'a {
        let array = self.ty() == Type::Array;
        self.children().filter(move |_| array)
    }

    /// This value and every value inside it, in document order (pre-order).
    pub fn descendants(&self) -> impl Iterator<Item = Value<'a>> + 'a {
        let doc = self.doc;
        let mut stack = vec![self.at];
        std::iter::from_fn(move || {
            let at = stack.pop()?;
            let v = Value { doc, at };
            let kids: Vec<u32> = v.children().map(|c| c.at).collect();
            stack.extend(kids.into_iter().rev());
            Some(v)
        })
    }
}

/// Whether Go's `encoding/json` would decode the object key `key` into a
/// struct field named `field` (given in lowercase ASCII): an exact match or
/// a case-insensitive one. Go folds ASCII letters, and maps U+017F (ſ) to
/// `s` and U+212A (Kelvin sign) to `k`; Go 1.21 and later also map U+0130
/// (İ) and U+0131 (ı) to `i`, so those match too (the union of versions).
pub fn key_matches(key: &str, field: &str) -> bool {
    debug_assert!(
        !field.bytes().any(|b| b.is_ascii_uppercase()),
        "{field}: lowercase"
    );
    let mut want = field.bytes();
    for c in key.chars() {
        let folded = match c {
            'A'..='Z' | 'a'..='z' => c.to_ascii_lowercase() as u8,
            c if c.is_ascii() => c as u8,
            '\u{17f}' => b's',
            '\u{212a}' => b'k',
            '\u{130}' | '\u{131}' => b'i',
            _ => return false,
        };
        if want.next() != Some(folded) {
            return false;
        }
    }
    want.next().is_none()
}

/// Whether `key` is not spelled exactly as `field` (as the specifications
/// spell it) but Go matches it all the same: a spelling other readers miss.
pub fn key_is_folded(key: &str, field: &str) -> bool {
    key != field && key_matches(key, &field.to_ascii_lowercase())
}

impl Doc {
    /// The top-level value.
    pub fn root(&self) -> Value<'_> {
        Value { doc: self, at: 0 }
    }

    fn slice(&self, (at, len): (u32, u32)) -> &str {
        &self.text[at as usize..(at + len) as usize]
    }

    /// Parses `bytes` as Go's decoder would accept them.
    pub fn parse(bytes: &[u8]) -> Result<Doc, JsonError> {
        Parser {
            bytes,
            pos: 0,
            doc: Doc {
                nodes: Vec::new(),
                text: String::new(),
            },
            scratch: Vec::new(),
        }
        .run()
    }
}

/// An open array or object: its node and its last child so far.
struct Open {
    node: u32,
    last: u32,
}

struct Parser<'b> {
    bytes: &'b [u8],
    pos: usize,
    doc: Doc,
    scratch: Vec<u8>,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> JsonError {
        let upto = &self.bytes[..self.pos.min(self.bytes.len())];
        let line = 1 + upto.iter().filter(|&&b| b == b'\n').count();
        let line_start = upto.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = if self.bytes.is_empty() {
            0
        } else {
            self.pos - line_start + 1
        };
        JsonError {
            line,
            column,
            message: message.into(),
        }
    }

    fn unexpected(&self, looking_for: &str) -> JsonError {
        match self.bytes.get(self.pos) {
            None => self.error("unexpected end of JSON input"),
            Some(&b) => self.error(format!("invalid character {} {looking_for}", shown(b))),
        }
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn run(mut self) -> Result<Doc, JsonError> {
        let mut stack: Vec<Open> = Vec::new();
        // The key of the member whose value comes next.
        let mut key = (0, 0);
        self.skip_space();
        loop {
            // A value.
            let (ty, text) = self.value_start()?;
            let id = self.doc.nodes.len() as u32;
            self.doc.nodes.push(Node {
                ty,
                key,
                text,
                first: NONE,
                next: NONE,
            });
            if let Some(open) = stack.last_mut() {
                if open.last == NONE {
                    self.doc.nodes[open.node as usize].first = id;
                } else {
                    self.doc.nodes[open.last as usize].next = id;
                }
                open.last = id;
            }
            key = (0, 0);
            let mut opened = false;
            if matches!(ty, Type::Array | Type::Object) {
                if stack.len() >= MAX_DEPTH {
                    return Err(self.error("exceeded max depth"));
                }
                stack.push(Open { node: id, last: NONE });
                self.skip_space();
                let close = if ty == Type::Array { b']' } else { b'}' };
                if self.bytes.get(self.pos) == Some(&close) {
                    self.pos += 1;
                    stack.pop();
                } else {
                    opened = true;
                }
            }
            if opened && ty == Type::Object {
                key = self.key()?;
                continue;
            }
            if opened {
                continue;
            }
            // After a value: a comma, a close, or the end.
            loop {
                self.skip_space();
                let Some(open) = stack.last() else {
                    if self.pos < self.bytes.len() {
                        return Err(self.unexpected("after top-level value"));
                    }
                    return Ok(self.doc);
                };
                let is_object = self.doc.nodes[open.node as usize].ty == Type::Object;
                let (close, ctx) = if is_object {
                    (b'}', "after object key:value pair")
                } else {
                    (b']', "after array element")
                };
                match self.bytes.get(self.pos) {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_space();
                        if is_object {
                            key = self.key()?;
                        }
                        break;
                    }
                    Some(&b) if b == close => {
                        self.pos += 1;
                        stack.pop();
                    }
                    _ => return Err(self.unexpected(ctx)),
                }
            }
        }
    }

    /// A key and its colon; leaves `pos` at the value.
    fn key(&mut self) -> Result<(u32, u32), JsonError> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return Err(self.unexpected("looking for beginning of object key string"));
        }
        let s = self.string()?;
        self.skip_space();
        if self.bytes.get(self.pos) != Some(&b':') {
            return Err(self.unexpected("after object key"));
        }
        self.pos += 1;
        self.skip_space();
        Ok(s)
    }

    /// Reads a scalar whole, or the opening bracket of a container.
    fn value_start(&mut self) -> Result<(Type, (u32, u32)), JsonError> {
        let none = (0, 0);
        match self.bytes.get(self.pos) {
            Some(b'{') => {
                self.pos += 1;
                Ok((Type::Object, none))
            }
            Some(b'[') => {
                self.pos += 1;
                Ok((Type::Array, none))
            }
            Some(b'"') => Ok((Type::String, self.string()?)),
            Some(b't') => self.literal(b"true", Type::Bool),
            Some(b'f') => self.literal(b"false", Type::Bool),
            Some(b'n') => self.literal(b"null", Type::Null),
            Some(b'-' | b'0'..=b'9') => Ok((Type::Number, self.number()?)),
            _ => Err(self.unexpected("looking for beginning of value")),
        }
    }

    fn literal(&mut self, word: &[u8], ty: Type) -> Result<(Type, (u32, u32)), JsonError> {
        for &w in word {
            if self.bytes.get(self.pos) != Some(&w) {
                return Err(self.unexpected("in literal"));
            }
            self.pos += 1;
        }
        Ok((ty, (0, 0)))
    }

    fn number(&mut self) -> Result<(u32, u32), JsonError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while let Some(b'0'..=b'9') = p.bytes.get(p.pos) {
                p.pos += 1;
            }
            p.pos > from
        };
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.unexpected("in numeric literal")),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.unexpected("after decimal point in numeric literal"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.unexpected("in exponent of numeric literal"));
            }
        }
        let at = self.doc.text.len() as u32;
        let lit = std::str::from_utf8(&self.bytes[start..self.pos]).expect("ASCII");
        self.doc.text.push_str(lit);
        Ok((at, lit.len() as u32))
    }

    /// A string at `pos` (its opening quote), decoded as Go decodes it.
    fn string(&mut self) -> Result<(u32, u32), JsonError> {
        self.pos += 1;
        self.scratch.clear();
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.error("unexpected end of JSON input"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => {
                    self.pos += 1;
                    self.escape()?;
                }
                0..=0x1f => return Err(self.unexpected("in string literal")),
                _ => {
                    // A run of plain bytes at once.
                    let run = self.bytes[self.pos..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                        .unwrap_or(self.bytes.len() - self.pos);
                    self.scratch
                        .extend_from_slice(&self.bytes[self.pos..self.pos + run]);
                    self.pos += run;
                }
            }
        }
        // Go replaces each invalid byte with U+FFFD; neither spelling can
        // match a field name or make a digest, so lossy is the same here.
        let at = self.doc.text.len() as u32;
        match std::str::from_utf8(&self.scratch) {
            Ok(s) => self.doc.text.push_str(s),
            Err(_) => self.doc.text.push_str(&String::from_utf8_lossy(&self.scratch)),
        }
        Ok((at, self.doc.text.len() as u32 - at))
    }

    /// One escape after its backslash, appended to `scratch` as UTF-8.
    fn escape(&mut self) -> Result<(), JsonError> {
        let Some(&e) = self.bytes.get(self.pos) else {
            return Err(self.error("unexpected end of JSON input"));
        };
        self.pos += 1;
        let simple = match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hi = self.hex4()?;
                let c = if (0xd800..0xdc00).contains(&hi) {
                    // A pair only if a low surrogate escape follows.
                    let next = &self.bytes[self.pos..];
                    let lo = (next.len() >= 6 && next[0] == b'\\' && next[1] == b'u')
                        .then(|| hex_value(&next[2..6]))
                        .flatten()
                        .filter(|lo| (0xdc00..0xe000).contains(lo));
                    match lo {
                        Some(lo) => {
                            self.pos += 6;
                            char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))
                        }
                        None => None,
                    }
                } else {
                    char::from_u32(hi)
                };
                let c = c.unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                self.scratch.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("in string escape code"));
            }
        };
        self.scratch.push(simple);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        for i in 0..4 {
            if !self.bytes.get(self.pos + i).is_some_and(u8::is_ascii_hexdigit) {
                self.pos += i;
                return Err(self.unexpected("in \\u hexadecimal character escape"));
            }
        }
        let v = hex_value(&self.bytes[self.pos..self.pos + 4]).expect("checked");
        self.pos += 4;
        Ok(v)
    }
}

fn hex_value(b: &[u8]) -> Option<u32> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| u32::from_str_radix(s, 16).ok())
}

/// A byte as Go's messages quote it.
fn shown(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Doc {
        Doc::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn accepts_what_go_accepts() {
        for (doc, why) in [
            ("{}", "empty object"),
            ("  [ ]\n", "empty array with space"),
            ("0", "zero"),
            ("-0.5e+10", "number forms"),
            (r#""\u00e9\ud83d\ude00\/""#, "escapes and a surrogate pair"),
            (r#"{"a":"\ud800"}"#, "a lone high surrogate"),
            (r#"{"a":"\udc00x"}"#, "a lone low surrogate"),
            (
                r#"{"a":"\ud800\u0041"}"#,
                "a high surrogate before a non-surrogate",
            ),
            ("{\"a\":\"\u{7f}\"}", "DEL in a string"),
            (r#"{"a":1,"a":2,"A":[true,false,null]}"#, "duplicates"),
        ] {
            Doc::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{why}: {e}"));
        }
        // Invalid UTF-8 inside a string: Go replaces it.
        let doc = Doc::parse(b"{\"a\":\"x\xff\xfey\"}").unwrap();
        let (_, v) = doc.root().members().next().unwrap();
        assert!(v.as_str().unwrap().starts_with('x'));
        assert!(v.as_str().unwrap().contains('\u{fffd}'));
    }

    #[test]
    fn refuses_what_go_refuses_with_a_position() {
        for (doc, line, column, text) in [
            ("", 1, 0, "unexpected end"),
            ("{\n  \"a\": }", 2, 8, "looking for beginning of value"),
            ("[1,]", 1, 4, "looking for beginning of value"),
            ("{\"a\":1,}", 1, 8, "object key"),
            ("01", 1, 2, "after top-level value"),
            ("{} x", 1, 4, "after top-level value"),
            ("\"a\u{1}\"", 1, 3, "in string literal"),
            (r#""\x""#, 1, 3, "escape"),
            (r#""\u12g4""#, 1, 6, "hexadecimal"),
            ("-", 1, 2, "unexpected end"),
            ("-x", 1, 2, "in numeric literal"),
            ("1.x", 1, 3, "after decimal point"),
            ("1ex", 1, 3, "exponent"),
            ("tru", 1, 4, "end"),
            ("nul!", 1, 4, "in literal"),
            ("\u{feff}{}", 1, 1, "beginning of value"),
            ("{\"a\" 1}", 1, 6, "after object key"),
            ("[1 2]", 1, 4, "after array element"),
        ] {
            let e = Doc::parse(doc.as_bytes()).expect_err(doc);
            assert_eq!((e.line, e.column), (line, column), "{doc:?}: {e}");
            assert!(e.message.contains(text), "{doc:?}: {e}");
        }
    }

    #[test]
    fn nesting_up_to_go_s_limit() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let doc = Doc::parse(deep(MAX_DEPTH).as_bytes()).unwrap();
        assert_eq!(doc.root().descendants().count(), MAX_DEPTH);
        drop(doc);
        let e = Doc::parse(deep(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert!(e.message.contains("max depth"), "{e}");
        let objects = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        Doc::parse(objects.as_bytes()).unwrap();
    }

    #[test]
    fn members_keep_duplicates_in_order() {
        let doc =
            parse(r#"{"config":{"digest":"a"},"Config":{"size":5},"x":[1,"s",{"k":null}],"config":null}"#);
        let keys: Vec<&str> = doc.root().members().map(|(k, _)| k).collect();
        assert_eq!(keys, ["config", "Config", "x", "config"]);
        let types: Vec<Type> = doc.root().fields("config").map(|v| v.ty()).collect();
        assert_eq!(types, [Type::Object, Type::Object, Type::Null]);
        let (_, x) = doc.root().members().nth(2).unwrap();
        let items: Vec<Type> = x.items().map(|v| v.ty()).collect();
        assert_eq!(items, [Type::Number, Type::String, Type::Object]);
        assert_eq!(x.items().nth(1).unwrap().as_str(), Some("s"));
        assert_eq!(x.items().next().unwrap().as_u64(), Some(1));
        assert_eq!(x.members().count(), 0, "an array has no members");
        assert_eq!(doc.root().items().count(), 0, "an object has no items");
        assert_eq!(doc.root().descendants().count(), 1 + 4 + 1 + 3 + 1 + 1);
    }

    #[test]
    fn keys_match_fields_as_go_matches_them() {
        for (key, field, want) in [
            ("layers", "layers", true),
            ("Layers", "layers", true),
            ("LAYERS", "layers", true),
            ("layer\u{17f}", "layers", true),
            ("\u{212a}ind", "kind", true),
            ("d\u{131}gest", "digest", true),
            ("D\u{130}GEST", "digest", true),
            ("mediatype", "mediatype", true),
            ("layer", "layers", false),
            ("layerss", "layers", false),
            ("la yers", "layers", false),
            ("l\u{e4}yers", "layers", false),
            ("\u{212b}", "a", false),
            ("", "layers", false),
        ] {
            assert_eq!(key_matches(key, field), want, "{key:?} ~ {field:?}");
        }
        assert!(!key_is_folded("layers", "layers"));
        assert!(key_is_folded("Layers", "layers"));
    }

    #[test]
    fn escaped_keys_are_decoded_before_matching() {
        let doc = parse(r#"{"\u006cayers":[]}"#);
        assert_eq!(doc.root().fields("layers").count(), 1);
    }
}
