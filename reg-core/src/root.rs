//! Finding the storage root.
//!
//! Users give either the directory set as `storage.filesystem.rootdirectory`
//! (it holds `docker/registry/v2`) or that `v2` directory itself, or
//! `NAME://…` for object storage (`s3://bucket/rootdirectory`,
//! `azure://account/container/rootdirectory`: see
//! [`crate::object::provider::by_name`]), or the registry's own
//! `config.yml`, where `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY` (and
//! `REGISTRY_STORAGE_<DRIVER>_*`) override the file as they do for the
//! registry.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layout::Store;
use crate::object::provider::{self, Provider, Section};
use crate::object::{InventoryUsed, ObjectBackend};
use crate::storage::Backend as _;

/// Where a registry's storage is.
#[derive(Debug, Clone)]
pub enum Location {
    /// A directory: the rootdirectory or its `v2` directory.
    Fs(PathBuf),
    /// An object store (a bucket, a container) and the rootdirectory in it.
    Object(Arc<dyn Provider>),
}

impl PartialEq for Location {
    fn eq(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Fs(a), Location::Fs(b)) => a == b,
            (Location::Object(a), Location::Object(b)) => format!("{a:?}") == format!("{b:?}"),
            _ => false,
        }
    }
}

impl Location {
    /// A ROOT as typed: `NAME://…` for a provider that NAME names
    /// (`s3://bucket/prefix`), or a path.
    pub fn parse(root: &Path) -> Result<Location> {
        let Some((scheme, _)) = root.to_str().and_then(|r| r.split_once("://")) else {
            return Ok(Location::Fs(root.to_path_buf()));
        };
        let kind = provider::by_name(scheme).ok_or_else(|| {
            Error::other(
                root,
                format!(
                    "{scheme}:// is not a storage this tool reaches ({})",
                    provider::NAMES
                ),
            )
        })?;
        let url = root.to_str().unwrap_or_default();
        kind.parse_url(url)
            .map(|p| Location::Object(Arc::from(p)))
            .map_err(|why| Error::other(root, why))
    }

    /// The store there (for a directory, after [`locate`] finds `v2`; for
    /// object storage, after [`ObjectBackend::check_root`] finds a registry
    /// there).
    pub fn open(&self) -> Result<Store> {
        self.open_with(None).map(|(store, _)| store)
    }

    /// [`Location::open`], with the listings of `blobs/` and
    /// `repositories/` taken from an S3 Inventory report when `inventory`
    /// names one (see [`ObjectBackend::use_inventory`]); what was read of it.
    pub fn open_with(&self, inventory: Option<&Inventory>) -> Result<(Store, Option<InventoryUsed>)> {
        match (self, inventory) {
            (Location::Fs(root), None) => Ok((Store::fs(locate(root)?), None)),
            (Location::Fs(root), Some(inv)) => Err(Error::other(
                root,
                format!(
                    "--inventory {}: S3 Inventory reports list S3 buckets; this registry is on a filesystem",
                    inv.at
                ),
            )),
            (Location::Object(p), inv) => {
                let o = ObjectBackend::connect(p.clone())?;
                o.plan(&crate::layout::AREAS);
                let used = match inv {
                    Some(inv) => Some(o.use_inventory(&inv.at, inv.max_age, inv.local_now)?),
                    None => None,
                };
                o.check_root()?;
                Ok((Store::new(Box::new(o)), used))
            }
        }
    }
}

/// An S3 Inventory report to take the listing from (`--inventory`), and
/// how old it may be.
#[derive(Clone, Debug)]
pub struct Inventory {
    /// Its `manifest.json`: `s3://BUCKET/KEY` or a local path.
    pub at: String,
    /// The oldest report accepted (`--min-age`).
    pub max_age: std::time::Duration,
    /// This machine's clock, for a store whose answers carry none.
    pub local_now: std::time::SystemTime,
}

/// The environment variable the registry reads instead of the config file.
pub const ROOT_ENV: &str = "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY";

/// The `v2` directory for a user-given ROOT.
pub fn locate(root: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(Error::other(root, "not a directory"));
    }
    let nested = root.join("docker/registry/v2");
    if nested.is_dir() {
        return Ok(nested);
    }
    let looks_like_v2 = ["blobs", "repositories"].iter().any(|d| root.join(d).is_dir());
    if looks_like_v2
        || root.file_name().is_some_and(|n| n == "v2")
            && root.parent().is_some_and(|p| p.ends_with("docker/registry"))
    {
        return Ok(root.to_path_buf());
    }
    Err(Error::other(
        root,
        "not a registry storage root: no docker/registry/v2 inside, and no blobs/ or repositories/ directory",
    ))
}

