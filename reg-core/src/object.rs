//! The object-storage backend: S3 and S3-compatible stores (Ceph RGW,
//! MinIO, moto), through the `object_store` crate.
//!
//! The registry's 2.8 S3 driver walks a bucket like a filesystem: one
//! delimited list per "directory", one GET per link file. This backend
//! instead lists whole key ranges flat (`ListObjectsV2` pages of 1,000
//! keys, which carry each key's size, LastModified and ETag), many ranges at
//! once, and keeps the result: an [`Object`] answers every
//! [`Backend::scan`] and [`Backend::stat`] below `blobs/` and
//! `repositories/` from one listing of each, so a run costs about as many
//! requests as the bucket has listing pages, plus one GET per manifest and
//! per link whose content the listing cannot vouch for (see
//! [`Backend::read_expecting`]: an ETag is the MD5 of a small object written
//! in one PUT).
//!
//! Listings are cached until [`Backend::refresh`]: reg-rm calls it before
//! each second look at the tree. Changes made through the backend update the
//! cache as they happen.
//!
//! Deletes go in batches of at most 1,000 keys a request, several requests
//! at once; `object_store` retries a request on throttling (503 SlowDown)
//! and on transient errors with exponential backoff, and keys that one
//! DeleteObjects answer reports as failed are retried here the same way.
//! Every request is counted by kind ([`Requests`]); the tools print the
//! counts in their summary.
//!
//! `object_store`'s async API is driven by a tokio runtime the backend owns;
//! the tools' walks stay synchronous.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt, TryStreamExt};
use md5::Digest as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ObjectStore, PutPayload, RetryConfig};

use crate::error::{Error, Result};
use crate::storage::{Backend, Meta, Scanned, Stop};

/// The areas of the `v2` directory a listing is cached for; scans elsewhere
/// list directly.
const AREAS: [&str; 2] = ["blobs", "repositories"];

/// At most this many listing requests in flight at once.
const LIST_CONCURRENCY: usize = 32;

/// Attempts at a listing that breaks off part way.
const LIST_TRIES: u32 = 4;

/// At most this many DeleteObjects requests in flight at once.
const DELETE_CONCURRENCY: usize = 4;

/// Keys per DeleteObjects request (the S3 maximum).
const DELETE_BATCH: usize = 1000;

/// Attempts for keys a DeleteObjects answer reports as failed.
const DELETE_TRIES: u32 = 5;

/// How many names an error lists of what is stored next to a wrong prefix.
const LISTED_NAMES: usize = 20;

/// Where the storage is: a bucket and the registry's `rootdirectory` in it,
/// and how to reach it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// The registry's `rootdirectory` (no leading or trailing `/`; may be
    /// empty); keys live under `<root>/docker/registry/v2/`.
    pub root: String,
    pub region: Option<String>,
    /// `regionendpoint`: an S3-compatible store's URL.
    pub endpoint: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub session_token: Option<String>,
    /// Plain HTTP allowed (`secure: false`, or an `http://` endpoint).
    pub allow_http: bool,
    /// Path-style requests (`forcepathstyle`; the default), or virtual hosted.
    pub path_style: bool,
}

impl std::fmt::Debug for S3Config {
    /// Never prints the secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "…"))
            .field("allow_http", &self.allow_http)
            .field("path_style", &self.path_style)
            .finish()
    }
}

impl S3Config {
    /// Parses `s3://bucket/rootdirectory` (the root may also end in
    /// `docker/registry/v2`); `None` if `url` does not start with `s3://`.
    /// Credentials, region and endpoint come from the environment
    /// ([`S3Config::fill_from_env`]).
    pub fn from_url(url: &str) -> Option<std::result::Result<S3Config, String>> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, root) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Some(Err(format!("{url}: no bucket name")));
        }
        let mut c = S3Config {
            bucket: bucket.to_string(),
            root: root.trim_matches('/').to_string(),
            path_style: true,
            ..S3Config::default()
        };
        c.fill_from_env(|k| std::env::var(k).ok());
        Some(Ok(c))
    }

    /// Fills what is not set from the usual `AWS_*` variables:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`, and `AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL` or `AWS_ENDPOINT`.
    pub fn fill_from_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        let first = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        if self.access_key.is_none() && self.secret_key.is_none() {
            self.access_key = first(&["AWS_ACCESS_KEY_ID"]);
            self.secret_key = first(&["AWS_SECRET_ACCESS_KEY"]);
            self.session_token = first(&["AWS_SESSION_TOKEN"]);
        }
        if self.region.is_none() {
            self.region = first(&["AWS_REGION", "AWS_DEFAULT_REGION"]);
        }
        if self.endpoint.is_none() {
            self.endpoint = first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]);
        }
        if self.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")) {
            self.allow_http = true;
        }
    }

    /// The key prefix of the `v2` directory, without a trailing `/`.
    pub fn v2_prefix(&self) -> String {
        let root = self.root.trim_matches('/');
        if root.is_empty() {
            "docker/registry/v2".to_string()
        } else if root == "docker/registry/v2" || root.ends_with("/docker/registry/v2") {
            root.to_string()
        } else {
            format!("{root}/docker/registry/v2")
        }
    }

    /// The endpoint as used: the configured one without a trailing `/`.
    fn endpoint_url(&self) -> Option<String> {
        self.endpoint.as_ref().map(|e| {
            let e = e.trim_end_matches('/');
            if e.contains("://") {
                e.to_string()
            } else if self.allow_http {
                format!("http://{e}")
            } else {
                format!("https://{e}")
            }
        })
    }
}

