//! S3 Inventory reports made from a real listing of a bucket, as S3
//! delivers them (issue 18): data files (gzipped CSV with URL-encoded
//! keys, or Parquet with S3's schema) and a `manifest.json` naming each
//! with its size and MD5, under
//! `PREFIX/SOURCE-BUCKET/CONFIG/YYYY-MM-DDTHH-MMZ/manifest.json` and
//! `PREFIX/SOURCE-BUCKET/CONFIG/data/`. moto has no inventory of its own:
//! the tests list the bucket, write the report with this, and upload it.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures::StreamExt;
use md5::Digest as _;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload};

/// One object of the bucket, as a listing gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    pub last_modified: SystemTime,
    /// Without quotes.
    pub etag: Option<String>,
}

/// The format of a report's data files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

/// A report ready to upload: its files by key, the manifest last.
pub struct Report {
    pub files: Vec<(String, Vec<u8>)>,
    pub manifest_key: String,
}

/// A client of `bucket` on the S3 server at `endpoint`.
pub fn store(endpoint: &str, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let cfg = crate::moto::s3_config(bucket, "", endpoint);
    Ok(reg_core::object::client(Arc::new(cfg))?)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Every object of `bucket`, from one flat listing.
pub fn list(endpoint: &str, bucket: &str) -> Result<Vec<Object>> {
    let store = store(endpoint, bucket)?;
    runtime()?.block_on(async {
        let mut out = Vec::new();
        let mut s = store.list(None);
        while let Some(m) = s.next().await {
            let m = m.with_context(|| format!("listing {bucket}"))?;
            out.push(Object {
                key: m.location.to_string(),
                size: m.size,
                last_modified: SystemTime::from(m.last_modified),
                etag: m.e_tag.map(|e| e.trim_matches('"').to_string()),
            });
        }
        Ok(out)
    })
}

/// Uploads `report` to `bucket` at `endpoint`.
pub fn upload(endpoint: &str, bucket: &str, report: &Report) -> Result<()> {
    upload_files(endpoint, bucket, &report.files)
}

/// Stores each (key, bytes) in `bucket` at `endpoint`.
pub fn upload_files(endpoint: &str, bucket: &str, files: &[(String, Vec<u8>)]) -> Result<()> {
    let store = store(endpoint, bucket)?;
    runtime()?.block_on(async {
        for (key, bytes) in files {
            store
                .put(&Key::from(key.as_str()), PutPayload::from(bytes.clone()))
                .await
                .with_context(|| format!("storing {key}"))?;
        }
        Ok(())
    })
}

/// Writes `report` into `dir` as `aws s3 cp --recursive` of its
/// configuration's prefix would (`DATE/manifest.json`, `data/…`); the
/// manifest's path.
pub fn download(report: &Report, dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let config_dir = report
        .manifest_key
        .rsplitn(3, '/')
        .nth(2)
        .context("a manifest key has a configuration prefix")?;
    for (key, bytes) in &report.files {
        let rel = key
            .strip_prefix(config_dir)
            .and_then(|r| r.strip_prefix('/'))
            .context("report files are below the configuration's prefix")?;
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent"))?;
        std::fs::write(&path, bytes)?;
    }
    let manifest = report.manifest_key.strip_prefix(config_dir).expect("checked");
    Ok(dir.join(manifest.trim_start_matches('/')))
}

/// A report of `objects` of `source`, made at `created`, in `parts` data
/// files, under `PREFIX/SOURCE/CONFIG/`.
pub fn report(
    source: &str,
    prefix: &str,
    config: &str,
    created: SystemTime,
    format: Format,
    objects: &[Object],
    parts: usize,
) -> Result<Report> {
    let base = format!("{prefix}/{source}/{config}");
    let millis = created.duration_since(UNIX_EPOCH)?.as_millis();
    let mut files = Vec::new();
    let mut listed = Vec::new();
    let per = objects.len().div_ceil(parts.max(1)).max(1);
    for (i, chunk) in objects.chunks(per).enumerate() {
        let (bytes, ext) = match format {
            Format::Csv => (csv_gz(source, chunk)?, "csv.gz"),
            Format::Parquet => (parquet(source, chunk)?, "parquet"),
        };
        let key = format!("{base}/data/part-{i:04}-{millis}.{ext}");
        let md5: [u8; 16] = md5::Md5::digest(&bytes).into();
        listed.push(serde_json::json!({
            "key": key,
            "size": bytes.len(),
            "MD5checksum": hex(&md5),
        }));
        files.push((key, bytes));
    }
    let (file_format, schema) = match format {
        Format::Csv => ("CSV", CSV_SCHEMA),
        Format::Parquet => ("Parquet", PARQUET_SCHEMA),
    };
    let manifest = serde_json::json!({
        "sourceBucket": source,
        "destinationBucket": format!("arn:aws:s3:::{prefix}"),
        "version": "2016-11-30",
        "creationTimestamp": millis.to_string(),
        "fileFormat": file_format,
        "fileSchema": schema,
        "files": listed,
    });
    let manifest_key = format!("{base}/{}/manifest.json", folder_time(created));
    files.push((manifest_key.clone(), serde_json::to_vec_pretty(&manifest)?));
    Ok(Report { files, manifest_key })
}

/// The columns S3 writes when Size, LastModifiedDate, ETag and
/// StorageClass are chosen.
pub const CSV_SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass";

/// The same, as S3 writes a Parquet report's schema.
pub const PARQUET_SCHEMA: &str = "message s3.inventory {  required binary bucket (STRING);  \
     required binary key (STRING);  optional int64 size;  optional int64 last_modified_date \
     (TIMESTAMP(MILLIS,true));  optional binary e_tag (STRING);  optional binary storage_class (STRING);}";

/// `2026-12-02T05-06Z`, the folder of a delivery.
fn folder_time(t: SystemTime) -> String {
    let s = reg_core::time::Time(t).to_string();
    // 2026-12-02T05:06:49Z
    format!("{}-{}Z", &s[..13], &s[14..16])
}

/// `2026-12-02T05:06:49.123Z`, as S3 writes LastModifiedDate.
pub fn iso_millis(t: SystemTime) -> String {
    let s = reg_core::time::Time(t).to_string();
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    format!("{}.{ms:03}Z", &s[..s.len() - 1])
}

/// A key URL-encoded as S3 writes it in a CSV report (as a form is: `+`
/// for a space, `%XX` for every byte but letters, digits and `-_.*`).
pub fn url_encode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

fn csv_gz(source: &str, objects: &[Object]) -> Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for o in objects {
        let row = [
            quoted(source),
            quoted(&url_encode(&o.key)),
            quoted(&o.size.to_string()),
            quoted(&iso_millis(o.last_modified)),
            quoted(o.etag.as_deref().unwrap_or("")),
            quoted("STANDARD"),
        ];
        writeln!(gz, "{}", row.join(","))?;
    }
    Ok(gz.finish()?)
}

