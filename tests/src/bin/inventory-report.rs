//! Writes an S3 Inventory report of a bucket, as S3 delivers one, into
//! another bucket of the same S3 server, for `bench/scale.sh --inventory`:
//!
//!     inventory-report ENDPOINT SOURCE DEST csv|parquet PARTS
//!
//! Lists SOURCE once, writes the report's data files (PARTS of them) and
//! its `manifest.json` into DEST (created first), and prints the
//! manifest's URL (`s3://DEST/…/manifest.json`) for `--inventory`.

use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use reg_tests::inventory::{self, Format};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, source, dest, format, parts] = args.as_slice() else {
        eprintln!("usage: inventory-report ENDPOINT SOURCE DEST csv|parquet PARTS");
        std::process::exit(2);
    };
    let format = match format.as_str() {
        "csv" => Format::Csv,
        "parquet" => Format::Parquet,
        other => bail!("{other}: the format is csv or parquet"),
    };
    let parts: usize = parts
        .parse()
        .with_context(|| format!("{parts}: PARTS is a number"))?;
    // A bucket is made by a PUT of its name (mems3 and moto alike).
    let url = format!("{}/{dest}", endpoint.trim_end_matches('/'));
    ureq::put(&url)
        .send_empty()
        .with_context(|| format!("creating bucket {dest} at {endpoint}"))?;
    let objects = inventory::list(endpoint, source)?;
    let report = inventory::report(source, dest, "bench", SystemTime::now(), format, &objects, parts)?;
    inventory::upload(endpoint, dest, &report)?;
    eprintln!(
        "inventory-report: {} objects of {source} in {} data files",
        objects.len(),
        report.files.len() - 1
    );
    println!("s3://{dest}/{}", report.manifest_key);
    Ok(())
}