// ---- request counts ------------------------------------------------------

/// Requests sent, by kind (retries count again).
#[derive(Debug, Default)]
pub struct Requests {
    pub list: AtomicU64,
    pub get: AtomicU64,
    pub head: AtomicU64,
    pub put: AtomicU64,
    pub copy: AtomicU64,
    /// DeleteObjects (multi-object delete) requests.
    pub delete_batch: AtomicU64,
    /// Keys sent in DeleteObjects requests.
    pub delete_keys: AtomicU64,
    /// Single-key DELETE requests.
    pub delete: AtomicU64,
    pub other: AtomicU64,
    /// Answers 503 (throttling) or 5xx.
    pub throttled: AtomicU64,
    /// Requests that failed without an answer (connection reset, timeout).
    pub failed: AtomicU64,
}

impl Requests {
    /// Total requests sent.
    pub fn total(&self) -> u64 {
        [
            &self.list,
            &self.get,
            &self.head,
            &self.put,
            &self.copy,
            &self.delete_batch,
            &self.delete,
            &self.other,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    /// `"57 requests: 40 LIST, 17 GET"`, kinds with a count only.
    pub fn summary(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut parts = Vec::new();
        for (c, name) in [
            (&self.list, "LIST"),
            (&self.get, "GET"),
            (&self.head, "HEAD"),
            (&self.put, "PUT"),
            (&self.copy, "COPY"),
            (&self.delete, "DELETE"),
            (&self.other, "other"),
        ] {
            if n(c) > 0 {
                parts.push(format!("{} {name}", n(c)));
            }
        }
        if n(&self.delete_batch) > 0 {
            parts.push(format!(
                "{} DeleteObjects ({} keys)",
                n(&self.delete_batch),
                n(&self.delete_keys)
            ));
        }
        let mut s = format!("{} requests", self.total());
        if !parts.is_empty() {
            let _ = write!(s, ": {}", parts.join(", "));
        }
        if n(&self.throttled) > 0 {
            let _ = write!(s, "; {} answered 5xx/throttled", n(&self.throttled));
        }
        if n(&self.failed) > 0 {
            let _ = write!(s, "; {} failed without an answer", n(&self.failed));
        }
        s
    }

    fn count(&self, req: &HttpRequest) {
        let q = req.uri().query().unwrap_or("");
        let c = match req.method().as_str() {
            "GET" if q.contains("list-type=") || q.contains("delimiter=") => &self.list,
            "GET" => &self.get,
            "HEAD" => &self.head,
            "PUT" if req.headers().contains_key("x-amz-copy-source") => &self.copy,
            "PUT" => &self.put,
            "POST" if q.split('&').any(|p| p == "delete" || p == "delete=") => {
                // One <Object> element per key.
                let keys = match req.body().as_bytes() {
                    Some(b) => b.windows(8).filter(|w| w == b"<Object>").count() as u64,
                    None => 0,
                };
                self.delete_keys.fetch_add(keys, Ordering::Relaxed);
                &self.delete_batch
            }
            "DELETE" => &self.delete,
            _ => &self.other,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The server's clock, read from the `Date` header every S3 answer
/// carries: the latest one, and when it came.
#[derive(Debug, Default)]
struct ServerClock(Mutex<Option<(SystemTime, Instant)>>);

impl ServerClock {
    fn saw(&self, resp: &HttpResponse) {
        let date = resp
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::time::parse_http_date);
        if let Some(d) = date {
            *self.0.lock().expect("server clock") = Some((d, Instant::now()));
        }
    }

    /// The server's time now: its last `Date` and the time since it came
    /// (a `Date` has whole seconds: this is at most a second behind).
    fn now(&self) -> Option<SystemTime> {
        let seen = *self.0.lock().expect("server clock");
        seen.map(|(date, at)| date + at.elapsed())
    }
}

/// The HTTP client under `object_store`, counting what it sends and
/// reading the server's clock off what comes back.
#[derive(Debug)]
struct Counting {
    inner: HttpClient,
    counts: Arc<Requests>,
    clock: Arc<ServerClock>,
}

#[async_trait::async_trait]
impl HttpService for Counting {
    async fn call(&self, req: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        self.counts.count(&req);
        let r = self.inner.execute(req).await;
        match &r {
            Ok(resp) if resp.status().is_server_error() => {
                self.counts.throttled.fetch_add(1, Ordering::Relaxed);
                self.clock.saw(resp);
            }
            Ok(resp) => self.clock.saw(resp),
            Err(_) => {
                self.counts.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }
}

#[derive(Debug)]
struct CountingConnector(Arc<Requests>, Arc<ServerClock>);

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Counting {
            inner,
            counts: self.0.clone(),
            clock: self.1.clone(),
        }))
    }
}

// ---- the listing cache ---------------------------------------------------

/// One listed object.
#[derive(Clone, Debug)]
struct Obj {
    size: u64,
    mtime: SystemTime,
    /// The ETag without its quotes.
    etag: Option<String>,
}

/// The listing of an area: every key below it, relative to `v2`.
type Listed = Arc<RwLock<BTreeMap<String, Obj>>>;

/// A cached area, or why listing it failed.
type Area = std::result::Result<Listed, String>;

/// The object-storage backend, rooted at a registry's `v2` prefix in a bucket.
pub struct Object {
    rt: tokio::runtime::Runtime,
    s3: Arc<AmazonS3>,
    cfg: S3Config,
    /// `<root>/docker/registry/v2`
    v2: String,
    areas: Mutex<BTreeMap<&'static str, Area>>,
    /// Held while an area is listed, so that two threads do not list it twice.
    listing: Mutex<()>,
    counts: Arc<Requests>,
    clock: Arc<ServerClock>,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object").field("cfg", &self.cfg).finish()
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    let h = md5::Md5::digest(bytes);
    h.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn obj_of(m: &object_store::ObjectMeta) -> Obj {
    Obj {
        size: m.size,
        mtime: SystemTime::from(m.last_modified),
        etag: m.e_tag.as_ref().map(|e| e.trim_matches('"').to_ascii_lowercase()),
    }
}

fn meta_of(o: &Obj) -> Meta {
    Meta {
        size: o.size,
        mtime: o.mtime,
        is_dir: false,
    }
}

/// The area `rel` lies in, if it is cached.
fn area_of(rel: &str) -> Option<&'static str> {
    AREAS
        .into_iter()
        .find(|a| rel == *a || rel.strip_prefix(a).is_some_and(|r| r.starts_with('/')))
}

/// Where an area's listing is split, so that its ranges are listed at once:
/// by the first hex digit of blob digests, by the first character of
/// repository names. Keys sort by byte, so the ranges cover everything.
fn split_points(area: &str) -> Vec<String> {
    match area {
        "blobs" => "123456789abcdef"
            .chars()
            .map(|c| format!("blobs/sha256/{c}"))
            .collect(),
        _ => "123456789abcdefghijklmnopqrstuvwxyz"
            .chars()
            .map(|c| format!("repositories/{c}"))
            .collect(),
    }
}

impl Object {
    /// Connects (lazily: nothing is sent before the first request).
    pub fn new(cfg: S3Config) -> Result<Object> {
        let shown = PathBuf::from(format!("s3://{}/{}", cfg.bucket, cfg.v2_prefix()));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("reg-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io(&shown, e))?;
        let counts = Arc::new(Requests::default());
        let clock = Arc::new(ServerClock::default());
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(cfg.region.clone().unwrap_or_else(|| "us-east-1".into()))
            .with_allow_http(cfg.allow_http)
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(10),
                    base: 2.0,
                },
                max_retries: 8,
                retry_timeout: Duration::from_secs(120),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(Duration::from_secs(60))
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_allow_http(cfg.allow_http),
            )
            .with_http_connector(CountingConnector(counts.clone(), clock.clone()));
        if let Some(e) = cfg.endpoint_url() {
            b = b.with_endpoint(e);
        }
        if let (Some(k), Some(s)) = (&cfg.access_key, &cfg.secret_key) {
            b = b.with_access_key_id(k).with_secret_access_key(s);
            if let Some(t) = &cfg.session_token {
                b = b.with_token(t);
            }
        }
        let s3 = b
            .build()
            .map_err(|e| Error::other(&shown, format!("cannot use this S3 storage: {e}")))?;
        Ok(Object {
            rt,
            s3: Arc::new(s3),
            v2: cfg.v2_prefix(),
            cfg,
            areas: Mutex::new(BTreeMap::new()),
            listing: Mutex::new(()),
            counts,
            clock,
        })
    }

    /// Refuses a prefix that holds nothing of a registry: neither
    /// `repositories/` nor `blobs/` below `<rootdirectory>/docker/registry/v2`
    /// (a wrong bucket, prefix or `rootdirectory`). Listed as it is, such a
    /// prefix would be a registry with nothing in it, and every tool would
    /// say so with status 0. The error names the prefix and what is stored
    /// one level up from the rootdirectory, where a typo shows. One
    /// delimited LIST request; two when refusing.
    pub fn check_root(&self) -> Result<()> {
        let v2 = Key::from(self.v2.as_str());
        let listed = self
            .rt
            .block_on(self.s3.list_with_delimiter(Some(&v2)))
            .map_err(|e| self.err("", e))?;
        let found = |name: &str| listed.common_prefixes.iter().any(|p| p.filename() == Some(name));
        if found("repositories") || found("blobs") {
            return Ok(());
        }
        let root = self
            .v2
            .strip_suffix("docker/registry/v2")
            .unwrap_or(&self.v2)
            .trim_end_matches('/');
        let up = root.rsplit_once('/').map_or("", |(parent, _)| parent);
        let up_key = (!up.is_empty()).then(|| Key::from(up));
        let shown_up = if up.is_empty() {
            format!("s3://{}/", self.cfg.bucket)
        } else {
            format!("s3://{}/{up}/", self.cfg.bucket)
        };
        let there = match self.rt.block_on(self.s3.list_with_delimiter(up_key.as_ref())) {
            Ok(l) => {
                let mut names: Vec<String> = l
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(|n| format!("{n}/")))
                    .chain(
                        l.objects
                            .iter()
                            .filter_map(|o| o.location.filename().map(str::to_string)),
                    )
                    .collect();
                names.sort();
                match names.len() {
                    0 => format!("{shown_up} holds nothing"),
                    n if n <= LISTED_NAMES => format!("{shown_up} holds {}", names.join(", ")),
                    n => format!(
                        "{shown_up} holds {} and {} more",
                        names[..LISTED_NAMES].join(", "),
                        n - LISTED_NAMES
                    ),
                }
            }
            Err(e) => format!("{shown_up} cannot be listed either: {e}"),
        };
        Err(self.err(
            "",
            format!(
                "nothing of a registry is stored here: no repositories/ and no blobs/ (a wrong bucket, \
                 prefix or rootdirectory, or a registry that has stored nothing yet?); one level up, {there}"
            ),
        ))
    }