fn parquet(source: &str, objects: &[Object]) -> Result<Vec<u8>> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;

    let schema = Arc::new(parquet::schema::parser::parse_message_type(PARQUET_SCHEMA)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut w = SerializedFileWriter::new(Vec::new(), schema, props)?;
    let mut rg = w.next_row_group()?;
    let text = |f: &dyn Fn(&Object) -> Option<String>| -> (Vec<ByteArray>, Vec<i16>) {
        let mut values = Vec::new();
        let mut defs = Vec::new();
        for o in objects {
            match f(o) {
                Some(v) => {
                    values.push(ByteArray::from(v.as_str()));
                    defs.push(1);
                }
                None => defs.push(0),
            }
        }
        (values, defs)
    };
    let mut column = 0;
    while let Some(mut col) = rg.next_column()? {
        match column {
            0 | 1 | 4 | 5 => {
                let (values, defs) = match column {
                    0 => text(&|_| Some(source.to_string())),
                    1 => text(&|o| Some(o.key.clone())),
                    4 => text(&|o| o.etag.clone()),
                    _ => text(&|_| Some("STANDARD".to_string())),
                };
                // bucket and key are required: no definition levels.
                let defs = (column >= 4).then_some(defs);
                col.typed::<ByteArrayType>()
                    .write_batch(&values, defs.as_deref(), None)?;
            }
            2 | 3 => {
                let values: Vec<i64> = objects
                    .iter()
                    .map(|o| {
                        if column == 2 {
                            o.size as i64
                        } else {
                            o.last_modified
                                .duration_since(UNIX_EPOCH)
                                .unwrap_or(Duration::ZERO)
                                .as_millis() as i64
                        }
                    })
                    .collect();
                let defs = vec![1i16; values.len()];
                col.typed::<Int64Type>().write_batch(&values, Some(&defs), None)?;
            }
            _ => unreachable!("six columns"),
        }
        col.close()?;
        column += 1;
    }
    rg.close()?;
    Ok(w.into_inner()?)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_times_and_folders_as_s3_writes_them() {
        assert_eq!(url_encode("a/b c+é"), "a%2Fb+c%2B%C3%A9");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_633_600_250);
        assert_eq!(iso_millis(t), "2025-12-02T00:00:00.250Z");
        assert_eq!(folder_time(t), "2025-12-02T00-00Z");
    }
}
