//! The single writer of records.
//!
//! Workers never print: they hand results to the one [`Out`], which writes
//! JSON lines (default) or tab-separated columns (`--tsv`) through a buffer.
//! A closed stdout surfaces as an `io::Error` of kind `BrokenPipe`; the
//! binaries treat it as success (see `reg_cli::common::run_main`).
//!
//! # Tab-separated columns
//! Each record is one line: its `kind`, then the fields its type lists for
//! that kind ([`Record::columns`]), always all of them and always in that
//! order, so `cut -f3` is the same field on every line of a kind (a field
//! a record lacks, such as `target` or `ok`, is an empty column). Strings
//! are written raw with `\t`, `\n`, `\r` and `\\` escaped; arrays and
//! objects as JSON. Trailers (`end`, `error`) have no fixed columns: their
//! fields are written by name, `repos=5`. With a header, the line before a
//! kind's first record names its columns (`kind`, `repo`, `tag`, …).

use std::collections::BTreeSet;
use std::io::{self, BufWriter, Write};

use serde::Serialize;
use serde_json::Value;

/// How records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Json,
    /// The same records as tab-separated columns (see the module docs).
    Tsv {
        /// Before each kind's first record, a line naming its columns.
        header: bool,
    },
}

/// A record the tools print: its TSV columns, kind by kind.
pub trait Record: Serialize {
    /// The fields of a record of `kind`, after `kind`, in column order; `None`
    /// for a trailer, whose fields are written by name (`repos=5`).
    fn columns(kind: &str) -> Option<&'static [&'static str]>;
}

/// A buffered record writer.
pub struct Out<W: Write = io::Stdout> {
    w: BufWriter<W>,
    format: Format,
    line: Vec<u8>,
    /// Kinds whose header line is written.
    headed: BTreeSet<String>,
}

impl Out<io::Stdout> {
    /// A writer on stdout.
    pub fn stdout(format: Format) -> Out<io::Stdout> {
        Out::new(io::stdout(), format)
    }
}

impl<W: Write> Out<W> {
    pub fn new(w: W, format: Format) -> Out<W> {
        Out {
            w: BufWriter::with_capacity(64 * 1024, w),
            format,
            line: Vec::with_capacity(256),
            headed: BTreeSet::new(),
        }
    }

    /// Writes one record.
    pub fn write<T: Record>(&mut self, record: &T) -> io::Result<()> {
        self.line.clear();
        match self.format {
            Format::Json => serde_json::to_writer(&mut self.line, record).map_err(io::Error::other)?,
            Format::Tsv { header } => {
                let v = serde_json::to_value(record).map_err(io::Error::other)?;
                let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
                let columns = T::columns(kind);
                if let (true, Some(cols)) = (header, columns) {
                    if self.headed.insert(kind.to_string()) {
                        self.line.extend_from_slice(b"kind");
                        for c in cols {
                            self.line.push(b'\t');
                            self.line.extend_from_slice(c.as_bytes());
                        }
                        self.line.push(b'\n');
                    }
                }
                tsv_line(&v, columns, &mut self.line);
            }
        }
        self.line.push(b'\n');
        self.w.write_all(&self.line)
    }

