//! A small HTTP proxy on 127.0.0.1 in front of an object store (moto's S3,
//! Azurite's Azure Blob), which fails the requests a test picks: answers
//! `503` (S3's SlowDown, Azure's ServerBusy: throttling), or forwards and
//! then drops the connection half way through the answer's body (a
//! connection lost mid-listing), or reports every key of a multi-object
//! delete (S3's DeleteObjects, an Azure batch) as failed, each in the
//! store's own answer format. One request per connection (answers say
//! `Connection: close`); it serves until dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Forward,
    /// `503 Slow Down`, as S3 throttles.
    SlowDown,
    /// Forwards, then sends half of the answer and closes the connection.
    CutBody,
    /// A multi-object delete answered without forwarding, every key in it
    /// reported as an `InternalError` (S3's per-key failures; an Azure
    /// batch's sub-responses `500`).
    KeyErrors,
}

/// The request kinds a rule tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    List,
    Get,
    DeleteObjects,
    Other,
}

/// Picks the fault for the `n`th request (from 1) of its kind.
pub type Rule = dyn Fn(Kind, usize) -> Fault + Send + Sync;

/// A running proxy.
pub struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Faults injected so far.
    injected: Arc<AtomicUsize>,
    /// Requests seen: their kind and target (path and query, as sent).
    seen: Arc<Mutex<Vec<(Kind, String)>>>,
}

impl Proxy {
    /// Forwards to `upstream` (`127.0.0.1:PORT`), failing what `rule` says.
    pub fn start(
        upstream: u16,
        rule: impl Fn(Kind, usize) -> Fault + Send + Sync + 'static,
    ) -> Result<Proxy> {
        Proxy::start_delayed(upstream, Duration::ZERO, rule)
    }

    /// [`Proxy::start`], every request held `delay` before it is answered
    /// (a remote store's round trip, for the benchmark).
    pub fn start_delayed(
        upstream: u16,
        delay: Duration,
        rule: impl Fn(Kind, usize) -> Fault + Send + Sync + 'static,
    ) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the proxy")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let injected = Arc::new(AtomicUsize::new(0));
        let seen: Arc<Mutex<Vec<(Kind, String)>>> = Arc::new(Mutex::new(Vec::new()));
        let rule: Arc<Rule> = Arc::new(rule);
        let (stop2, injected2, seen2) = (stop.clone(), injected.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            // Blocking: dropping the proxy connects once to wake it.
            while let Ok((conn, _)) = listener.accept() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let (rule, injected, seen) = (rule.clone(), injected2.clone(), seen2.clone());
                std::thread::spawn(move || {
                    if !delay.is_zero() {
                        std::thread::sleep(delay);
                    }
                    let _ = serve(conn, upstream, &*rule, &injected, &seen);
                });
            }
        });
        Ok(Proxy {
            port,
            stop,
            thread: Some(thread),
            injected,
            seen,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests were failed on purpose.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    /// How many requests of `kind` arrived.
    pub fn seen(&self, kind: Kind) -> usize {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|(k, _)| *k == kind)
            .count()
    }

    /// The targets (path and query, as sent) of the requests of `kind`
    /// that arrived so far, in order.
    pub fn targets(&self, kind: Kind) -> Vec<String> {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, t)| t.clone())
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn kind_of(request_line: &str) -> Kind {
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    match method {
        "GET"
            if query.contains("list-type=")
                || query.contains("delimiter=")
                || query.contains("comp=list") =>
        {
            Kind::List
        }
        "GET" if !query.contains("comp=") => Kind::Get,
        "POST" if query.split('&').any(|p| p == "delete" || p == "delete=") => Kind::DeleteObjects,
        "POST" if query.contains("comp=batch") => Kind::DeleteObjects,
        _ => Kind::Other,
    }
}

fn serve(
    conn: TcpStream,
    upstream: u16,
    rule: &Rule,
    injected: &AtomicUsize,
    seen: &Mutex<Vec<(Kind, String)>>,
) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    // The request head, with Connection: close for the server.
    let mut head = Vec::new();
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let kind = kind_of(&first);
    let n = {
        let mut s = seen.lock().expect("seen");
        let target = first.split_whitespace().nth(1).unwrap_or("").to_string();
        s.push((kind, target));
        s.iter().filter(|(k, _)| *k == kind).count()
    };
    let fault = rule(kind, n);
    let mut out = conn;
    if fault == Fault::SlowDown {
        injected.fetch_add(1, Ordering::SeqCst);
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                   <Message>Please reduce your request rate.</Message></Error>";
        write!(
            out,
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        )?;
        out.flush()?;
        let _ = out.shutdown(Shutdown::Both);
        return Ok(());
    }
    if fault == Fault::KeyErrors && first.contains("comp=batch") {
        injected.fetch_add(1, Ordering::SeqCst);
        // Azure: a multipart answer, one sub-response per DELETE asked.
        let asked = body.windows(7).filter(|w| w == b"DELETE ").count();
        let boundary = "batchresponse_reg_tests";
        let mut text = String::new();
        for id in 0..asked {
            text.push_str(&format!(
                "--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {id}\r\n\r\n\
                 HTTP/1.1 500 Internal Server Error\r\nx-ms-error-code: InternalError\r\n\r\n"
            ));
        }
        text.push_str(&format!("--{boundary}--\r\n"));
        write!(
            out,
            "HTTP/1.1 202 Accepted\r\nContent-Type: multipart/mixed; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )?;
        out.flush()?;
        let _ = out.shutdown(Shutdown::Both);
        return Ok(());
    }
    if fault == Fault::KeyErrors {
        injected.fetch_add(1, Ordering::SeqCst);
        let text = String::from_utf8_lossy(&body);
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult>");
        for part in text.split("<Key>").skip(1) {
            let key = part.split("</Key>").next().unwrap_or("");
            xml.push_str(&format!(
                "<Error><Key>{key}</Key><Code>InternalError</Code>\
                 <Message>We encountered an internal error. Please try again.</Message></Error>"
            ));
        }
        xml.push_str("</DeleteResult>");
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        )?;
        out.flush()?;
        let _ = out.shutdown(Shutdown::Both);
        return Ok(());
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(first.as_bytes())?;
    up.write_all(&head)?;
    up.write_all(b"Connection: close\r\n\r\n")?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    if fault == Fault::CutBody {
        injected.fetch_add(1, Ordering::SeqCst);
        let body_at = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(answer.len(), |i| i + 4);
        let cut = body_at + (answer.len() - body_at) / 2;
        out.write_all(&answer[..cut])?;
        out.flush()?;
        let _ = out.shutdown(Shutdown::Both);
        return Ok(());
    }
    out.write_all(&answer)?;
    out.flush()?;
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}
