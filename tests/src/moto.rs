//! A private S3 server for the object-storage tests: moto's
//! `moto_server -H 127.0.0.1 -p PORT`, one per test, killed on drop.
//!
//! `.ci/run` installs moto in a virtual environment and names its
//! `moto_server` in `REG_TESTS_MOTO_SERVER`; otherwise `moto_server` is
//! looked up on PATH. Without it the S3 tests skip with a note, except
//! under `CI`, where they fail.

use std::net::TcpStream;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::registry::S3Storage;
use crate::server::Server;

/// The environment variable naming the `moto_server` to run.
pub const MOTO_ENV: &str = "REG_TESTS_MOTO_SERVER";

/// The credentials every test uses (moto accepts any).
pub const ACCESS_KEY: &str = "reg-tests";
pub const SECRET_KEY: &str = "reg-tests-secret";
pub const REGION: &str = "us-east-1";

/// A running moto server.
pub struct Moto {
    server: Server,
}

/// The `moto_server` to run, if there is one.
pub fn moto_program() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(MOTO_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())
}

/// Whether docker-registry, skopeo and moto_server are there: as
/// [`crate::registry_programs_available`], with moto too.
#[track_caller]
pub fn s3_programs_available(test: &str) -> bool {
    if !crate::registry_programs_available(test) {
        return false;
    }
    if moto_program().is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: moto_server not found ({MOTO_ENV} or PATH), and CI is set");
    }
    eprintln!("skipping {test}: moto_server not installed (pip install \"moto[server]\")");
    false
}

impl Moto {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Result<Moto> {
        let program = moto_program().context("moto_server not found")?;
        let server = Server::start(
            "moto_server",
            &program,
            &|port| {
                ["-H", "127.0.0.1", "-p", &port.to_string()]
                    .map(String::from)
                    .to_vec()
            },
            &|s| {
                TcpStream::connect(("127.0.0.1", s.port())).is_ok()
                    && ureq::get(&format!("http://127.0.0.1:{}/moto-api/", s.port()))
                        .call()
                        .is_ok()
            },
        )?;
        Ok(Moto { server })
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        self.server.log()
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// Creates bucket `name` (moto does not check signatures).
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        ureq::put(&format!("{}/{name}", self.endpoint()))
            .send_empty()
            .with_context(|| format!("creating bucket {name}"))?;
        Ok(())
    }

    /// Stores `bytes` as object `key` of `bucket` (moto does not check
    /// signatures).
    pub fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<()> {
        ureq::put(&format!("{}/{bucket}/{key}", self.endpoint()))
            .send(bytes)
            .with_context(|| format!("storing {bucket}/{key}"))?;
        Ok(())
    }

    /// Deletes object `key` of `bucket`, as a registry's blob deletion would.
    /// (A signed request: moto refuses an unsigned DELETE.)
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let store = crate::inventory::store(&self.endpoint(), bucket)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(store.delete(&object_store::path::Path::from(key)))
            .with_context(|| format!("deleting {bucket}/{key}"))?;
        Ok(())
    }

    /// The `AWS_*` variables a tool needs to reach `endpoint` (this server,
    /// or a proxy in front of it) with `s3://` ROOTs.
    pub fn env_for(endpoint: &str) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", REGION),
            ("AWS_ENDPOINT_URL", endpoint),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// The tools' view of `s3` (reached at `endpoint`): the backend itself.
pub fn backend(s3: &S3Storage, endpoint: &str) -> Result<reg_core::object::ObjectBackend> {
    let cfg = s3_config(&s3.bucket, &s3.root, endpoint);
    let b = reg_core::object::ObjectBackend::connect(std::sync::Arc::new(cfg))?;
    reg_core::storage::Backend::plan(&b, &reg_core::layout::AREAS);
    Ok(b)
}

/// Copies every object of the registry in `s3` to the directory `dest`
/// (see [`crate::objects::mirror`]).
pub fn mirror(s3: &S3Storage, endpoint: &str, dest: &std::path::Path) -> Result<()> {
    crate::objects::mirror(&backend(s3, endpoint)?, dest)
}

/// The configuration of a client of `bucket` (its objects under `root`) on
/// the moto server at `endpoint`, with this module's credentials.
pub fn s3_config(bucket: &str, root: &str, endpoint: &str) -> reg_core::object::S3Config {
    reg_core::object::S3Config {
        bucket: bucket.into(),
        root: root.into(),
        region: Some(REGION.into()),
        endpoint: Some(endpoint.into()),
        access_key: Some(ACCESS_KEY.into()),
        secret_key: Some(SECRET_KEY.into()),
        session_token: None,
        allow_http: true,
        path_style: true,
    }
}
