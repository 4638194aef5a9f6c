//! Finding the storage root.
//!
//! Users give either the directory set as `storage.filesystem.rootdirectory`
//! (it holds `docker/registry/v2`) or that `v2` directory itself, or the
//! registry's own `config.yml`, where `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`
//! overrides the file as it does for the registry.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use crate::error::{Error, Result};

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
            "storage driver {} is not supported (only filesystem)",
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