    /// The requests sent so far, by kind.
    pub fn requests(&self) -> &Requests {
        &self.counts
    }

    fn key(&self, rel: &str) -> Key {
        if rel.is_empty() {
            Key::from(self.v2.as_str())
        } else {
            Key::from(format!("{}/{rel}", self.v2))
        }
    }

    /// `rel` from a full key; `None` if the key is not below `v2`.
    fn rel<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.v2.as_str())?.strip_prefix('/')
    }

    fn err(&self, rel: &str, e: impl std::fmt::Display) -> Error {
        Error::other(self.display(rel), e.to_string())
    }

    /// Lists every key below `prefix` (relative to `v2`) between `after`
    /// (exclusive) and `upto` (inclusive), flat. A listing that breaks off
    /// (a connection lost in the middle of a page, which `object_store`
    /// does not retry) goes on after the last key it got, up to
    /// [`LIST_TRIES`] times with backoff; then it fails, never returning
    /// part of the range.
    async fn list_range(
        &self,
        prefix: &str,
        after: Option<String>,
        upto: Option<String>,
    ) -> std::result::Result<Vec<(String, Obj)>, String> {
        let p = self.key(prefix);
        let mut out: Vec<(String, Obj)> = Vec::new();
        let mut wait = Duration::from_millis(200);
        let mut attempt = 1;
        'listing: loop {
            let from = out.last().map(|(k, _)| k.clone()).or_else(|| after.clone());
            let mut stream = match &from {
                Some(a) => self.s3.list_with_offset(Some(&p), &self.key(a)),
                None => self.s3.list(Some(&p)),
            };
            while let Some(item) = stream.next().await {
                let m = match item {
                    Ok(m) => m,
                    Err(e) if attempt < LIST_TRIES => {
                        attempt += 1;
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                        let _ = e;
                        continue 'listing;
                    }
                    Err(e) => return Err(format!("{e} (tried {LIST_TRIES} times)")),
                };
                let Some(rel) = self.rel(m.location.as_ref()) else {
                    continue;
                };
                if upto.as_deref().is_some_and(|u| rel > u) {
                    break;
                }
                out.push((rel.to_string(), obj_of(&m)));
            }
            return Ok(out);
        }
    }

    /// Lists a whole area, its ranges at once.
    fn list_area(&self, area: &'static str) -> std::result::Result<BTreeMap<String, Obj>, String> {
        let points = split_points(area);
        let mut ranges: Vec<(Option<String>, Option<String>)> = Vec::new();
        let mut after = None;
        for p in points {
            ranges.push((after.clone(), Some(p.clone())));
            after = Some(p);
        }
        ranges.push((after, None));
        self.rt.block_on(async {
            let parts: Vec<Vec<(String, Obj)>> = futures::stream::iter(ranges)
                .map(|(a, u)| self.list_range(area, a, u))
                .buffer_unordered(LIST_CONCURRENCY)
                .try_collect()
                .await?;
            Ok(parts.into_iter().flatten().collect())
        })
    }

    /// The cached listing of `area`, listed now if it is not yet.
    fn area(&self, area: &'static str) -> Area {
        if let Some(a) = self.areas.lock().expect("areas").get(area) {
            return a.clone();
        }
        let _one = self.listing.lock().expect("listing");
        if let Some(a) = self.areas.lock().expect("areas").get(area) {
            return a.clone();
        }
        let listed = self
            .list_area(area)
            .map(|m| Arc::new(RwLock::new(m)))
            .map_err(|e| format!("listing failed: {e}"));
        self.areas.lock().expect("areas").insert(area, listed.clone());
        listed
    }

    /// The cached area `rel` lies in, or an error naming `rel`; `None`
    /// outside the cached areas.
    fn cached(&self, rel: &str) -> Result<Option<Listed>> {
        match area_of(rel) {
            Some(a) => self.area(a).map(Some).map_err(|e| self.err(rel, e)),
            None => Ok(None),
        }
    }

    /// Every object below `prefix` (relative to `v2`), from the cache or
    /// listed now.
    fn objects_below(&self, prefix: &str) -> Result<Vec<(String, Obj)>> {
        let dir = format!("{prefix}/");
        match self.cached(prefix)? {
            Some(map) => {
                let map = map.read().expect("area");
                Ok(map
                    .range(dir.clone()..)
                    .take_while(|(k, _)| k.starts_with(&dir))
                    .map(|(k, o)| (k.clone(), o.clone()))
                    .collect())
            }
            None => self
                .rt
                .block_on(self.list_range(prefix, None, None))
                .map_err(|e| self.err(prefix, e)),
        }
    }

    /// The listing of the area `rel` lies in, only if it is loaded already.
    fn loaded(&self, rel: &str) -> Option<Listed> {
        let area = area_of(rel)?;
        self.areas
            .lock()
            .expect("areas")
            .get(area)?
            .as_ref()
            .ok()
            .cloned()
    }

    /// Forgets `keys` in the cache (deleted); never lists to do so.
    fn forget(&self, keys: &[String]) {
        for k in keys {
            if let Some(map) = self.loaded(k) {
                map.write().expect("area").remove(k);
            }
        }
    }

    async fn delete_chunk(&self, keys: Vec<String>) -> Vec<Result<bool>> {
        let mut results: Vec<Option<Result<bool>>> = (0..keys.len()).map(|_| None).collect();
        let mut todo: Vec<usize> = (0..keys.len()).collect();
        let mut wait = Duration::from_millis(200);
        for attempt in 1..=DELETE_TRIES {
            let paths: Vec<object_store::Result<Key>> =
                todo.iter().map(|&i| Ok(self.key(&keys[i]))).collect();
            let answers: Vec<object_store::Result<Key>> = self
                .s3
                .delete_stream(futures::stream::iter(paths).boxed())
                .collect()
                .await;
            let mut again = Vec::new();
            if answers.len() != todo.len() {
                // The request itself failed (after object_store's retries):
                // none of these keys is known to be deleted.
                let why = answers
                    .into_iter()
                    .find_map(|a| a.err())
                    .map_or_else(|| "no answer".to_string(), |e| e.to_string());
                for &i in &todo {
                    results[i] = Some(Err(self.err(&keys[i], format!("not deleted: {why}"))));
                }
                break;
            }
            for (&i, a) in todo.iter().zip(answers) {
                match a {
                    Ok(_) => results[i] = Some(Ok(true)),
                    Err(object_store::Error::NotFound { .. }) => results[i] = Some(Ok(false)),
                    Err(e) => {
                        results[i] = Some(Err(self.err(&keys[i], format!("not deleted: {e}"))));
                        again.push(i);
                    }
                }
            }
            if again.is_empty() || attempt == DELETE_TRIES {
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
            todo = again;
        }
        results.into_iter().map(|r| r.unwrap_or(Ok(false))).collect()
    }
}

