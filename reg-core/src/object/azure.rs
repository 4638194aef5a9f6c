//! Azure Blob Storage (and Azurite, Microsoft's emulator):
//! `azure://ACCOUNT/CONTAINER/ROOTDIRECTORY`, the registry's `storage.azure`
//! section, the `AZURE_*` variables `object_store` reads.
//!
//! Azure's ETags are opaque (`0x8D…`), not MD5s, and `object_store` passes
//! on no other hash. But a listing answer carries each blob's
//! `Content-MD5`, which the service keeps for a blob uploaded in one request
//! (every link file and manifest the registry writes): the HTTP layer reads
//! it from the answer ([`Provider::listing_md5s`]), so tag links are vouched
//! for by the listing as on S3. A blob without one (uploaded in blocks,
//! with no MD5 set) is read instead: one GET per tag link.

use std::any::Any;

use object_store::azure::MicrosoftAzureBuilder;
use object_store::client::HttpRequest;
use object_store::ObjectMeta;

use super::http::Http;
use super::provider::{self, has_param, method_and_query, Connected, Kind, ListingMd5s, Provider, Section};
use super::s3::{client_options, retry};
use crate::storage::RequestKind;

/// The Azure provider's [`Kind`].
pub struct Azure;

/// Where the storage is: an account, a container and the registry's
/// `rootdirectory` in it, and how to reach it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AzureConfig {
    pub account: String,
    pub container: String,
    /// The registry's `rootdirectory` (no leading or trailing `/`).
    pub root: String,
    /// The account key (`accountkey`, else `AZURE_STORAGE_ACCOUNT_KEY`);
    /// without one, `object_store` takes what the `AZURE_*` variables
    /// offer (a SAS token, a service principal, a managed identity).
    pub access_key: Option<String>,
    /// The blob service's URL when it is not
    /// `https://ACCOUNT.blob.core.windows.net` (`serviceurl`, a `realm`,
    /// `AZURE_STORAGE_ENDPOINT`; Azurite's
    /// `http://127.0.0.1:10000/devstoreaccount1`).
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for AzureConfig {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("account", &self.account)
            .field("container", &self.container)
            .field("root", &self.root)
            .field("access_key", &self.access_key.as_ref().map(|_| "…"))
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Kind for Azure {
    fn parse_url(&self, url: &str) -> Result<Box<dyn Provider>, String> {
        AzureConfig::from_url(url).map(|c| Box::new(c) as Box<dyn Provider>)
    }

    fn parse_config(
        &self,
        azure: &Section,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Box<dyn Provider>, String> {
        let mut c = AzureConfig::from_section(azure)?;
        c.fill_from_env(env);
        Ok(Box::new(c))
    }
}

impl AzureConfig {
    /// Parses `azure://account/container/rootdirectory`; the key and the
    /// endpoint come from the environment ([`AzureConfig::fill_from_env`]).
    pub fn from_url(url: &str) -> Result<AzureConfig, String> {
        let rest = url
            .strip_prefix("azure://")
            .ok_or_else(|| format!("{url}: not an azure:// URL"))?;
        let mut parts = rest.splitn(3, '/');
        let account = parts.next().unwrap_or_default();
        let container = parts.next().unwrap_or_default();
        if account.is_empty() || container.is_empty() {
            return Err(format!(
                "{url}: an Azure ROOT is azure://ACCOUNT/CONTAINER/ROOTDIRECTORY"
            ));
        }
        let mut c = AzureConfig {
            account: account.to_string(),
            container: container.to_string(),
            root: parts.next().unwrap_or_default().trim_matches('/').to_string(),
            ..AzureConfig::default()
        };
        c.fill_from_env(&|k| std::env::var(k).ok());
        Ok(c)
    }

    /// The registry's `storage.azure` section: `accountname`, `accountkey`,
    /// `container`, `rootdirectory`, and the service's address as `realm`
    /// (2.8: `https://ACCOUNT.blob.REALM`) or `serviceurl` (v3).
    pub fn from_section(azure: &Section) -> Result<AzureConfig, String> {
        let account = azure
            .get("accountname")?
            .ok_or("storage.azure.accountname is missing")?;
        let container = azure
            .get("container")?
            .ok_or("storage.azure.container is missing")?;
        let endpoint = match (azure.get("serviceurl")?, azure.get("realm")?) {
            (Some(url), _) => Some(url),
            (None, Some(realm)) if realm != "core.windows.net" => {
                Some(format!("https://{account}.blob.{realm}"))
            }
            _ => None,
        };
        Ok(AzureConfig {
            root: azure
                .get("rootdirectory")?
                .unwrap_or_default()
                .trim_matches('/')
                .to_string(),
            access_key: azure.get("accountkey")?,
            account,
            container,
            endpoint,
        })
    }

    /// Fills the key and the endpoint, when not set, from
    /// `AZURE_STORAGE_ACCOUNT_KEY` (or its aliases `AZURE_STORAGE_ACCESS_KEY`,
    /// `AZURE_STORAGE_MASTER_KEY`) and `AZURE_STORAGE_ENDPOINT` (or
    /// `AZURE_ENDPOINT`). Other credentials `object_store` reads from the
    /// `AZURE_*` variables itself.
    pub fn fill_from_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let first = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        if self.access_key.is_none() {
            self.access_key = first(&[
                "AZURE_STORAGE_ACCOUNT_KEY",
                "AZURE_STORAGE_ACCESS_KEY",
                "AZURE_STORAGE_MASTER_KEY",
            ]);
        }
        if self.endpoint.is_none() {
            self.endpoint = first(&["AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"]);
        }
    }

    fn endpoint_url(&self) -> Option<String> {
        self.endpoint
            .as_ref()
            .map(|e| e.trim_end_matches('/').to_string())
    }
}

impl Provider for AzureConfig {
    fn base_url(&self) -> String {
        format!("azure://{}/{}", self.account, self.container)
    }

    fn v2_prefix(&self) -> String {
        provider::v2_prefix(&self.root)
    }

    fn endpoint(&self) -> Option<String> {
        self.endpoint_url()
    }

    fn connect(&self, http: Http) -> Result<Connected, String> {
        let allow_http = self.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
        let mut b = MicrosoftAzureBuilder::from_env()
            .with_account(&self.account)
            .with_container_name(&self.container)
            .with_allow_http(allow_http)
            .with_retry(retry())
            .with_client_options(client_options(allow_http))
            .with_http_connector(http);
        if let Some(e) = self.endpoint_url() {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &self.access_key {
            b = b.with_access_key(k);
        }
        b.build()
            .map(Connected::of)
            .map_err(|e| format!("cannot use this Azure storage: {e}"))
    }

    fn classify(&self, req: &HttpRequest) -> RequestKind {
        let (method, q) = method_and_query(req);
        match method {
            "GET" if has_param(q, "comp") && q.contains("comp=list") => RequestKind::List,
            "GET" if !has_param(q, "comp") => RequestKind::Get,
            "HEAD" => RequestKind::Head,
            "PUT" if req.headers().contains_key("x-ms-copy-source") => RequestKind::Copy,
            "PUT" => RequestKind::Put,
            // A multipart body with one DELETE sub-request per blob.
            "POST" if q.contains("comp=batch") => RequestKind::DeleteBatch(match req.body().as_bytes() {
                Some(b) => b.windows(7).filter(|w| w == b"DELETE ").count() as u64,
                None => 0,
            }),
            "DELETE" => RequestKind::Delete,
            _ => RequestKind::Other,
        }
    }

    fn batch_name(&self) -> &'static str {
        "batch delete"
    }

    /// Azure's ETag is no MD5; the listing's `Content-MD5` is read by the
    /// HTTP layer instead ([`AzureConfig::listing_md5s`]).
    fn content_md5(&self, _meta: &ObjectMeta) -> Option<[u8; 16]> {
        None
    }

    fn listing_md5s(&self) -> Option<ListingMd5s> {
        Some(blob_md5s)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The `(Name, Content-MD5)` of each `<Blob>` of a List Blobs answer.
fn blob_md5s(body: &[u8]) -> Vec<(String, [u8; 16])> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    let inner = |s: &str, tag: &str| -> Option<String> {
        let open = format!("<{tag}>");
        let start = s.find(&open)? + open.len();
        let end = s[start..].find(&format!("</{tag}>"))? + start;
        Some(unescape(&s[start..end]))
    };
    text.split("<Blob>")
        .skip(1)
        .filter_map(|blob| {
            let blob = blob.split("</Blob>").next()?;
            let name = inner(blob, "Name")?;
            let md5 = base64_16(inner(blob, "Content-MD5")?.trim())?;
            Some((name, md5))
        })
        .collect()
}

/// XML's five named entities and numeric character references.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let ent = &rest[1..end];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Sixteen bytes from standard base64 (24 characters).
fn base64_16(s: &str) -> Option<[u8; 16]> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let b = s.as_bytes();
    if b.len() != 24 || &b[22..] != b"==" {
        return None;
    }
    let mut out = Vec::with_capacity(18);
    for chunk in b[..24].chunks(4) {
        let mut n = 0u32;
        for &c in chunk {
            n = n << 6 | if c == b'=' { 0 } else { val(c)? };
        }
        out.extend_from_slice(&n.to_be_bytes()[1..]);
    }
    out.truncate(16);
    out.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = AzureConfig::from_url("azure://acct/registry/srv/reg/").unwrap();
        assert_eq!((c.account.as_str(), c.container.as_str()), ("acct", "registry"));
        assert_eq!(c.v2_prefix(), "srv/reg/docker/registry/v2");
        assert_eq!(c.base_url(), "azure://acct/registry");
        let c = AzureConfig::from_url("azure://acct/registry").unwrap();
        assert_eq!(c.v2_prefix(), "docker/registry/v2");
        for bad in ["azure://acct", "azure:///c/r", "azure://acct//r"] {
            assert!(AzureConfig::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn md5s_from_a_listing_answer() {
        // What Azurite answers (trimmed): the MD5 of the empty string.
        let xml = br#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs><Blob><Name>a/b&amp;c/link</Name><Properties><Etag>0x8DC</Etag><Content-Length>0</Content-Length><Content-MD5>1B2M2Y8AsgTpgAmY7PhCfg==</Content-MD5></Properties></Blob><Blob><Name>no/md5</Name><Properties><Content-MD5 /></Properties></Blob><BlobPrefix><Name>p/</Name></BlobPrefix></Blobs><NextMarker /></EnumerationResults>"#;
        let got = blob_md5s(xml);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "a/b&c/link");
        assert_eq!(
            super::super::md5_from_hex("d41d8cd98f00b204e9800998ecf8427e"),
            Some(got[0].1)
        );
        assert_eq!(unescape("x&#x41;&#66;&lt;&bogus;"), "xAB<&bogus;");
    }

    #[test]
    fn a_registry_config_section() {
        let yaml = yaml_rust2::YamlLoader::load_from_str(
            "accountname: acct\naccountkey: a2V5\ncontainer: reg\nrealm: core.chinacloudapi.cn\nrootdirectory: /r\n",
        )
        .unwrap();
        let none = |_: &str| None;
        let s = Section {
            driver: "azure",
            yaml: &yaml[0],
            env: &none,
        };
        let c = AzureConfig::from_section(&s).unwrap();
        assert_eq!(
            c.endpoint.as_deref(),
            Some("https://acct.blob.core.chinacloudapi.cn")
        );
        assert_eq!((c.root.as_str(), c.access_key.as_deref()), ("r", Some("a2V5")));
        assert!(!format!("{c:?}").contains("a2V5"));
        let env = |k: &str| (k == "REGISTRY_STORAGE_AZURE_CONTAINER").then(|| "other".to_string());
        let s = Section {
            driver: "azure",
            yaml: &yaml[0],
            env: &env,
        };
        assert_eq!(AzureConfig::from_section(&s).unwrap().container, "other");
    }
}