/// The rootdirectory a registry `config.yml` names, with the environment
/// override applied. Refuses storage drivers other than `filesystem`.
pub fn from_config(file: &Path) -> Result<PathBuf> {
    from_config_with_env(file, std::env::var_os(ROOT_ENV).map(PathBuf::from))
}

/// Where a registry `config.yml` keeps its storage: the `filesystem`
/// driver's settings or an object-storage driver's (`s3`, `azure`), with the
/// registry's environment overrides
/// (`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`,
/// `REGISTRY_STORAGE_<DRIVER>_<KEY>`) and the provider's own variables
/// (`AWS_*`, `AZURE_*`) where the file says nothing. Other drivers are
/// refused by name.
pub fn location_from_config(file: &Path) -> Result<Location> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let env = |k: &str| std::env::var(k).ok();
    parse_location(&text, &env).map_err(|why| Error::other(file, why))
}

/// The storage section of a config.yml's text, with the registry's own
/// environment overrides and the provider's variables read through `env`.
pub fn parse_location(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Location, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let doc = docs.first().ok_or("empty configuration")?;
    let object = match &doc["storage"] {
        Yaml::Hash(h) => h
            .keys()
            .filter_map(|k| k.as_str())
            .find_map(|d| provider::by_name(d).map(|kind| (d, kind))),
        _ => None,
    };
    let Some((driver, kind)) = object else {
        if let Some(dir) = env(ROOT_ENV).filter(|d| !d.is_empty()) {
            // What the filesystem driver would use; the rest is checked below.
            parse_config(text)?;
            return Ok(Location::Fs(PathBuf::from(dir)));
        }
        return parse_config(text).map(Location::Fs);
    };
    // Refuses a second driver beside this one the same way.
    if let Err(why) = parse_config(text) {
        if why.contains("more than one storage driver") {
            return Err(why);
        }
    }
    let section = Section {
        driver,
        yaml: &doc["storage"][driver],
        env,
    };
    kind.parse_config(&section, env)
        .map(|p| Location::Object(Arc::from(p)))
}
fn from_config_with_env(file: &Path, env: Option<PathBuf>) -> Result<PathBuf> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    if let Some(dir) = env.filter(|d| !d.as_os_str().is_empty()) {
        return Ok(dir);
    }
    parse_config(&text).map_err(|why| Error::other(file, why))
}

