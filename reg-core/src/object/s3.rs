//! S3 and S3-compatible stores (Ceph RGW, MinIO, moto, Google Cloud
//! Storage's XML API with HMAC keys): `s3://BUCKET/ROOTDIRECTORY`, the
//! registry's `storage.s3` section, the `AWS_*` variables.

use std::any::Any;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::client::{ClientOptions, HttpRequest};
use object_store::{BackoffConfig, ObjectMeta, RetryConfig};

use super::http::Http;
use super::provider::{self, has_param, method_and_query, Connected, Kind, Provider, Section};
use crate::storage::RequestKind;

/// The S3 provider's [`Kind`].
pub struct S3;

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

impl Kind for S3 {
    fn parse_url(&self, url: &str) -> Result<Box<dyn Provider>, String> {
        S3Config::from_url(url).map(|c| Box::new(c) as Box<dyn Provider>)
    }

    fn parse_config(
        &self,
        s3: &Section,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Box<dyn Provider>, String> {
        let mut c = S3Config::from_section(s3)?;
        c.fill_from_env(env);
        Ok(Box::new(c))
    }
}

impl S3Config {
    /// Parses `s3://bucket/rootdirectory` (the root may also end in
    /// `docker/registry/v2`). Credentials, region and endpoint come from the
    /// environment ([`S3Config::fill_from_env`]).
    pub fn from_url(url: &str) -> Result<S3Config, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url}: not an s3:// URL"))?;
        let (bucket, root) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url}: no bucket name"));
        }
        let mut c = S3Config {
            bucket: bucket.to_string(),
            root: root.trim_matches('/').to_string(),
            path_style: true,
            ..S3Config::default()
        };
        c.fill_from_env(&|k| std::env::var(k).ok());
        Ok(c)
    }

    /// The registry's `storage.s3` section: `bucket`, `rootdirectory`,
    /// `region`, `regionendpoint`, `accesskey`, `secretkey`,
    /// `sessiontoken`, `secure`, `forcepathstyle`; `v4auth: false` is
    /// refused.
    pub fn from_section(s3: &Section) -> Result<S3Config, String> {
        let bucket = s3.get("bucket")?.ok_or("storage.s3.bucket is missing")?;
        if !s3.flag("v4auth", true)? {
            return Err(
                "storage.s3.v4auth: false is not supported: requests are signed with AWS Signature Version 4"
                    .into(),
            );
        }
        let endpoint = s3.get("regionendpoint")?;
        let secure = s3.flag("secure", true)?;
        Ok(S3Config {
            bucket,
            root: s3
                .get("rootdirectory")?
                .unwrap_or_default()
                .trim_matches('/')
                .to_string(),
            region: s3.get("region")?,
            allow_http: !secure || endpoint.as_deref().is_some_and(|e| e.starts_with("http://")),
            endpoint,
            access_key: s3.get("accesskey")?,
            secret_key: s3.get("secretkey")?,
            session_token: s3.get("sessiontoken")?,
            path_style: s3.flag("forcepathstyle", true)?,
        })
    }

    /// Fills what is not set from the usual `AWS_*` variables:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`, and `AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL` or `AWS_ENDPOINT`.
    pub fn fill_from_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
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

/// How long and how often a request is tried again (throttling, 5xx,
/// connections lost), for every provider.
pub(super) fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: 8,
        retry_timeout: Duration::from_secs(120),
    }
}

/// Timeouts of the HTTP client, for every provider.
pub(super) fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_timeout(Duration::from_secs(60))
        .with_connect_timeout(Duration::from_secs(10))
        // A pooled connection keeps the read buffer its largest answer grew
        // (~330 KiB for a LIST page, 10 MiB for 32 listing at once; hyper's
        // limit cannot be set through reqwest). Closed after 2 s idle, the
        // listing's connections do not hold that through the phases that
        // follow it (90 s by default; issue 18). Requests that follow each
        // other keep their connections.
        .with_pool_idle_timeout(POOL_IDLE)
        .with_allow_http(allow_http)
}

/// How long an idle connection is kept for the next request.
const POOL_IDLE: Duration = Duration::from_secs(2);

impl Provider for S3Config {
    fn base_url(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    fn v2_prefix(&self) -> String {
        provider::v2_prefix(&self.root)
    }

    fn endpoint(&self) -> Option<String> {
        self.endpoint_url()
    }

    fn connect(&self, http: Http) -> Result<Connected, String> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_region(self.region.clone().unwrap_or_else(|| "us-east-1".into()))
            .with_allow_http(self.allow_http)
            .with_virtual_hosted_style_request(!self.path_style)
            .with_retry(retry())
            .with_client_options(client_options(self.allow_http))
            .with_http_connector(http);
        if let Some(e) = self.endpoint_url() {
            b = b.with_endpoint(e);
        }
        if let (Some(k), Some(s)) = (&self.access_key, &self.secret_key) {
            b = b.with_access_key_id(k).with_secret_access_key(s);
            if let Some(t) = &self.session_token {
                b = b.with_token(t);
            }
        }
        b.build()
            .map(Connected::of)
            .map_err(|e| format!("cannot use this S3 storage: {e}"))
    }

