//! What a provider is: its configuration (from a ROOT URL or the registry's
//! `config.yml`) and how to build an `object_store` client from it. That is
//! all a provider file holds; listing, caching, reads, batching, retries and
//! request counts are [`super::ObjectBackend`]'s, the same for all.
//!
//! Adding a provider is a file with a [`Kind`] and a [`Provider`], and one
//! arm in [`by_name`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use object_store::client::HttpRequest;
use object_store::list::PaginatedListStore;
use object_store::{ObjectMeta, ObjectStore};
use yaml_rust2::Yaml;

use super::http::Http;
use crate::storage::RequestKind;

/// A provider, by the name its ROOT URLs (`NAME://…`) and the registry's
/// storage driver (`storage.NAME`) share.
pub fn by_name(name: &str) -> Option<&'static dyn Kind> {
    match name {
        "s3" => Some(&super::s3::S3),
        "azure" => Some(&super::azure::Azure),
        _ => None,
    }
}

/// The names [`by_name`] knows, for messages.
pub const NAMES: &str = "s3 and azure";

/// Reads a provider's configuration.
pub trait Kind: Sync {
    /// From a ROOT URL whose scheme is this provider's name
    /// (`s3://bucket/root`), with the provider's environment variables
    /// filling in credentials and endpoint.
    fn parse_url(&self, url: &str) -> Result<Box<dyn Provider>, String>;

    /// From the registry's `storage.NAME` section, read through `get`
    /// (which applies the registry's `REGISTRY_STORAGE_NAME_KEY`
    /// overrides), with the provider's environment variables (`env`) filling
    /// what it leaves out.
    fn parse_config(
        &self,
        get: &Section,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Box<dyn Provider>, String>;
}

/// One object store: where the registry's storage is in it, and how to
/// reach it.
pub trait Provider: fmt::Debug + Send + Sync {
    /// The URL of the bucket or container, without a trailing `/`
    /// (`s3://bucket`, `azure://account/container`): keys are shown after it.
    fn base_url(&self) -> String;

    /// The key prefix of the registry's `v2` directory (no trailing `/`).
    fn v2_prefix(&self) -> String;

    /// The endpoint, when it is not the provider's own: part of the root's
    /// name, so that a list made through another endpoint is refused.
    fn endpoint(&self) -> Option<String>;

    /// Builds the client on `http` (the shared HTTP layer, which counts
    /// requests and reads the server's clock): the store, and its paginated
    /// listing.
    fn connect(&self, http: Http) -> Result<Connected, String>;

    /// What kind of request this is, for the counts.
    fn classify(&self, req: &HttpRequest) -> RequestKind;

    /// What the store calls a multi-object delete, for summaries.
    fn batch_name(&self) -> &'static str;

    /// The MD5 of a listed object's content, where the listing vouches for
    /// it (an S3 ETag of an object written in one PUT).
    fn content_md5(&self, meta: &ObjectMeta) -> Option<[u8; 16]>;

    /// For stores whose listing answer carries content MD5s that
    /// `object_store` does not pass on: what reads the (key, MD5) pairs in
    /// a listing answer's body, for the HTTP layer. `None`: nothing to read.
    fn listing_md5s(&self) -> Option<ListingMd5s> {
        None
    }

    /// For tests: the configuration itself.
    fn as_any(&self) -> &dyn Any;
}

/// Reads (key, content MD5) pairs from a listing answer's body.
pub type ListingMd5s = fn(&[u8]) -> Vec<(String, [u8; 16])>;

/// A built client: the store and its paginated listing (the same object).
pub struct Connected {
    pub store: Arc<dyn ObjectStore>,
    pub pages: Arc<dyn PaginatedListStore>,
}

impl Connected {
    /// Both views of one client.
    pub fn of<S: ObjectStore + PaginatedListStore>(s: S) -> Connected {
        let s = Arc::new(s);
        Connected {
            store: s.clone(),
            pages: s,
        }
    }
}

/// A registry `storage.NAME` section with the registry's environment
/// overrides (`REGISTRY_STORAGE_NAME_KEY`).
pub struct Section<'a> {
    pub driver: &'a str,
    pub yaml: &'a Yaml,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Section<'_> {
    /// The value of `key`: the override, else the file's (a string, a
    /// boolean or a number as text); `None` if unset or empty.
    pub fn get(&self, key: &str) -> Result<Option<String>, String> {
        let var = format!(
            "REGISTRY_STORAGE_{}_{}",
            self.driver.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        );
        if let Some(v) = (self.env)(&var) {
            return Ok(Some(v).filter(|v| !v.is_empty()));
        }
        match &self.yaml[key] {
            Yaml::String(v) => Ok(Some(v.clone()).filter(|v| !v.is_empty())),
            Yaml::Boolean(b) => Ok(Some(b.to_string())),
            Yaml::Integer(i) => Ok(Some(i.to_string())),
            Yaml::BadValue | Yaml::Null => Ok(None),
            other => Err(format!(
                "storage.{}.{key} is not a string: {other:?}",
                self.driver
            )),
        }
    }

    /// A boolean `key`, `default` when unset.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key)?.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(format!(
                "storage.{}.{key} is neither true nor false: {v:?}",
                self.driver
            )),
        }
    }
}

/// The `v2` key prefix below a registry's `rootdirectory` (which may also
/// be given down to `docker/registry/v2`).
pub fn v2_prefix(root: &str) -> String {
    let root = root.trim_matches('/');
    if root.is_empty() {
        "docker/registry/v2".to_string()
    } else if root == "docker/registry/v2" || root.ends_with("/docker/registry/v2") {
        root.to_string()
    } else {
        format!("{root}/docker/registry/v2")
    }
}

/// The HTTP method and query of a request, for [`Provider::classify`].
pub fn method_and_query(req: &HttpRequest) -> (&str, &str) {
    (req.method().as_str(), req.uri().query().unwrap_or(""))
}

/// Whether the query holds parameter `name` (`name` or `name=…`).
pub fn has_param(query: &str, name: &str) -> bool {
    query
        .split('&')
        .any(|p| p == name || p.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
}
