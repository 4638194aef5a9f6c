//! Reading one log: opening it (gzip or not), going through its lines, and
//! switching to a JSON stream where the registry's indented notification
//! envelopes begin.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde_json::Value;

use super::line::{json_line, parse_line};
use super::PullLog;
use crate::error::{Error, Result};

/// What reading one log found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub lines: u64,
    /// Lines (or events) in a format read here.
    pub known: u64,
    /// Pulls among them.
    pub pulls: u64,
}

/// `r`, decompressed if it starts with gzip's magic bytes (a rotated
/// `access.log.2.gz`; several gzip members one after the other are read
/// as one stream, as `zcat` does).
pub fn open(r: impl Read + 'static) -> io::Result<Box<dyn BufRead>> {
    let mut br = BufReader::with_capacity(64 * 1024, r);
    let head = br.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            64 * 1024,
            MultiGzDecoder::new(br),
        )))
    } else {
        Ok(Box::new(br))
    }
}

/// Opens the log at `path` ([`open`]).
pub fn open_path(path: &Path) -> Result<Box<dyn BufRead>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    open(f).map_err(|e| Error::io(path, e))
}

/// Reads every line of `r` into `log`. `name` is how errors name the
/// input (a path, or `stdin`). Lines in no known format are skipped; an
/// indented notification envelope (a line that opens a JSON object
/// without closing it) makes the rest of the input a stream of JSON values.
pub fn read_log(mut r: impl BufRead, name: &Path, log: &mut PullLog) -> Result<LogStats> {
    let mut stats = LogStats::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::other(name, format!("line {}: {e}", stats.lines + 1)))?;
        if n == 0 {
            break;
        }
        stats.lines += 1;
        let text = String::from_utf8_lossy(&buf);
        let trimmed = text.trim();
        if trimmed.starts_with('{') && !trimmed.ends_with('}') {
            let first = stats.lines;
            let head = std::io::Cursor::new(buf.clone());
            json_stream(head.chain(&mut r), name, first, log, &mut stats)?;
            break;
        }
        if let Some(seen) = parse_line(&text) {
            stats.known += 1;
            for s in seen {
                stats.pulls += u64::from(s.pull.is_some());
                log.add(s);
            }
        }
    }
    log.count_lines(stats.lines);
    Ok(stats)
}

/// The rest of an input as JSON values (envelopes, events, JSON log
/// lines), from line `first` on.
fn json_stream(r: impl Read, name: &Path, first: u64, log: &mut PullLog, stats: &mut LogStats) -> Result<()> {
    let mut counted = CountLines {
        inner: r,
        newlines: 0,
        last: b'\n',
    };
    {
        let stream = serde_json::Deserializer::from_reader(&mut counted).into_iter::<Value>();
        for v in stream {
            let v = v.map_err(|e| {
                Error::other(
                    name,
                    format!(
                        "line {}: not JSON ({e}); an indented notification envelope starts on line {first}, \
                         and everything after it must be JSON",
                        first + e.line() as u64 - 1
                    ),
                )
            })?;
            let Value::Object(map) = v else { continue };
            if let Some(seen) = json_line(&map) {
                stats.known += 1;
                for s in seen {
                    stats.pulls += u64::from(s.pull.is_some());
                    log.add(s);
                }
            }
        }
    }
    // Lines of the stream, less the first, counted already.
    let lines = counted.newlines + u64::from(counted.last != b'\n');
    stats.lines += lines.saturating_sub(1);
    Ok(())
}

/// Counts the newlines read through it.
struct CountLines<R> {
    inner: R,
    newlines: u64,
    /// The last byte read.
    last: u8,
}

impl<R: Read> Read for CountLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        if n > 0 {
            self.last = buf[n - 1];
        }
        Ok(n)
    }
}