/// Reads `storage.filesystem.rootdirectory` from the text of a config.yml.
pub fn parse_config(text: &str) -> std::result::Result<PathBuf, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let doc = docs.first().ok_or("empty configuration")?;
    let storage = &doc["storage"];
    if storage.is_badvalue() {
        return Err("no storage section".into());
    }
    // Every key but these names a driver; the registry refuses more than one.
    let drivers: Vec<String> = match storage {
        Yaml::Hash(h) => h
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| !matches!(*k, "cache" | "delete" | "maintenance" | "redirect" | "tag"))
            .map(str::to_string)
            .collect(),
        _ => vec![],
    };
    if drivers.len() > 1 {
        return Err(format!(
            "more than one storage driver configured: {} (the registry refuses this too)",
            drivers.join(", ")
        ));
    }
    let fs = &storage["filesystem"];
    if fs.is_badvalue() {
        return Err(format!(
            "storage driver {} is not supported (only filesystem, {})",
            if drivers.is_empty() {
                "(none)".to_string()
            } else {
                drivers.join(", ")
            },
            provider::NAMES
        ));
    }
    match &fs["rootdirectory"] {
        Yaml::String(s) if !s.is_empty() => Ok(PathBuf::from(s)),
        // The registry's default when the key is absent.
        Yaml::BadValue | Yaml::Null => Ok(PathBuf::from("/var/lib/registry")),
        other => Err(format!(
            "storage.filesystem.rootdirectory is not a string: {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::S3Config;

    #[test]
    fn reads_debian_config() {
        let text = "version: 0.1\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n  delete:\n    enabled: true\n";
        assert_eq!(
            parse_config(text).unwrap(),
            PathBuf::from("/var/lib/docker-registry")
        );
        assert_eq!(
            parse_config("storage:\n  filesystem: {}\n").unwrap(),
            PathBuf::from("/var/lib/registry")
        );
        let e = parse_config("storage:\n  s3:\n    bucket: x\n  cache: {}\n").unwrap_err();
        assert!(e.contains("s3"), "{e}");
        assert!(parse_config("storage: [").is_err());
    }

    #[test]
    fn reads_an_s3_section_with_overrides() {
        let text = "storage:\n  cache: {}\n  s3:\n    accesskey: AK\n    secretkey: SK\n    region: us-east-1\n    regionendpoint: http://127.0.0.1:5000\n    bucket: reg\n    rootdirectory: /some/root\n    secure: false\n    v4auth: true\n    forcepathstyle: true\n";
        let none = |_: &str| None;
        let s3 = |l: Location| match l {
            Location::Object(p) => p.as_any().downcast_ref::<S3Config>().unwrap().clone(),
            _ => panic!("not s3"),
        };
        let c = s3(parse_location(text, &none).unwrap());
        assert_eq!(
            (
                c.bucket.as_str(),
                c.root.as_str(),
                c.access_key.as_deref(),
                c.secret_key.as_deref()
            ),
            ("reg", "some/root", Some("AK"), Some("SK"))
        );
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert!(c.allow_http && c.path_style);
        assert_eq!(c.v2_prefix(), "some/root/docker/registry/v2");
        // The registry's environment overrides win over the file.
        let env = |k: &str| (k == "REGISTRY_STORAGE_S3_BUCKET").then(|| "other".to_string());
        let c = s3(parse_location(text, &env).unwrap());
        assert_eq!(c.bucket, "other");
        let e = parse_location("storage:\n  s3:\n    region: x\n", &none).unwrap_err();
        assert!(e.contains("bucket"), "{e}");
        let e = parse_location("storage:\n  s3:\n    bucket: b\n    v4auth: false\n", &none).unwrap_err();
        assert!(e.contains("v4auth"), "{e}");
        let e = parse_location("storage:\n  s3:\n    bucket: b\n  filesystem: {}\n", &none).unwrap_err();
        assert!(e.contains("more than one"), "{e}");
        for driver in ["gcs", "swift", "oss", "inmemory"] {
            let e = parse_location(&format!("storage:\n  {driver}:\n    bucket: b\n"), &none).unwrap_err();
            assert!(e.contains(driver) && e.contains("not supported"), "{e}");
        }
        let fs = parse_location("storage:\n  filesystem:\n    rootdirectory: /a\n", &none).unwrap();
        assert_eq!(fs, Location::Fs(PathBuf::from("/a")));
    }

    #[test]
    fn roots_as_typed() {
        assert!(matches!(
            Location::parse(Path::new("s3://b/p")).unwrap(),
            Location::Object(_)
        ));
        assert!(matches!(
            Location::parse(Path::new("azure://a/c/p")).unwrap(),
            Location::Object(_)
        ));
        let e = Location::parse(Path::new("gs://b/p")).unwrap_err().to_string();
        assert!(e.contains("gs:// is not a storage"), "{e}");
        assert_eq!(
            Location::parse(Path::new("/srv/r")).unwrap(),
            Location::Fs(PathBuf::from("/srv/r"))
        );
        assert!(Location::parse(Path::new("s3://")).is_err());
    }

    #[test]
    fn two_storage_drivers_are_refused() {
        let text = "storage:\n  cache: {}\n  filesystem:\n    rootdirectory: /a\n  s3:\n    bucket: x\n  delete:\n    enabled: true\n  maintenance: {}\n  redirect: {}\n  tag: {}\n";
        let e = parse_config(text).unwrap_err();
        assert!(e.contains("more than one storage driver"), "{e}");
        assert!(e.contains("filesystem, s3"), "{e}");
        for key in ["cache", "delete", "maintenance", "redirect", "tag"] {
            assert!(!e.contains(key), "{key} is no driver: {e}");
        }
        // The non-driver keys alone do not count.
        let text = "storage:\n  filesystem: {}\n  cache: {}\n  delete: {}\n  maintenance: {}\n  redirect: {}\n  tag: {}\n";
        assert_eq!(parse_config(text).unwrap(), PathBuf::from("/var/lib/registry"));
    }

    #[test]
    fn env_overrides_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, "storage:\n  filesystem:\n    rootdirectory: /a\n").unwrap();
        assert_eq!(from_config_with_env(&cfg, None).unwrap(), PathBuf::from("/a"));
        assert_eq!(
            from_config_with_env(&cfg, Some("/b".into())).unwrap(),
            PathBuf::from("/b")
        );
        let e = from_config_with_env(&dir.path().join("missing.yml"), None).unwrap_err();
        assert!(e.to_string().contains("missing.yml"));
    }

    #[test]
    fn locates_v2_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("docker/registry/v2");
        std::fs::create_dir_all(v2.join("blobs")).unwrap();
        assert_eq!(locate(dir.path()).unwrap(), v2);
        assert_eq!(locate(&v2).unwrap(), v2);
        let e = locate(&dir.path().join("docker")).unwrap_err();
        assert!(e.to_string().contains("not a registry storage root"), "{e}");
        let e = locate(Path::new("/nonexistent")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent: "), "{e}");
    }
}