    fn classify(&self, req: &HttpRequest) -> RequestKind {
        let (method, q) = method_and_query(req);
        match method {
            "GET" if q.contains("list-type=") || q.contains("delimiter=") => RequestKind::List,
            "GET" => RequestKind::Get,
            "HEAD" => RequestKind::Head,
            "PUT" if req.headers().contains_key("x-amz-copy-source") => RequestKind::Copy,
            "PUT" => RequestKind::Put,
            // One <Object> element per key.
            "POST" if has_param(q, "delete") => RequestKind::DeleteBatch(match req.body().as_bytes() {
                Some(b) => b.windows(8).filter(|w| w == b"<Object>").count() as u64,
                None => 0,
            }),
            "DELETE" => RequestKind::Delete,
            _ => RequestKind::Other,
        }
    }

    fn batch_name(&self) -> &'static str {
        "DeleteObjects"
    }

    /// The ETag, when it is 32 hex digits: the MD5 of an object written in
    /// one PUT without SSE-KMS. (Another ETag that happens to look like one
    /// only makes a link read: the shortcut compares it with what is
    /// expected, never trusts it alone.)
    fn content_md5(&self, meta: &ObjectMeta) -> Option<[u8; 16]> {
        super::md5_from_hex(meta.e_tag.as_deref()?.trim_matches('"'))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_prefixes() {
        let c = S3Config::from_url("s3://bkt/reg/root/").unwrap();
        assert_eq!(c.bucket, "bkt");
        assert_eq!(c.v2_prefix(), "reg/root/docker/registry/v2");
        let c = S3Config::from_url("s3://bkt").unwrap();
        assert_eq!(c.v2_prefix(), "docker/registry/v2");
        let c = S3Config::from_url("s3://bkt/x/docker/registry/v2").unwrap();
        assert_eq!(c.v2_prefix(), "x/docker/registry/v2");
        assert!(S3Config::from_url("s3:///x").is_err());
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
        c.fill_from_env(&env);
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
        c.fill_from_env(&env);
        assert_eq!(c.access_key.as_deref(), Some("k"));
        assert_eq!(c.region.as_deref(), Some("r"));
        assert!(!c.allow_http);
        assert!(!format!("{c:?}").contains("\"s\""), "{c:?}");
    }

    /// The ETag shortcut: a tag link's listing entry is answered without a
    /// read when its ETag is the MD5 of the link we expect. What S3 and moto
    /// put in the listing for a link written in one PUT, and what they put
    /// for objects whose ETag is no MD5 (multipart, SSE-KMS, opaque).
    #[test]
    fn etag_shortcut_takes_only_a_plain_md5() {
        let link = b"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let meta = |etag: Option<&str>| ObjectMeta {
            location: "docker/registry/v2/repositories/a/_manifests/tags/t/current/link".into(),
            last_modified: std::time::SystemTime::UNIX_EPOCH.into(),
            size: link.len() as u64,
            e_tag: etag.map(str::to_string),
            version: None,
        };
        let hex: String = super::super::md5_of(link)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let c = S3Config::default();
        // Quoted, as S3 and moto send it: the link's MD5, which the
        // shortcut then compares with the MD5 of each expected link.
        let quoted = format!("\"{hex}\"");
        assert_eq!(
            c.content_md5(&meta(Some(&quoted))),
            Some(super::super::md5_of(link))
        );
        assert_eq!(c.content_md5(&meta(Some(&hex))), Some(super::super::md5_of(link)));
        // Another link's MD5 is an MD5, but not this link's: the shortcut
        // compares, so it reads instead.
        let other = c.content_md5(&meta(Some("\"d41d8cd98f00b204e9800998ecf8427e\"")));
        assert!(other.is_some() && other != Some(super::super::md5_of(link)));
        // Not an MD5 at all: no shortcut, the link is read.
        for etag in [
            format!("\"{hex}-2\""),
            "\"0x8DC0123456789AB\"".to_string(),
            format!("\"{}\"", &hex[..31]),
            format!("W/\"{hex}\""),
            String::new(),
        ] {
            assert_eq!(c.content_md5(&meta(Some(&etag))), None, "{etag}");
        }
        assert_eq!(c.content_md5(&meta(None)), None);
    }
}