/// A blocking reader over a GET's body.
struct BodyReader {
    rt: tokio::runtime::Handle,
    stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    buf: bytes::Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// A flat listing of the keys below `prefix` (sorted, as S3 lists them),
/// cut where `stop` says: each cut prefix is reported once, as a
/// [`Scanned::Prefix`], and nothing below it (keys sharing a prefix are
/// next to each other in the listing). What the filesystem's scan reports
/// for the same tree, except empty directories, which a bucket cannot hold.
fn cut(
    prefix: &str,
    objects: Vec<(String, Obj)>,
    stop: Stop,
    meta: bool,
    visit: &mut dyn FnMut(Scanned),
) -> bool {
    let base = prefix.len() + 1;
    let mut last_cut: Option<String> = None;
    let mut found = false;
    for (key, o) in objects {
        found = true;
        let rel = &key[base..];
        // A "directory marker" some tools write: nothing to list.
        if rel.is_empty() || rel.ends_with('/') {
            continue;
        }
        if last_cut
            .as_deref()
            .is_some_and(|c| rel.starts_with(c) && rel[c.len()..].starts_with('/'))
        {
            continue;
        }
        let mut at = None;
        for (depth, (i, _)) in rel.match_indices('/').enumerate() {
            if stop(&rel[..i], depth + 1) {
                at = Some(&rel[..i]);
                break;
            }
        }
        match at {
            Some(c) => {
                visit(Scanned::Prefix(format!("{prefix}/{c}")));
                last_cut = Some(c.to_string());
            }
            None => visit(Scanned::Object {
                meta: meta.then(|| meta_of(&o)),
                key,
            }),
        }
    }
    found
}

impl Backend for Object {
    fn display(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            PathBuf::from(format!("s3://{}/{}", self.cfg.bucket, self.v2))
        } else {
            PathBuf::from(format!("s3://{}/{}/{rel}", self.cfg.bucket, self.v2))
        }
    }

