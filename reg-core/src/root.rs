//! Finding the storage root.
//!
//! Users give either the directory set as `storage.filesystem.rootdirectory`
//! (it holds `docker/registry/v2`) or that `v2` directory itself, or
//! `s3://bucket/rootdirectory` for object storage, or the registry's own
//! `config.yml`, where `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY` (and
//! `REGISTRY_STORAGE_S3_*`) override the file as they do for the registry.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use crate::error::{Error, Result};
use crate::layout::Store;
use crate::object::{Object, S3Config};

/// Where a registry's storage is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory: the rootdirectory or its `v2` directory.
    Fs(PathBuf),
    /// A bucket and the rootdirectory in it.
    S3(S3Config),
}

impl Location {
    /// A ROOT as typed: `s3://bucket/prefix`, or a path.
    pub fn parse(root: &Path) -> Result<Location> {
        match root.to_str().and_then(S3Config::from_url) {
            Some(Ok(c)) => Ok(Location::S3(c)),
            Some(Err(why)) => Err(Error::other(root, why)),
            None => Ok(Location::Fs(root.to_path_buf())),
        }
    }

    /// The store there (for a directory, after [`locate`] finds `v2`; for
    /// object storage, after [`Object::check_root`] finds a registry there).
    pub fn open(&self) -> Result<Store> {
        match self {
            Location::Fs(root) => Ok(Store::fs(locate(root)?)),
            Location::S3(c) => {
                let o = Object::new(c.clone())?;
                o.check_root()?;
                Ok(Store::new(Box::new(o)))
            }
        }
    }
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

/// Where a registry `config.yml` keeps its storage: the `filesystem` or
/// `s3` driver's settings, with the registry's environment overrides
/// (`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`, `REGISTRY_STORAGE_S3_<KEY>`)
/// and, for S3, the `AWS_*` variables where the file says nothing. Other
/// drivers are refused by name.
pub fn location_from_config(file: &Path) -> Result<Location> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let env = |k: &str| std::env::var(k).ok();
    let loc = parse_location(&text, &env).map_err(|why| Error::other(file, why))?;
    Ok(match loc {
        Location::S3(mut c) => {
            c.fill_from_env(env);
            Location::S3(c)
        }
        fs => fs,
    })
}

/// The storage section of a config.yml's text, with the registry's own
/// environment overrides read through `env` (not the `AWS_*` fallback).
pub fn parse_location(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Location, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let doc = docs.first().ok_or("empty configuration")?;
    let s3 = &doc["storage"]["s3"];
    if s3.is_badvalue() {
        if let Some(dir) = env(ROOT_ENV).filter(|d| !d.is_empty()) {
            // What the filesystem driver would use; the rest is checked below.
            parse_config(text)?;
            return Ok(Location::Fs(PathBuf::from(dir)));
        }
        return parse_config(text).map(Location::Fs);
    }
    // Refuses a second driver beside s3 the same way.
    if let Err(why) = parse_config(text) {
        if why.contains("more than one storage driver") {
            return Err(why);
        }
    }
    let get = |key: &str| -> std::result::Result<Option<String>, String> {
        if let Some(v) = env(&format!("REGISTRY_STORAGE_S3_{}", key.to_ascii_uppercase())) {
            return Ok(Some(v));
        }
        match &s3[key] {
            Yaml::String(v) => Ok(Some(v.clone())),
            Yaml::Boolean(b) => Ok(Some(b.to_string())),
            Yaml::Integer(i) => Ok(Some(i.to_string())),
            Yaml::BadValue | Yaml::Null => Ok(None),
            other => Err(format!("storage.s3.{key} is not a string: {other:?}")),
        }
    };
    let flag = |key: &str, default: bool| -> std::result::Result<bool, String> {
        match get(key)?.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(format!("storage.s3.{key} is neither true nor false: {v:?}")),
        }
    };
    let bucket = get("bucket")?
        .filter(|b| !b.is_empty())
        .ok_or("storage.s3.bucket is missing")?;
    if !flag("v4auth", true)? {
        return Err(
            "storage.s3.v4auth: false is not supported: requests are signed with AWS Signature Version 4"
                .into(),
        );
    }
    let endpoint = get("regionendpoint")?.filter(|e| !e.is_empty());
    let secure = flag("secure", true)?;
    Ok(Location::S3(S3Config {
        bucket,
        root: get("rootdirectory")?
            .unwrap_or_default()
            .trim_matches('/')
            .to_string(),
        region: get("region")?.filter(|r| !r.is_empty()),
        allow_http: !secure || endpoint.as_deref().is_some_and(|e| e.starts_with("http://")),
        endpoint,
        access_key: get("accesskey")?.filter(|k| !k.is_empty()),
        secret_key: get("secretkey")?.filter(|k| !k.is_empty()),
        session_token: get("sessiontoken")?.filter(|k| !k.is_empty()),
        path_style: flag("forcepathstyle", true)?,
    }))
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
            "storage driver {} is not supported (only filesystem and s3)",
            if drivers.is_empty() {
                "(none)".to_string()
            } else {
                drivers.join(", ")
            }
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
        let Location::S3(c) = parse_location(text, &none).unwrap() else {
            panic!("not s3")
        };
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
        let Location::S3(c) = parse_location(text, &env).unwrap() else {
            panic!("not s3")
        };
        assert_eq!(c.bucket, "other");
        let e = parse_location("storage:\n  s3:\n    region: x\n", &none).unwrap_err();
        assert!(e.contains("bucket"), "{e}");
        let e = parse_location("storage:\n  s3:\n    bucket: b\n    v4auth: false\n", &none).unwrap_err();
        assert!(e.contains("v4auth"), "{e}");
        let e = parse_location("storage:\n  s3:\n    bucket: b\n  filesystem: {}\n", &none).unwrap_err();
        assert!(e.contains("more than one"), "{e}");
        for driver in ["gcs", "azure", "swift", "oss", "inmemory"] {
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
            Location::S3(_)
        ));
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
