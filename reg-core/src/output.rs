//! The single writer of records.
//!
//! Workers never print: they hand results to the one [`Out`], which writes
//! JSON lines (default) or tab-separated columns (`--tsv`) through a buffer.
//! A closed stdout surfaces as an `io::Error` of kind `BrokenPipe`; the
//! binaries treat it as success (see `reg_cli::common::run_main`).

use std::io::{self, BufWriter, Write};

use serde::Serialize;
use serde_json::Value;

/// How records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Json,
    /// The same records as tab-separated values: `kind` first, then every
    /// other field in record order. Strings are written raw with `\t`, `\n`
    /// and `\\` escaped; a missing value is empty.
    Tsv,
}

/// A buffered record writer.
pub struct Out<W: Write = io::Stdout> {
    w: BufWriter<W>,
    format: Format,
    line: Vec<u8>,
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
        }
    }

    /// Writes one record.
    pub fn write<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        self.line.clear();
        match self.format {
            Format::Json => serde_json::to_writer(&mut self.line, record).map_err(io::Error::other)?,
            Format::Tsv => {
                let v = serde_json::to_value(record).map_err(io::Error::other)?;
                tsv_line(&v, &mut self.line);
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
    pub fn end<T: Serialize>(&mut self, trailer: &T, msgs: &crate::messages::Messages) -> io::Result<bool> {
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

fn tsv_line(v: &Value, out: &mut Vec<u8>) {
    let Value::Object(map) = v else {
        tsv_value(v, out);
        return;
    };
    let mut first = true;
    // `kind` first, whatever the struct order.
    let kind = map.get("kind");
    if let Some(k) = kind {
        tsv_value(k, out);
        first = false;
    }
    for (k, val) in map {
        if k == "kind" {
            continue;
        }
        if !first {
            out.push(b'\t');
        }
        first = false;
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

    #[test]
    fn json_and_tsv() {
        let rec = json!({"kind":"tag","repo":"a\tb","tag":"v1","size":3,"ok":true,"x":null});
        let mut o = Out::new(Vec::new(), Format::Json);
        o.write(&rec).unwrap();
        let s = String::from_utf8(o.into_inner().unwrap()).unwrap();
        assert_eq!(
            s,
            "{\"kind\":\"tag\",\"repo\":\"a\\tb\",\"tag\":\"v1\",\"size\":3,\"ok\":true,\"x\":null}\n"
        );
        let mut o = Out::new(Vec::new(), Format::Tsv);
        o.write(&rec).unwrap();
        let s = String::from_utf8(o.into_inner().unwrap()).unwrap();
        assert_eq!(s, "tag\ta\\tb\tv1\t3\ttrue\t\n");
    }

    /// The trailer only when nothing went wrong; else the error record.
    #[test]
    fn a_list_ends_with_its_trailer_or_an_error_record() {
        let trailer = json!({"kind":"end","tool":"t","n":1});
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