    /// `s3://bucket/<root>/docker/registry/v2`, and the endpoint when it
    /// is not AWS's own.
    fn id(&self) -> Option<String> {
        let shown = self.display("").to_string_lossy().into_owned();
        Some(match self.cfg.endpoint_url() {
            Some(e) => format!("{shown} at {e}"),
            None => shown,
        })
    }

    fn scan(&self, prefix: &str, stop: Stop, meta: bool, visit: &mut dyn FnMut(Scanned)) -> Result<bool> {
        Ok(cut(prefix, self.objects_below(prefix)?, stop, meta, visit))
    }

    /// From the listing: a key is an object; a prefix with objects below is
    /// a "directory", whose mtime is its newest object's.
    fn stat(&self, rel: &str) -> Result<Option<Meta>> {
        if let Some(map) = self.cached(rel)? {
            let map = map.read().expect("area");
            if let Some(o) = map.get(rel) {
                return Ok(Some(meta_of(o)));
            }
            let dir = format!("{rel}/");
            let newest = map
                .range(dir.clone()..)
                .take_while(|(k, _)| k.starts_with(&dir))
                .map(|(_, o)| o.mtime)
                .max();
            return Ok(newest.map(|mtime| Meta {
                size: 0,
                mtime,
                is_dir: true,
            }));
        }
        match self.rt.block_on(self.s3.head(&self.key(rel))) {
            Ok(m) => Ok(Some(meta_of(&obj_of(&m)))),
            Err(object_store::Error::NotFound { .. }) => Ok(self
                .objects_below(rel)?
                .iter()
                .map(|(_, o)| o.mtime)
                .max()
                .map(|mtime| Meta {
                    size: 0,
                    mtime,
                    is_dir: true,
                })),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    fn read(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.read_with_meta(rel, limit)?.map(|(b, _)| b))
    }

    fn read_with_meta(&self, rel: &str, limit: u64) -> Result<Option<(Vec<u8>, Meta)>> {
        self.rt.block_on(async {
            let got = match self.s3.get(&self.key(rel)).await {
                Ok(g) => g,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.err(rel, e)),
            };
            let meta = meta_of(&obj_of(&got.meta));
            if got.meta.size > limit {
                return Err(self.err(rel, format!("larger than {limit} bytes")));
            }
            let bytes = got.bytes().await.map_err(|e| self.err(rel, e))?;
            if bytes.len() as u64 > limit {
                return Err(self.err(rel, format!("larger than {limit} bytes")));
            }
            Ok(Some((bytes.to_vec(), meta)))
        })
    }

