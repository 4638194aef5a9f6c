//! `s3_upload`: copies a registry storage tree (as `gen_tree` writes it)
//! into a bucket or container (any object-storage ROOT the tools take:
//! `s3://…`, `azure://…`), for the object-storage benchmark (`bench/s3.sh`).
//!
//! ```text
//! AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \
//!   cargo run --release -p reg-core --example s3_upload -- /tmp/tree s3://bench/registry
//! ```
//!
//! Every file under `DIR/docker/registry/v2` becomes the object of the same
//! key under `ROOTDIRECTORY/docker/registry/v2`, 32 PUTs at once. The bucket
//! must exist.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::PutPayload;
use reg_core::root::Location;

/// Copy a registry tree into a bucket.
#[derive(Parser)]
struct Args {
    /// The tree's rootdirectory (holding docker/registry/v2).
    dir: PathBuf,
    /// s3://BUCKET/ROOTDIRECTORY (endpoint and credentials from AWS_*), or
    /// azure://ACCOUNT/CONTAINER/ROOTDIRECTORY (from AZURE_*).
    root: String,
    /// PUTs at once.
    #[arg(long, default_value_t = 32)]
    jobs: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let Location::Object(cfg) = Location::parse(args.root.as_ref())? else {
        bail!("{}: not an object-storage ROOT (s3://…, azure://…)", args.root);
    };
    let s3 = reg_core::object::client(cfg.clone())?;
    let v2 = args.dir.join("docker/registry/v2");
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(&v2) {
        let e = e?;
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(&v2)?.to_string_lossy().into_owned();
            files.push((e.path().to_path_buf(), format!("{}/{rel}", cfg.v2_prefix())));
        }
    }
    let n = files.len();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let mut puts = futures::stream::iter(files)
            .map(|(path, key)| {
                let s3 = s3.clone();
                async move {
                    let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
                    s3.put(&Key::from(key.as_str()), PutPayload::from(bytes))
                        .await
                        .with_context(|| key.clone())?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(args.jobs);
        while let Some(r) = puts.next().await {
            r?;
        }
        anyhow::Ok(())
    })?;
    eprintln!("s3_upload: {n} objects written to {}", args.root);
    Ok(())
}
