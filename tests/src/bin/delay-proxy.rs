//! `delay-proxy UPSTREAM_PORT DELAY_MS`: an HTTP proxy on 127.0.0.1 that
//! holds every request DELAY_MS before forwarding it to
//! 127.0.0.1:UPSTREAM_PORT: a remote store's round trip in front of a
//! local one (mems3 or moto, for `bench/scale.sh` and `bench/s3.sh`).
//! Prints its port on stdout, then serves until killed.
//!
//! Connections are kept alive on both sides, as a client's connections to
//! S3 are: each connection of the client gets one connection upstream,
//! and each request on it costs DELAY_MS once, not a new connection (the
//! fault proxy of the tests, one request per connection, made every
//! request also pay two TCP handshakes and a thread, which the store
//! being modelled does not charge).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [upstream, delay] = &args[..] else {
        bail!("usage: delay-proxy UPSTREAM_PORT DELAY_MS");
    };
    let upstream: u16 = upstream.parse().context("UPSTREAM_PORT")?;
    let delay = Duration::from_millis(delay.parse().context("DELAY_MS")?);
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the proxy")?;
    println!("{}", listener.local_addr()?.port());
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        std::thread::spawn(move || {
            if let Err(e) = relay(conn, upstream, delay) {
                eprintln!("delay-proxy: {e:#}");
            }
        });
    }
    Ok(())
}

/// One HTTP/1.1 message's head: its lines (with their CRLFs) and what
/// says where it ends.
struct Head {
    bytes: Vec<u8>,
    length: usize,
    chunked: bool,
    close: bool,
}

/// Reads a head; `None` at a clean end of the stream.
fn head(r: &mut impl BufRead) -> Result<Option<Head>> {
    let mut h = Head {
        bytes: Vec::new(),
        length: 0,
        chunked: false,
        close: false,
    };
    loop {
        let start = h.bytes.len();
        if r.read_until(b'\n', &mut h.bytes)? == 0 {
            if start == 0 {
                return Ok(None);
            }
            bail!("the stream ended inside a message head");
        }
        let line = String::from_utf8_lossy(&h.bytes[start..]).to_ascii_lowercase();
        if line == "\r\n" {
            return Ok(Some(h));
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            h.length = v.trim().parse().context("Content-Length")?;
        } else if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            h.chunked = true;
        } else if line.starts_with("connection:") && line.contains("close") {
            h.close = true;
        }
    }
}

/// Copies a message's body (by its length, or chunk by chunk) from `r`
/// to `w`.
fn body(h: &Head, r: &mut impl BufRead, w: &mut impl Write) -> Result<()> {
    if !h.chunked {
        let copied = std::io::copy(&mut r.take(h.length as u64), w)?;
        if copied != h.length as u64 {
            bail!("the stream ended inside a body");
        }
        return Ok(());
    }
    loop {
        let mut size = Vec::new();
        r.read_until(b'\n', &mut size)?;
        w.write_all(&size)?;
        let text = String::from_utf8_lossy(&size);
        let n = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
            .context("a chunk's size")?;
        if n == 0 {
            // Trailers, then the empty line.
            loop {
                let mut line = Vec::new();
                r.read_until(b'\n', &mut line)?;
                w.write_all(&line)?;
                if line == b"\r\n" || line.is_empty() {
                    return Ok(());
                }
            }
        }
        std::io::copy(&mut r.take(n as u64 + 2), w)?;
    }
}

/// Serves one client connection: each request held `delay`, then sent
/// on this connection's own connection upstream, its answer sent back.
fn relay(client: TcpStream, upstream: u16, delay: Duration) -> Result<()> {
    client.set_nodelay(true)?;
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    let server = TcpStream::connect(("127.0.0.1", upstream)).context("connecting upstream")?;
    server.set_nodelay(true)?;
    let mut from_server = BufReader::new(server.try_clone()?);
    let mut to_server = std::io::BufWriter::new(server);
    while let Some(req) = head(&mut from_client)? {
        let is_head = req.bytes.starts_with(b"HEAD ");
        std::thread::sleep(delay);
        to_server.write_all(&req.bytes)?;
        body(&req, &mut from_client, &mut to_server)?;
        to_server.flush()?;
        let Some(answer) = head(&mut from_server)? else {
            bail!("the server closed the connection without an answer");
        };
        let mut out = std::io::BufWriter::new(&mut to_client);
        out.write_all(&answer.bytes)?;
        let status = answer.bytes.get(9..12).unwrap_or_default();
        if !is_head && status != b"204" && status != b"304" {
            body(&answer, &mut from_server, &mut out)?;
        }
        out.flush()?;
        drop(out);
        if req.close || answer.close {
            break;
        }
    }
    Ok(())
}