    /// Ends a list with its `trailer`, or, when the run reported errors
    /// (`msgs`), with a [`crate::record::Failed`] record instead: a run that
    /// exits non-zero never writes a trailer, so no tool downstream takes
    /// its output for a complete list. Flushes; true if the trailer was
    /// written.
    pub fn end<T: Record>(&mut self, trailer: &T, msgs: &crate::messages::Messages) -> io::Result<bool> {
        let ok = msgs.errors() == 0;
        if ok {
            self.write(trailer)?;
        } else {
            self.write(&crate::record::Failed::new(msgs.tool(), msgs.errors()))?;
        }
        self.flush()?;
        Ok(ok)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// The inner writer, flushed.
    pub fn into_inner(self) -> io::Result<W> {
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

/// `kind`, then `columns` (or, without, every field by name).
fn tsv_line(v: &Value, columns: Option<&[&str]>, out: &mut Vec<u8>) {
    let Value::Object(map) = v else {
        tsv_value(v, out);
        return;
    };
    // `kind` first, whatever the struct order.
    if let Some(k) = map.get("kind") {
        tsv_value(k, out);
    }
    if let Some(cols) = columns {
        for c in cols {
            out.push(b'\t');
            tsv_value(map.get(*c).unwrap_or(&Value::Null), out);
        }
    }
    // By name: a trailer's fields, and any field a type's columns forgot
    // (never silently dropped; the types' tests check there is none).
    for (k, val) in map {
        if k == "kind"
            || columns.is_some_and(|c| c.contains(&k.as_str()))
            || val.is_null() && columns.is_some()
        {
            continue;
        }
        out.push(b'\t');
        tsv_value(&Value::String(k.clone()), out);
        out.push(b'=');
        tsv_value(val, out);
    }
}

fn tsv_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => {}
        Value::String(s) => {
            for b in s.bytes() {
                match b {
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    _ => out.push(b),
                }
            }
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// Whether an error (anywhere in its chain) is a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A record of two kinds: `a` with fixed columns, `end` a trailer.
    #[derive(Serialize)]
    struct Rec(Value);

    impl Record for Rec {
        fn columns(kind: &str) -> Option<&'static [&'static str]> {
            match kind {
                "tag" => Some(&["repo", "tag", "size", "ok", "target"]),
                _ => None,
            }
        }
    }

    fn written(format: Format, recs: &[Value]) -> String {
        let mut o = Out::new(Vec::new(), format);
        for r in recs {
            o.write(&Rec(r.clone())).unwrap();
        }
        String::from_utf8(o.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn json_and_tsv() {
        let rec = json!({"kind":"tag","repo":"a\tb","tag":"v1","size":3,"ok":true,"x":null});
        assert_eq!(
            written(Format::Json, std::slice::from_ref(&rec)),
            "{\"kind\":\"tag\",\"repo\":\"a\\tb\",\"tag\":\"v1\",\"size\":3,\"ok\":true,\"x\":null}\n"
        );
        assert_eq!(
            written(Format::Tsv { header: false }, &[rec]),
            "tag\ta\\tb\tv1\t3\ttrue\t\n"
        );
    }

    /// Optional fields keep their column, empty; a trailer names its fields;
    /// a header line comes before each kind's first record.
    #[test]
    fn tsv_columns_stay_put_and_trailers_name_their_fields() {
        let recs = [
            json!({"kind":"tag","repo":"a","tag":"v1","size":1}),
            json!({"kind":"tag","repo":"a","tag":"v2","size":2,"ok":false,"target":"sha256:x"}),
            json!({"kind":"tag","tag":"v3","repo":"b","size":3,"ok":true}),
            json!({"kind":"end","tool":"t","repos":2,"root":"/r","excluded":["b"]}),
        ];
        assert_eq!(
            written(Format::Tsv { header: false }, &recs),
            "tag\ta\tv1\t1\t\t\n\
             tag\ta\tv2\t2\tfalse\tsha256:x\n\
             tag\tb\tv3\t3\ttrue\t\n\
             end\ttool=t\trepos=2\troot=/r\texcluded=[\"b\"]\n"
        );
        let with = written(Format::Tsv { header: true }, &recs);
        let lines: Vec<&str> = with.lines().collect();
        assert_eq!(lines[0], "kind\trepo\ttag\tsize\tok\ttarget");
        assert_eq!(
            lines.len(),
            5,
            "one header for the kind, none for the trailer: {with}"
        );
        // A field the columns do not list is kept, by name.
        assert_eq!(
            written(
                Format::Tsv { header: false },
                &[json!({"kind":"tag","repo":"a","new":1})]
            ),
            "tag\ta\t\t\t\t\tnew=1\n"
        );
    }

    /// The trailer only when nothing went wrong; else the error record.
    #[test]
    fn a_list_ends_with_its_trailer_or_an_error_record() {
        let trailer = Rec(json!({"kind":"end","tool":"t","n":1}));
        let msgs = crate::messages::Messages::muted("reg-refs");
        let mut o = Out::new(Vec::new(), Format::Json);
        assert!(o.end(&trailer, &msgs).unwrap());
        assert_eq!(
            o.into_inner().unwrap(),
            b"{\"kind\":\"end\",\"tool\":\"t\",\"n\":1}\n"
        );
        msgs.error("a path: something wrong");
        msgs.error("another");
        let mut o = Out::new(Vec::new(), Format::Json);
        assert!(!o.end(&trailer, &msgs).unwrap());
        assert_eq!(
            String::from_utf8(o.into_inner().unwrap()).unwrap(),
            "{\"kind\":\"error\",\"tool\":\"reg-refs\",\"errors\":2}\n"
        );
    }

    #[test]
    fn broken_pipe_is_found_in_the_chain() {
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
