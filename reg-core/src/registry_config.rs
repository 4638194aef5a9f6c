//! What the tools read from the registry's `config.yml` besides where its
//! storage is ([`crate::root`]): whether it keeps a blob descriptor cache
//! (`storage.cache.blobdescriptor`), which must be emptied (the registry
//! restarted) after blobs are deleted. The environment overrides the file
//! as it does for the registry (`REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR`).

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// The variable the registry reads instead of `storage.cache.blobdescriptor`.
pub const CACHE_ENV: &str = "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR";

/// What is known of the registry's blob descriptor cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BlobCache {
    /// No configuration was read (ROOT given, not `--config`).
    #[default]
    Unknown,
    /// The configuration turns it on: how (`inmemory`, `redis`) and where
    /// that is said.
    On { kind: String, from: String },
    /// The configuration leaves it off.
    Off,
}

impl BlobCache {
    /// Reads it from the config file `file`, with the registry's
    /// environment override read through `env`.
    pub fn from_config(file: &Path, env: &dyn Fn(&str) -> Option<String>) -> crate::Result<BlobCache> {
        let text = std::fs::read_to_string(file).map_err(|e| crate::Error::io(file, e))?;
        parse_blob_cache(&text, file, env).map_err(|why| crate::Error::other(file, why))
    }

    /// What to say after blobs were deleted: a reminder that the registry
    /// must be restarted, definite when the configuration turns the cache
    /// on, conditional when it was not read; nothing when it is off.
    pub fn reminder(&self) -> Option<String> {
        const WHY: &str = "until then it believes deleted blobs still exist and clients may push \
                           broken images";
        match self {
            BlobCache::Unknown => Some(format!(
                "if the registry runs with a blob descriptor cache (storage.cache.blobdescriptor: \
                 inmemory or redis), restart it now: {WHY}"
            )),
            BlobCache::On { kind, from } => Some(format!(
                "the registry runs with a blob descriptor cache ({from}: {kind}): restart it now \
                 (a redis cache: empty it too): {WHY}"
            )),
            BlobCache::Off => None,
        }
    }
}

/// `storage.cache.blobdescriptor` in a config.yml's text (`file` names it in
/// what is said), or the environment's override.
pub fn parse_blob_cache(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BlobCache, String> {
    let (value, from) = match env(CACHE_ENV) {
        Some(v) => (v, CACHE_ENV.to_string()),
        None => {
            let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
            let value = match docs.first().map(|d| &d["storage"]["cache"]["blobdescriptor"]) {
                Some(Yaml::String(s)) => s.clone(),
                _ => String::new(),
            };
            let from = format!(
                "storage.cache.blobdescriptor in {}",
                PathBuf::from(file).display()
            );
            (value, from)
        }
    };
    // The registry knows these two; any other value (or none) leaves the
    // cache off (2.8 warns "unknown cache type" and goes on without).
    Ok(match value.trim() {
        kind @ ("inmemory" | "redis") => BlobCache::On {
            kind: kind.to_string(),
            from,
        },
        _ => BlobCache::Off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "version: 0.1\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n";

    #[test]
    fn the_cache_is_read_from_the_file_or_the_environment() {
        let file = Path::new("/etc/docker/registry/config.yml");
        let none = |_: &str| None;
        assert_eq!(
            parse_blob_cache(DEBIAN, file, &none).unwrap(),
            BlobCache::On {
                kind: "inmemory".into(),
                from: "storage.cache.blobdescriptor in /etc/docker/registry/config.yml".into()
            }
        );
        let without = "storage:\n  filesystem:\n    rootdirectory: /r\n";
        assert_eq!(parse_blob_cache(without, file, &none).unwrap(), BlobCache::Off);
        let env = |k: &str| (k == CACHE_ENV).then(|| "redis".to_string());
        assert_eq!(
            parse_blob_cache(without, file, &env).unwrap(),
            BlobCache::On {
                kind: "redis".into(),
                from: CACHE_ENV.into()
            }
        );
        let off = |k: &str| (k == CACHE_ENV).then(String::new);
        assert_eq!(parse_blob_cache(DEBIAN, file, &off).unwrap(), BlobCache::Off);
        assert!(parse_blob_cache("storage: [", file, &none).is_err());
    }

    #[test]
    fn the_reminder_is_definite_only_when_the_cache_is_on() {
        let on = BlobCache::On {
            kind: "inmemory".into(),
            from: "x".into(),
        };
        assert!(on
            .reminder()
            .unwrap()
            .starts_with("the registry runs with a blob descriptor cache (x: inmemory): restart it now"));
        assert!(BlobCache::Unknown
            .reminder()
            .unwrap()
            .starts_with("if the registry runs with"));
        assert_eq!(BlobCache::Off.reminder(), None);
    }
}