    /// Answers from the listing, without a request, when the object's size
    /// and ETag say it holds one of `expected`: the ETag of an object
    /// written in one PUT (no SSE-KMS) is the MD5 of its content. Reads it
    /// otherwise.
    fn read_expecting(&self, rel: &str, limit: u64, expected: &[&[u8]]) -> Result<Option<(Vec<u8>, Meta)>> {
        if expected.is_empty() {
            // Nothing to vouch for: a read now (reg-rm's checks at deletion time).
            return self.read_with_meta(rel, limit);
        }
        if let Some(map) = self.cached(rel)? {
            let known = map.read().expect("area").get(rel).cloned();
            let Some(o) = known else {
                return Ok(None);
            };
            if let Some(etag) = &o.etag {
                for e in expected {
                    if e.len() as u64 == o.size && e.len() as u64 <= limit && md5_hex(e) == *etag {
                        return Ok(Some((e.to_vec(), meta_of(&o))));
                    }
                }
            }
        }
        self.read_with_meta(rel, limit)
    }

    fn open(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>> {
        let got = match self.rt.block_on(self.s3.get(&self.key(rel))) {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(rel, e)),
        };
        Ok(Some(Box::new(BodyReader {
            rt: self.rt.handle().clone(),
            stream: got.into_stream(),
            buf: Default::default(),
        })))
    }

    fn delete(&self, key: &str) -> Result<bool> {
        self.delete_batch(&[key.to_string()]).pop().unwrap_or(Ok(false))
    }

