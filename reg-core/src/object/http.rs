//! The HTTP layer under every provider's `object_store` client: counts each
//! request by kind (as the provider classifies it), reads the server's
//! clock off the `Date` of every answer, and, for a provider whose listing
//! answers carry content MD5s that `object_store` does not pass on, reads
//! them from the answer's body.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};

use super::provider::Provider;
use crate::storage::{RequestKind, Requests};

/// The server's clock, read from the `Date` header every answer carries:
/// the latest one, and when it came.
#[derive(Debug, Default)]
pub struct ServerClock(Mutex<Option<(SystemTime, Instant)>>);

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
    pub fn now(&self) -> Option<SystemTime> {
        let seen = *self.0.lock().expect("server clock");
        seen.map(|(date, at)| date + at.elapsed())
    }
}

/// Content MD5s read from listing answers, by full key, until the listing
/// that asked takes them ([`Md5s::take`]).
#[derive(Debug, Default)]
pub struct Md5s(Mutex<HashMap<String, [u8; 16]>>);

impl Md5s {
    fn put(&self, pairs: Vec<(String, [u8; 16])>) {
        self.0.lock().expect("md5s").extend(pairs);
    }

    /// The MD5 read for `key`, forgotten here.
    pub fn take(&self, key: &str) -> Option<[u8; 16]> {
        self.0.lock().expect("md5s").remove(key)
    }
}

/// What the HTTP layer shares with the backend.
#[derive(Clone, Debug)]
pub struct Http {
    pub counts: Arc<Requests>,
    pub clock: Arc<ServerClock>,
    pub md5s: Arc<Md5s>,
    provider: Arc<dyn Provider>,
}

impl Http {
    pub fn new(provider: Arc<dyn Provider>) -> Http {
        Http {
            counts: Arc::new(Requests::new(provider.batch_name())),
            clock: Arc::default(),
            md5s: Arc::default(),
            provider,
        }
    }
}

impl HttpConnector for Http {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Counting {
            inner: ReqwestConnector::default().connect(options)?,
            lists: ReqwestConnector::default().connect(options)?,
            http: self.clone(),
        }))
    }
}

/// Listings go through a pool of connections of their own: a connection
/// keeps the read buffer its largest answer grew (~330 KiB for a LIST page),
/// so the reads that follow a listing (manifests, a few KiB each) do not
/// hold 32 such buffers, and the listing's connections close once idle
/// ([`super::s3::client_options`]; issue 18).
#[derive(Debug)]
struct Counting {
    inner: HttpClient,
    lists: HttpClient,
    http: Http,
}

#[async_trait::async_trait]
impl HttpService for Counting {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let kind = self.http.provider.classify(&req);
        self.http.counts.count(kind);
        let client = if kind == RequestKind::List {
            &self.lists
        } else {
            &self.inner
        };
        let r = client.execute(req).await;
        match r {
            Ok(resp) if resp.status().is_server_error() => {
                self.http.counts.throttled.fetch_add(1, Ordering::Relaxed);
                self.http.clock.saw(&resp);
                Ok(resp)
            }
            Ok(resp) => {
                self.http.clock.saw(&resp);
                if kind == RequestKind::List && resp.status().is_success() {
                    return self.http.read_listing(resp).await;
                }
                Ok(resp)
            }
            Err(e) => {
                self.http.counts.failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

impl Http {
    /// Takes the MD5s out of a listing answer for providers that need it;
    /// the answer goes on unchanged.
    async fn read_listing(&self, resp: HttpResponse) -> Result<HttpResponse, HttpError> {
        let Some(read) = self.provider.listing_md5s() else {
            return Ok(resp);
        };
        let (parts, body) = resp.into_parts();
        let bytes = body.bytes().await?;
        self.md5s.put(read(&bytes));
        Ok(HttpResponse::from_parts(parts, bytes.into()))
    }
}
