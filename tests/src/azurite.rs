//! A private Azure Blob server for the Azure tests: Azurite,
//! Microsoft's emulator (`azurite-blob --blobHost 127.0.0.1 --blobPort PORT
//! --inMemoryPersistence --skipApiVersionCheck --loose`), one per test,
//! killed on drop, with its well-known account `devstoreaccount1`.
//!
//! `.ci/run` installs Azurite from the npm registry under `target/` and
//! names its `azurite-blob` in `REG_TESTS_AZURITE`; otherwise
//! `azurite-blob` is looked up on PATH. Without it the Azure tests skip with
//! a note, except under `CI`, where they fail.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use reg_core::object::{AzureConfig, ObjectBackend};

use crate::server::Server;

/// The environment variable naming the `azurite-blob` to run.
pub const AZURITE_ENV: &str = "REG_TESTS_AZURITE";

/// Azurite's account and its published key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite.
pub struct Azurite {
    server: Server,
}

/// The `azurite-blob` to run, if there is one.
pub fn azurite_program() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(AZURITE_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join("azurite-blob"))
        .find(|p| p.is_file())
}

/// Whether Azurite is there (and, with `registry`, docker-registry and
/// skopeo too): skips with a note, or fails under `CI`.
#[track_caller]
pub fn azure_programs_available(test: &str, registry: bool) -> bool {
    if registry && !crate::registry_programs_available(test) {
        return false;
    }
    if azurite_program().is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: azurite-blob not found ({AZURITE_ENV} or PATH), and CI is set");
    }
    eprintln!("skipping {test}: Azurite not installed (npm install --prefix target/azurite azurite)");
    false
}

impl Azurite {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Result<Azurite> {
        let program = azurite_program().context("azurite-blob not found")?;
        let server = Server::start(
            "azurite-blob",
            &program,
            &|port| {
                [
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    &port.to_string(),
                    "--inMemoryPersistence",
                    "--extentMemoryLimit",
                    "512",
                    "--skipApiVersionCheck",
                    "--loose",
                    "--disableTelemetry",
                ]
                .map(String::from)
                .to_vec()
            },
            &|s| {
                TcpStream::connect(("127.0.0.1", s.port())).is_ok()
                    && s.log().contains("successfully listens")
            },
        )?;
        Ok(Azurite { server })
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        self.server.log()
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`: the blob service's URL.
    pub fn endpoint(&self) -> String {
        endpoint_at(self.port())
    }

    /// Creates container `name` (object_store has no such call: Azure's
    /// REST call, signed with the account key).
    pub fn create_container(&self, name: &str) -> Result<()> {
        create_container(self.port(), name)
    }

    /// The `AZURE_*` variables a tool needs to reach `endpoint` (this
    /// server, or a proxy in front of it) with `azure://` ROOTs.
    pub fn env_for(endpoint: &str) -> Vec<(String, String)> {
        [
            ("AZURE_STORAGE_ACCOUNT_KEY", KEY),
            ("AZURE_STORAGE_ENDPOINT", endpoint),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// Azurite's blob service URL at `port` (or a proxy's).
pub fn endpoint_at(port: u16) -> String {
    format!("http://127.0.0.1:{port}/{ACCOUNT}")
}

/// The configuration of `azure://devstoreaccount1/CONTAINER/ROOT` at
/// `endpoint`.
pub fn config(endpoint: &str, container: &str, root: &str) -> AzureConfig {
    AzureConfig {
        account: ACCOUNT.into(),
        container: container.into(),
        root: root.into(),
        access_key: Some(KEY.into()),
        endpoint: Some(endpoint.into()),
    }
}

/// A client of the container, to write to it.
pub fn store(endpoint: &str, container: &str, root: &str) -> Result<Arc<dyn object_store::ObjectStore>> {
    Ok(reg_core::object::client(Arc::new(config(
        endpoint, container, root,
    )))?)
}

/// The tools' view of the registry in `container` under `root`: the
/// backend itself.
pub fn backend(endpoint: &str, container: &str, root: &str) -> Result<ObjectBackend> {
    let b = ObjectBackend::connect(Arc::new(config(endpoint, container, root)))?;
    reg_core::storage::Backend::plan(&b, &reg_core::layout::AREAS);
    Ok(b)
}

/// Creates a container with Azure's REST call (`PUT ?restype=container`),
/// signed with the account key (Shared Key, path-style resource).
fn create_container(port: u16, name: &str) -> Result<()> {
    use hmac_sha256::sign;
    let date = crate::objects::http_date(std::time::SystemTime::now());
    let version = "2021-08-06";
    let resource = format!("/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container");
    // The verb, eleven standard headers (all empty), the x-ms- headers, the resource.
    let to_sign = format!(
        "PUT\n{}x-ms-date:{date}\nx-ms-version:{version}\n{resource}",
        "\n".repeat(11)
    );
    let key = crate::objects::base64_decode(KEY)?;
    let sig = crate::objects::base64_encode(&sign(&key, to_sign.as_bytes()));
    ureq::put(&format!(
        "http://127.0.0.1:{port}/{ACCOUNT}/{name}?restype=container"
    ))
    .header("x-ms-date", &date)
    .header("x-ms-version", version)
    .header("Authorization", &format!("SharedKey {ACCOUNT}:{sig}"))
    .send_empty()
    .with_context(|| format!("creating container {name}"))?;
    Ok(())
}

/// Uploads the registry tree under `v2` (its `docker/registry/v2`) into
/// `container` under `root`, each file the object of the same key.
pub fn upload(endpoint: &str, container: &str, root: &str, v2: &Path) -> Result<usize> {
    crate::objects::upload(
        store(endpoint, container, root)?,
        &reg_core::object::provider::v2_prefix(root),
        v2,
    )
}

mod hmac_sha256 {
    use sha2::{Digest, Sha256};

    /// HMAC-SHA256 of `msg` under `key`.
    pub fn sign(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
        let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }
}