    /// Lists `prefix` afresh (what was written since the cached listing
    /// goes too), then deletes in batches.
    fn delete_prefix(&self, prefix: &str) -> Result<bool> {
        if prefix.is_empty() || prefix.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(self.err(
                prefix,
                "refusing to change: not a plain key prefix below the storage root",
            ));
        }
        let keys: Vec<String> = self
            .rt
            .block_on(self.list_range(prefix, None, None))
            .map_err(|e| self.err(prefix, e))?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        if keys.is_empty() {
            return Ok(false);
        }
        let mut any = false;
        for r in self.delete_batch(&keys) {
            any |= r?;
        }
        Ok(any)
    }

    /// Batches of at most 1,000 keys, 4 at once; a
    /// result per key, so a failure part way says exactly which went.
    /// S3 says "deleted" for an absent key too: absence is told from the
    /// cached listing.
    fn delete_batch(&self, keys: &[String]) -> Vec<Result<bool>> {
        for k in keys {
            if k.is_empty() || k.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
                return keys
                    .iter()
                    .map(|k| Err(self.err(k, "refusing to change: not a plain key below the storage root")))
                    .collect();
            }
        }
        let chunks: Vec<Vec<String>> = keys.chunks(DELETE_BATCH).map(|c| c.to_vec()).collect();
        let results: Vec<Vec<Result<bool>>> = self.rt.block_on(
            futures::stream::iter(chunks)
                .map(|c| self.delete_chunk(c))
                .buffered(DELETE_CONCURRENCY)
                .collect(),
        );
        let results: Vec<Result<bool>> = results.into_iter().flatten().collect();
        let gone: Vec<String> = keys
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(k, _)| k.clone())
            .collect();
        self.forget(&gone);
        results
    }

    /// A HEAD first (false if it exists), then a PUT.
    fn write_new(&self, rel: &str, bytes: &[u8]) -> Result<bool> {
        let key = self.key(rel);
        let r = self.rt.block_on(async {
            match self.s3.head(&key).await {
                Ok(_) => return Ok(false),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            self.s3
                .put(&key, PutPayload::from(bytes.to_vec()))
                .await
                .map(|_| true)
        });
        let written = r.map_err(|e| self.err(rel, e))?;
        if written {
            if let Some(map) = self.loaded(rel) {
                map.write().expect("area").insert(
                    rel.to_string(),
                    Obj {
                        size: bytes.len() as u64,
                        // As the server stamps it (its clock, not ours).
                        mtime: self.clock.now().unwrap_or_else(SystemTime::now),
                        etag: Some(md5_hex(bytes)),
                    },
                );
            }
        }
        Ok(written)
    }

    fn move_to_trash(&self, rel: &str, _trash: &std::path::Path) -> Result<bool> {
        Err(self.err(rel, TRASH_REFUSED))
    }

    fn prepare_trash(&self, trash: &std::path::Path) -> Result<()> {
        Err(Error::other(trash, TRASH_REFUSED))
    }

    fn answers_from_listing(&self) -> bool {
        true
    }

    fn batches_deletes(&self) -> bool {
        true
    }

    fn refresh(&self) {
        self.areas.lock().expect("areas").clear();
    }

    /// Lists `prefix` now and puts what is there in the cached listing in
    /// place of what was; forgets every listing if that fails (the next
    /// scan lists anew and reports the failure).
    fn refresh_below(&self, prefix: &str) {
        let Some(map) = self.loaded(prefix) else {
            return;
        };
        match self.rt.block_on(self.list_range(prefix, None, None)) {
            Ok(fresh) => {
                let dir = format!("{prefix}/");
                let mut map = map.write().expect("area");
                let stale: Vec<String> = map
                    .range(dir.clone()..)
                    .take_while(|(k, _)| k.starts_with(&dir))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in stale {
                    map.remove(&k);
                }
                map.extend(fresh);
            }
            Err(_) => self.refresh(),
        }
    }

    fn requests(&self) -> Option<String> {
        Some(self.counts.summary())
    }

    /// From the `Date` of the last answer; a HEAD request first if nothing
    /// was asked yet (any answer, 404 too, carries one).
    fn server_now(&self) -> Result<Option<SystemTime>> {
        if let Some(t) = self.clock.now() {
            return Ok(Some(t));
        }
        match self.rt.block_on(self.s3.head(&self.key(""))) {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.err("", e)),
        }
        Ok(self.clock.now())
    }

    fn request_counts(&self) -> Option<Arc<Requests>> {
        Some(self.counts.clone())
    }
}

/// Why `--trash` is refused on object storage.
pub const TRASH_REFUSED: &str = "--trash is not supported on object storage (a bucket has no rename; \
     copying every object first would double the requests): run with --dry-run to see what would go, \
     or turn on the bucket's versioning to be able to restore";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_prefixes() {
        let c = S3Config::from_url("s3://bkt/reg/root/").unwrap().unwrap();
        assert_eq!(c.bucket, "bkt");
        assert_eq!(c.v2_prefix(), "reg/root/docker/registry/v2");
        let c = S3Config::from_url("s3://bkt").unwrap().unwrap();
        assert_eq!(c.v2_prefix(), "docker/registry/v2");
        let c = S3Config::from_url("s3://bkt/x/docker/registry/v2")
            .unwrap()
            .unwrap();
        assert_eq!(c.v2_prefix(), "x/docker/registry/v2");
        assert!(S3Config::from_url("s3:///x").unwrap().is_err());
        assert!(S3Config::from_url("/srv/registry").is_none());
    }

    #[test]
    fn env_fills_only_what_is_missing() {
        let env = |k: &str| {
            let v = match k {
                "AWS_ACCESS_KEY_ID" => "envkey",
                "AWS_SECRET_ACCESS_KEY" => "envsecret",
                "AWS_DEFAULT_REGION" => "eu-west-1",
                "AWS_ENDPOINT_URL" => "http://127.0.0.1:9000",
                _ => return None,
            };
            Some(v.to_string())
        };
        let mut c = S3Config {
            bucket: "b".into(),
            ..S3Config::default()
        };
        c.fill_from_env(env);
        assert_eq!(c.access_key.as_deref(), Some("envkey"));
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert!(c.allow_http);
        let mut c = S3Config {
            access_key: Some("k".into()),
            secret_key: Some("s".into()),
            region: Some("r".into()),
            endpoint: Some("https://minio:9000".into()),
            ..S3Config::default()
        };
        c.fill_from_env(env);
        assert_eq!(c.access_key.as_deref(), Some("k"));
        assert_eq!(c.region.as_deref(), Some("r"));
        assert!(!c.allow_http);
        assert!(!format!("{c:?}").contains("\"s\""), "{c:?}");
    }

    #[test]
    fn areas_and_ranges() {
        assert_eq!(area_of("blobs/sha256/ab"), Some("blobs"));
        assert_eq!(area_of("blobs"), Some("blobs"));
        assert_eq!(area_of("blobsx/a"), None);
        assert_eq!(area_of("repositories/a/_layers"), Some("repositories"));
        let p = split_points("blobs");
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        let p = split_points("repositories");
        assert!(p.windows(2).all(|w| w[0] < w[1]));
    }

    /// The cuts the layout asks for, on a listing: each prefix once, in
    /// order, nothing below it, objects where nothing cuts.
    #[test]
    fn a_flat_listing_is_cut_where_told() {
        let o = || Obj {
            size: 1,
            mtime: SystemTime::UNIX_EPOCH,
            etag: None,
        };
        let keys = [
            "repositories/a/_layers/sha256/aa/link",
            "repositories/a/_layers/sha256/bb/link",
            "repositories/a/_manifests/tags/v1/current/link",
            "repositories/a/b/_layers/sha256/cc/link",
            "repositories/a-b/_uploads/u1/startedat",
            "repositories/x/",
            "repositories/z/file",
        ];
        let listing: Vec<(String, Obj)> = keys.iter().map(|k| (k.to_string(), o())).collect();
        let mut seen = Vec::new();
        let stop = |rel: &str, _: usize| rel.rsplit('/').next().is_some_and(|c| c.starts_with('_'));
        let found = cut("repositories", listing, &stop, true, &mut |item| {
            seen.push(match item {
                Scanned::Prefix(p) => format!("prefix {p}"),
                Scanned::Object { key, meta } => format!("object {key} {}", meta.is_some()),
                Scanned::Problem(e) => format!("problem {e}"),
            })
        });
        assert!(found);
        assert_eq!(
            seen,
            [
                "prefix repositories/a/_layers",
                "prefix repositories/a/_manifests",
                "prefix repositories/a/b/_layers",
                "prefix repositories/a-b/_uploads",
                "object repositories/z/file true",
            ]
        );
        let mut none = 0;
        assert!(!cut("repositories", Vec::new(), &stop, false, &mut |_| none += 1));
        assert_eq!(none, 0);
    }

    #[test]
    fn requests_are_counted_by_kind() {
        let r = Requests::default();
        r.list.fetch_add(52, Ordering::Relaxed);
        r.get.fetch_add(13, Ordering::Relaxed);
        r.delete_batch.fetch_add(3, Ordering::Relaxed);
        r.delete_keys.fetch_add(20, Ordering::Relaxed);
        r.throttled.fetch_add(2, Ordering::Relaxed);
        assert_eq!(r.total(), 68);
        assert_eq!(
            r.summary(),
            "68 requests: 52 LIST, 13 GET, 3 DeleteObjects (20 keys); 2 answered 5xx/throttled"
        );
        assert_eq!(Requests::default().summary(), "0 requests");
    }

    #[test]
    fn md5_of_a_link() {
        // The ETag moto and S3 give a link naming sha256 of the empty string.
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
