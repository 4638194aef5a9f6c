//! S3 Inventory reports as the listing (issue 18): what the bucket held
//! when the report was made, read from its files instead of LISTing
//! `blobs/` and `repositories/` page by page.
//!
//! An S3 Inventory delivery is a `manifest.json` and data files beside it
//! (`…/SOURCE-BUCKET/CONFIG-ID/YYYY-MM-DDTHH-MMZ/manifest.json`,
//! `…/SOURCE-BUCKET/CONFIG-ID/data/*.csv.gz` or `*.parquet`). The manifest
//! names the source bucket, the time the scan began (`creationTimestamp`,
//! milliseconds since 1970), the format and its columns (`fileSchema`), and
//! each data file with its size and MD5. This module reads them and hands
//! every object, as (key, size, last-modified, ETag), to the one function
//! the backend fills its listing with ([`super::ObjectBackend::use_inventory`]).
//!
//! It fails closed: a report that could say less than the bucket held
//! (a missing column, a row it cannot read, a file whose size or MD5
//! differs from the manifest's) is an error naming the file and the row,
//! never a shorter listing. A shorter listing could drop a tag and make
//! its blobs look unreferenced.
//!
//! Formats: CSV (gzip; keys URL-encoded, as S3 writes them) and Parquet.
//! ORC is refused by name: there is no well-kept light ORC reader in Rust
//! (the one there is needs all of arrow); the inventory configuration can
//! say CSV or Parquet instead.
//!
//! Versioned buckets: a report of all versions carries `IsLatest` and
//! `IsDeleteMarker`; only the latest version of a key that is not a delete
//! marker is listed, as a LIST of the bucket lists it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use md5::Digest as _;
use parquet::record::Field as PqField;

use crate::error::{Error, Result};
use crate::time::Time;

/// What every listing gives of an object, and what a report's rows feed:
/// its full key, size, last-modified time and ETag (as the report writes
/// it, without quotes; `None` when the report has none for it).
pub type Sink<'a> = dyn FnMut(&str, u64, SystemTime, Option<&str>) + 'a;

/// Where a report's `manifest.json` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// `s3://BUCKET/KEY`: read through the registry's own S3 client
    /// (endpoint and credentials), from this bucket.
    S3 { bucket: String, key: String },
    /// A report downloaded by hand: the manifest, and its data files
    /// beside it or in `../data/` (the layout S3 delivers).
    Local(PathBuf),
}

impl Location {
    /// `s3://BUCKET/KEY` or a path.
    pub fn parse(at: &str) -> std::result::Result<Location, String> {
        if let Some(rest) = at.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                return Err(format!(
                    "--inventory {at}: expected s3://BUCKET/PATH/manifest.json (the manifest of an S3 Inventory delivery)"
                ));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        if at.contains("://") {
            return Err(format!(
                "--inventory {at}: S3 Inventory reports are read from s3://BUCKET/PATH/manifest.json or a local path"
            ));
        }
        Ok(Location::Local(PathBuf::from(at)))
    }

    /// How the manifest is named in messages.
    pub fn shown(&self) -> String {
        match self {
            Location::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            Location::Local(p) => p.display().to_string(),
        }
    }

    /// How the data file `key` (as the manifest names it) is named in
    /// messages and found: the same bucket for a report on S3; for one on
    /// disk, the file of that name beside the manifest or in `../data/`
    /// (`aws s3 cp --recursive` of the configuration's prefix), the first
    /// that exists.
    pub fn data_file(&self, key: &str) -> String {
        match self {
            Location::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
            Location::Local(manifest) => {
                let name = key.rsplit('/').next().unwrap_or(key);
                let dir = manifest.parent().unwrap_or(Path::new("."));
                let beside = dir.join(name);
                let delivered = dir.join("../data").join(name);
                if !beside.exists() && delivered.exists() {
                    delivered.display().to_string()
                } else {
                    beside.display().to_string()
                }
            }
        }
    }
}

/// The format of a report's data files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Gzipped CSV without a header; keys URL-encoded.
    Csv,
    Parquet,
}

/// One data file as the manifest names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFile {
    pub key: String,
    pub size: Option<u64>,
    pub md5: Option<[u8; 16]>,
}

/// A report's `manifest.json`, read and checked.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Where it was read, for messages.
    pub shown: String,
    pub source_bucket: String,
    /// When the scan that made the report began.
    pub created: SystemTime,
    pub format: Format,
    /// The columns, in order, by their names in the format (`Key`, or
    /// `key` in Parquet).
    columns: Vec<String>,
    pub files: Vec<DataFile>,
}

/// The fields this tool needs, by their CSV and Parquet names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Bucket,
    Key,
    IsLatest,
    IsDeleteMarker,
    Size,
    LastModifiedDate,
    ETag,
}

impl Field {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Field::Bucket => ("Bucket", "bucket"),
            Field::Key => ("Key", "key"),
            Field::IsLatest => ("IsLatest", "is_latest"),
            Field::IsDeleteMarker => ("IsDeleteMarker", "is_delete_marker"),
            Field::Size => ("Size", "size"),
            Field::LastModifiedDate => ("LastModifiedDate", "last_modified_date"),
            Field::ETag => ("ETag", "e_tag"),
        }
    }

    fn name(self, format: Format) -> &'static str {
        match format {
            Format::Csv => self.names().0,
            Format::Parquet => self.names().1,
        }
    }
}

/// The fields every report must carry: without them an object's age, size
/// or content could not be told.
const REQUIRED: [Field; 4] = [Field::Key, Field::Size, Field::LastModifiedDate, Field::ETag];

/// Where each field is in a row (its column's index).
#[derive(Clone, Copy, Debug)]
struct Columns {
    bucket: Option<usize>,
    key: usize,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
    size: usize,
    mtime: usize,
    etag: usize,
}

/// The `manifest.json` fields read here (the others are ignored).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    source_bucket: String,
    creation_timestamp: serde_json::Value,
    file_format: String,
    file_schema: String,
    files: Vec<RawFile>,
}

#[derive(serde::Deserialize)]
struct RawFile {
    key: String,
    size: Option<u64>,
    #[serde(rename = "MD5checksum")]
    md5: Option<String>,
}

/// Parses a `manifest.json` read from `shown`.
pub fn parse_manifest(bytes: &[u8], shown: &str) -> Result<Manifest> {
    let bad = |why: String| Error::other(shown, format!("not an S3 Inventory manifest: {why}"));
    let raw: RawManifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let millis: u64 = match &raw.creation_timestamp {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
    .ok_or_else(|| {
        bad(format!(
            "creationTimestamp {} is not milliseconds since 1970",
            raw.creation_timestamp
        ))
    })?;
    let format =
        match raw.file_format.to_ascii_lowercase().as_str() {
            "csv" => Format::Csv,
            "parquet" => Format::Parquet,
            "orc" => return Err(Error::other(
                shown,
                "fileFormat ORC: ORC reports cannot be read here (Rust has no well-kept light ORC reader); \
                 set the inventory configuration's output format to CSV or Parquet, and use the next \
                 report, or run without --inventory",
            )),
            other => return Err(bad(format!("unknown fileFormat {other:?} (CSV or Parquet)"))),
        };
    let columns = match format {
        Format::Csv => raw.file_schema.split(',').map(|c| c.trim().to_string()).collect(),
        Format::Parquet => parquet_columns(&raw.file_schema).map_err(bad)?,
    };
    if raw.files.is_empty() {
        return Err(bad("it names no data file".into()));
    }
    let mut files = Vec::with_capacity(raw.files.len());
    for f in raw.files {
        let md5 = match f.md5 {
            None => None,
            Some(hex) => Some(
                super::md5_from_hex(&hex)
                    .ok_or_else(|| bad(format!("{}: MD5checksum {hex:?} is not 32 hex digits", f.key)))?,
            ),
        };
        files.push(DataFile {
            key: f.key,
            size: f.size,
            md5,
        });
    }
    let m = Manifest {
        shown: shown.to_string(),
        source_bucket: raw.source_bucket,
        created: SystemTime::UNIX_EPOCH + Duration::from_millis(millis),
        format,
        columns,
        files,
    };
    m.columns()?;
    Ok(m)
}

/// The column names of a Parquet `fileSchema`
/// (`message s3.inventory { required binary key (UTF8); optional int64 size; … }`).
fn parquet_columns(schema: &str) -> std::result::Result<Vec<String>, String> {
    let body = schema
        .split_once('{')
        .and_then(|(_, rest)| rest.rsplit_once('}'))
        .map(|(body, _)| body)
        .ok_or_else(|| format!("fileSchema {schema:?} is not a Parquet message type"))?;
    body.split(';')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| {
            // REPETITION TYPE NAME [(ANNOTATION)]
            f.split_whitespace()
                .nth(2)
                .map(|n| n.trim_end_matches(';').to_string())
                .ok_or_else(|| format!("fileSchema field {f:?} has no name"))
        })
        .collect()
}

impl Manifest {
    /// Where each field this tool reads is; an error naming the manifest
    /// and the missing columns if a required one is not there.
    fn columns(&self) -> Result<Columns> {
        let at = |f: Field| self.columns.iter().position(|c| c == f.name(self.format));
        let missing: Vec<&str> = REQUIRED
            .iter()
            .filter(|f| at(**f).is_none())
            .map(|f| f.name(self.format))
            .collect();
        if !missing.is_empty() {
            return Err(Error::other(
                &self.shown,
                format!(
                    "the report has no {} column (its fileSchema: {}): configure the inventory with the \
                     fields Size, LastModifiedDate and ETag",
                    missing.join(", "),
                    self.columns.join(", ")
                ),
            ));
        }
        let need = |f: Field| at(f).expect("checked above");
        Ok(Columns {
            bucket: at(Field::Bucket),
            key: need(Field::Key),
            is_latest: at(Field::IsLatest),
            is_delete_marker: at(Field::IsDeleteMarker),
            size: need(Field::Size),
            mtime: need(Field::LastModifiedDate),
            etag: need(Field::ETag),
        })
    }

    /// Refuses a report made longer than `max_age` before `now`: objects
    /// written since it was made are not in it, and only a report younger
    /// than the grace period (`--min-age`) leaves out nothing but what
    /// is too young to collect anyway.
    pub fn check_age(&self, now: SystemTime, max_age: Duration) -> Result<()> {
        let age = now.duration_since(self.created).unwrap_or_default();
        if age <= max_age {
            return Ok(());
        }
        Err(Error::other(
            &self.shown,
            format!(
                "the report was made at {} and it is now {}: {} old, older than --min-age {} allows \
                 (what was written since is not in it, and must be younger than the grace period); \
                 use a newer report, or a longer --min-age",
                Time(self.created),
                Time(now),
                crate::time::format_duration(Duration::from_secs(age.as_secs())),
                crate::time::format_duration(max_age),
            ),
        ))
    }

    /// Checks a data file's bytes against the manifest's size and MD5.
    pub fn check_file(&self, file: &DataFile, shown: &str, bytes: &[u8]) -> Result<()> {
        if let Some(size) = file.size {
            if size != bytes.len() as u64 {
                return Err(Error::other(
                    shown,
                    format!(
                        "{} bytes, but the manifest {} says {size}: an incomplete or replaced report file",
                        bytes.len(),
                        self.shown
                    ),
                ));
            }
        }
        if let Some(want) = file.md5 {
            let got: [u8; 16] = md5::Md5::digest(bytes).into();
            if got != want {
                return Err(Error::other(
                    shown,
                    format!(
                        "its MD5 is {}, but the manifest {} says {}: a damaged or replaced report file",
                        hex(&got),
                        self.shown,
                        hex(&want)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads every row of one data file (its bytes, checked first with
    /// [`Manifest::check_file`]) into `sink`; how many objects it gave.
    /// Rows of other versions than the latest, and delete markers, are
    /// skipped. Any row that cannot be read is an error naming `shown` and
    /// the row (from 1).
    pub fn read_file(&self, file: &DataFile, shown: &str, bytes: Bytes, sink: &mut Sink) -> Result<u64> {
        self.check_file(file, shown, &bytes)?;
        let cols = self.columns()?;
        match self.format {
            Format::Csv => self.read_csv(cols, shown, &bytes, sink),
            Format::Parquet => self.read_parquet(cols, shown, bytes, sink),
        }
    }

    fn read_csv(&self, cols: Columns, shown: &str, gz: &[u8], sink: &mut Sink) -> Result<u64> {
        let text = flate2::read::MultiGzDecoder::new(gz);
        self.read_csv_text(cols, shown, text, sink)
    }

    fn read_csv_text(&self, cols: Columns, shown: &str, text: impl Read, sink: &mut Sink) -> Result<u64> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text);
        let mut record = csv::ByteRecord::new();
        let (mut row, mut n) = (0u64, 0u64);
        loop {
            match rdr.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    return Err(row_err(shown, row + 1, format!("not CSV: {e}")));
                }
            }
            row += 1;
            let bad = |why: String| row_err(shown, row, why);
            if record.len() != self.columns.len() {
                return Err(bad(format!(
                    "{} columns, but the fileSchema names {}",
                    record.len(),
                    self.columns.len()
                )));
            }
            let text = |i: usize, what: &str| {
                std::str::from_utf8(&record[i]).map_err(|_| bad(format!("{what} is not UTF-8")))
            };
            if let Some(i) = cols.bucket {
                let b = text(i, "Bucket")?;
                if b != self.source_bucket {
                    return Err(bad(format!(
                        "an object of bucket {b:?}, in a report of {}",
                        self.source_bucket
                    )));
                }
            }
            let flag = |i: Option<usize>, what: &str| -> Result<Option<bool>> {
                let Some(i) = i else { return Ok(None) };
                match text(i, what)? {
                    "" => Ok(None),
                    "true" => Ok(Some(true)),
                    "false" => Ok(Some(false)),
                    v => Err(bad(format!("{what} {v:?} is neither true nor false"))),
                }
            };
            if flag(cols.is_latest, "IsLatest")? == Some(false)
                || flag(cols.is_delete_marker, "IsDeleteMarker")? == Some(true)
            {
                continue;
            }
            let raw_key = text(cols.key, "Key")?;
            if raw_key.is_empty() {
                return Err(bad("no Key".into()));
            }
            let key = url_decode(raw_key)
                .ok_or_else(|| bad(format!("Key {raw_key:?} is not URL-encoded UTF-8")))?;
            let size = text(cols.size, "Size")?;
            let size: u64 = size
                .parse()
                .map_err(|_| bad(format!("Size {size:?} of {key} is not a number of bytes")))?;
            let mtime = text(cols.mtime, "LastModifiedDate")?;
            let mtime = Time::parse(mtime)
                .map_err(|e| bad(format!("LastModifiedDate of {key}: {e}")))?
                .0;
            let etag = text(cols.etag, "ETag")?.trim_matches('"');
            sink(&key, size, mtime, Some(etag).filter(|e| !e.is_empty()));
            n += 1;
        }
        Ok(n)
    }

    fn read_parquet(&self, cols: Columns, shown: &str, bytes: Bytes, sink: &mut Sink) -> Result<u64> {
        use parquet::file::reader::{FileReader, SerializedFileReader};

        let reader = SerializedFileReader::new(bytes).map_err(|e| not_parquet(shown, e))?;
        let wanted = parquet_wanted(cols);
        let schema = reader.metadata().file_metadata().schema();
        let projection = self.parquet_projection(&wanted, shown, schema)?;
        let rows = reader
            .get_row_iter(Some(projection))
            .map_err(|e| not_parquet(shown, e))?;
        let mut n = 0u64;
        for (i, row) in rows.enumerate() {
            let bad = |why: String| row_err(shown, i as u64 + 1, why);
            let row = row.map_err(|e| bad(format!("cannot be read: {e}")))?;
            if let Some(o) = self.parquet_object(&wanted, &row, &bad)? {
                sink(&o.key, o.size, o.mtime, o.etag.as_deref());
                n += 1;
            }
        }
        Ok(n)
    }

    /// The schema of only the columns read here, by name; each must be in
    /// the file.
    fn parquet_projection(
        &self,
        wanted: &Wanted,
        shown: &str,
        schema: &parquet::schema::types::Type,
    ) -> Result<parquet::schema::types::Type> {
        let mut fields = Vec::new();
        for (f, at) in wanted {
            if at.is_none() {
                continue;
            }
            let name = f.name(Format::Parquet);
            let found = schema
                .get_fields()
                .iter()
                .find(|t| t.name() == name)
                .ok_or_else(|| {
                    Error::other(
                        shown,
                        format!(
                            "no column {name} in this file, though the manifest {} names it",
                            self.shown
                        ),
                    )
                })?;
            fields.push(found.clone());
        }
        parquet::schema::types::Type::group_type_builder(schema.name())
            .with_fields(fields)
            .build()
            .map_err(|e| not_parquet(shown, e))
    }

    /// The object of one Parquet row, or `None` for a row skipped (another
    /// version than the latest, or a delete marker); `bad` words an error
    /// at this row.
    fn parquet_object(
        &self,
        wanted: &Wanted,
        row: &parquet::record::Row,
        bad: &dyn Fn(String) -> Error,
    ) -> Result<Option<ParquetObject>> {
        let mut got: [Option<&PqField>; 7] = [None; 7];
        for (name, value) in row.get_column_iter() {
            if let Some(k) = wanted.iter().position(|(f, _)| f.name(Format::Parquet) == name) {
                got[k] = Some(value);
            }
        }
        let [bucket, key, is_latest, is_delete_marker, size, mtime, etag] = got;
        if let Some(b) = pq_text(bucket, "bucket", bad)? {
            if b != self.source_bucket {
                return Err(bad(format!(
                    "an object of bucket {b:?}, in a report of {}",
                    self.source_bucket
                )));
            }
        }
        if pq_flag(is_latest, "is_latest", bad)? == Some(false)
            || pq_flag(is_delete_marker, "is_delete_marker", bad)? == Some(true)
        {
            return Ok(None);
        }
        let key = pq_text(key, "key", bad)?
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("no key".into()))?;
        let size = pq_size(size, &key, bad)?;
        let mtime = pq_mtime(mtime, &key, bad)?;
        let etag = pq_text(etag, "e_tag", bad)?
            .map(|e| e.trim_matches('"').to_string())
            .filter(|e| !e.is_empty());
        Ok(Some(ParquetObject {
            key,
            size,
            mtime,
            etag,
        }))
    }
}

/// The fields read from a Parquet file, each with its column in the
/// manifest's schema (`None`: not in the report); a row's values are
/// matched to them by name, in this order.
type Wanted = [(Field, Option<usize>); 7];

fn parquet_wanted(cols: Columns) -> Wanted {
    [
        (Field::Bucket, cols.bucket),
        (Field::Key, Some(cols.key)),
        (Field::IsLatest, cols.is_latest),
        (Field::IsDeleteMarker, cols.is_delete_marker),
        (Field::Size, Some(cols.size)),
        (Field::LastModifiedDate, Some(cols.mtime)),
        (Field::ETag, Some(cols.etag)),
    ]
}

/// One object read from a Parquet row, its ETag without quotes.
struct ParquetObject {
    key: String,
    size: u64,
    mtime: SystemTime,
    etag: Option<String>,
}

/// A Parquet file that cannot be read as one.
fn not_parquet(shown: &str, e: parquet::errors::ParquetError) -> Error {
    Error::other(shown, format!("not a Parquet file: {e}"))
}

/// A string value (`None`: null or absent).
fn pq_text(v: Option<&PqField>, what: &str, bad: &dyn Fn(String) -> Error) -> Result<Option<String>> {
    match v {
        None | Some(PqField::Null) => Ok(None),
        Some(PqField::Str(s)) => Ok(Some(s.clone())),
        Some(PqField::Bytes(b)) => std::str::from_utf8(b.data())
            .map(|s| Some(s.to_string()))
            .map_err(|_| bad(format!("{what} is not UTF-8"))),
        Some(other) => Err(bad(format!("{what} is not a string: {other}"))),
    }
}

/// A boolean value (`None`: null or absent).
fn pq_flag(v: Option<&PqField>, what: &str, bad: &dyn Fn(String) -> Error) -> Result<Option<bool>> {
    match v {
        None | Some(PqField::Null) => Ok(None),
        Some(PqField::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(bad(format!("{what} is not a boolean: {other}"))),
    }
}

/// The size of `key`, a non-negative integer.
fn pq_size(v: Option<&PqField>, key: &str, bad: &dyn Fn(String) -> Error) -> Result<u64> {
    match v {
        Some(PqField::Long(s)) if *s >= 0 => Ok(*s as u64),
        Some(PqField::Int(s)) if *s >= 0 => Ok(*s as u64),
        other => Err(bad(format!(
            "size of {key} is not a number of bytes: {}",
            other.map_or("none".to_string(), |v| v.to_string())
        ))),
    }
}

/// The last-modified time of `key`, a timestamp in milli- or microseconds.
fn pq_mtime(v: Option<&PqField>, key: &str, bad: &dyn Fn(String) -> Error) -> Result<SystemTime> {
    match v {
        Some(PqField::TimestampMillis(ms)) => Ok(from_unix(*ms, 1_000)),
        Some(PqField::TimestampMicros(us)) => Ok(from_unix(*us, 1_000_000)),
        other => Err(bad(format!(
            "last_modified_date of {key} is not a timestamp: {}",
            other.map_or("none".to_string(), |v| v.to_string())
        ))),
    }
}

/// An error at row `row` (from 1) of the data file `shown`.
fn row_err(shown: &str, row: u64, why: String) -> Error {
    Error::other(shown, format!("row {row}: {why}"))
}

/// The time `n` units of `per_sec` after 1970 (before it for negatives).
fn from_unix(n: i64, per_sec: i64) -> SystemTime {
    let secs = n.div_euclid(per_sec);
    let frac = n.rem_euclid(per_sec) as u64 * (1_000_000_000 / per_sec as u64);
    crate::time::from_unix_secs(secs, frac as u32)
}

/// A CSV report's key: URL-encoded as a form is (`%XX` for a byte, `+`
/// for a space); `None` if it is not UTF-8 once decoded.
fn url_decode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV_SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass";

    fn manifest(format: &str, schema: &str, files: &str) -> String {
        format!(
            r#"{{"sourceBucket":"registry","destinationBucket":"arn:aws:s3:::inv","version":"2016-11-30",
               "creationTimestamp":"1764633600000","fileFormat":"{format}","fileSchema":"{schema}","files":[{files}]}}"#
        )
    }

    fn csv_manifest() -> Manifest {
        let text = manifest("CSV", CSV_SCHEMA, r#"{"key":"inv/data/a.csv.gz","size":1}"#);
        parse_manifest(text.as_bytes(), "s3://inv/manifest.json").unwrap()
    }

    type Rows = Vec<(String, u64, SystemTime, Option<String>)>;

    fn read_csv(m: &Manifest, text: &str) -> Result<Rows> {
        let mut rows = Vec::new();
        let cols = m.columns()?;
        m.read_csv_text(
            cols,
            "s3://inv/data/a.csv.gz",
            text.as_bytes(),
            &mut |k, s, t, e| rows.push((k.to_string(), s, t, e.map(str::to_string))),
        )?;
        Ok(rows)
    }

    #[test]
    fn manifest_fields() {
        let m = csv_manifest();
        assert_eq!(m.source_bucket, "registry");
        assert_eq!(m.format, Format::Csv);
        assert_eq!(Time(m.created).to_string(), "2025-12-02T00:00:00Z");
        assert_eq!(m.files[0].key, "inv/data/a.csv.gz");
        // A number works as well as a string.
        let text =
            manifest("CSV", CSV_SCHEMA, r#"{"key":"k"}"#).replace("\"1764633600000\"", "1764633600000");
        assert_eq!(parse_manifest(text.as_bytes(), "m").unwrap().created, m.created);
        let parquet = manifest(
            "Parquet",
            "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional int64 size; \
             optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); optional binary e_tag (STRING);}",
            r#"{"key":"k","size":3,"MD5checksum":"d41d8cd98f00b204e9800998ecf8427e"}"#,
        );
        let m = parse_manifest(parquet.as_bytes(), "m").unwrap();
        assert_eq!(
            m.columns,
            ["bucket", "key", "size", "last_modified_date", "e_tag"]
        );
        assert_eq!(
            m.files[0].md5,
            super::super::md5_from_hex("d41d8cd98f00b204e9800998ecf8427e")
        );
    }

    #[test]
    fn a_missing_column_is_an_error_naming_it() {
        for (format, schema, missing) in [
            ("CSV", "Bucket, Key, Size, LastModifiedDate", "no ETag column"),
            ("CSV", "Bucket, Key, ETag", "no Size, LastModifiedDate column"),
            (
                "Parquet",
                "message s3.inventory { required binary key (UTF8); optional int64 size; optional binary e_tag (UTF8);}",
                "no last_modified_date column",
            ),
        ] {
            let text = manifest(format, schema, r#"{"key":"k"}"#);
            let e = parse_manifest(text.as_bytes(), "s3://inv/manifest.json").unwrap_err().to_string();
            assert!(e.starts_with("s3://inv/manifest.json: "), "{e}");
            assert!(e.contains(missing), "{e}");
        }
    }

    #[test]
    fn orc_is_refused_by_name_with_what_to_do() {
        let text = manifest("ORC", "struct<bucket:string,key:string>", r#"{"key":"k"}"#);
        let e = parse_manifest(text.as_bytes(), "s3://inv/manifest.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fileFormat ORC"), "{e}");
        assert!(e.contains("CSV or Parquet"), "{e}");
        let text = manifest("XML", "a", r#"{"key":"k"}"#);
        assert!(parse_manifest(text.as_bytes(), "m").is_err());
        assert!(parse_manifest(b"{}", "m").is_err());
        let no_files = manifest("CSV", CSV_SCHEMA, "");
        assert!(parse_manifest(no_files.as_bytes(), "m")
            .unwrap_err()
            .to_string()
            .contains("no data file"));
    }

    #[test]
    fn csv_rows_url_encoded_keys_and_versions() {
        let m = csv_manifest();
        let rows = read_csv(
            &m,
            "\"registry\",\"v2/repositories/a/_manifests/tags/v%2B1/current/link\",\"71\",\"2025-12-01T10:00:00.250Z\",\"d41d8cd98f00b204e9800998ecf8427e\",\"STANDARD\"\n\
             \"registry\",\"odd+key%C3%A9\",\"0\",\"2025-12-01T10:00:00.000Z\",\"\",\"STANDARD\"\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, "v2/repositories/a/_manifests/tags/v+1/current/link");
        assert_eq!(rows[0].1, 71);
        assert_eq!(
            rows[0].2,
            Time::parse("2025-12-01T10:00:00Z").unwrap().0 + Duration::from_millis(250)
        );
        assert_eq!(rows[0].3.as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        assert_eq!(rows[1].0, "odd keyé");
        assert_eq!(rows[1].3, None);

        // All versions: only the latest, never a delete marker.
        let text = manifest(
            "CSV",
            "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag",
            r#"{"key":"k"}"#,
        );
        let m = parse_manifest(text.as_bytes(), "m").unwrap();
        let rows = read_csv(
            &m,
            "registry,a,v1,false,false,1,2025-12-01T10:00:00.000Z,x\n\
             registry,a,v2,true,false,2,2025-12-01T11:00:00.000Z,y\n\
             registry,b,v3,true,true,,2025-12-01T11:00:00.000Z,\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].0.as_str(), rows[0].1), ("a", 2));
    }

    #[test]
    fn a_bad_row_is_an_error_naming_the_file_and_row() {
        let m = csv_manifest();
        let good = "registry,k,1,2025-12-01T10:00:00.000Z,e,STANDARD\n";
        for (bad, why) in [
            (
                "registry,k,x,2025-12-01T10:00:00.000Z,e,STANDARD\n",
                "Size \"x\" of k",
            ),
            ("registry,k,,2025-12-01T10:00:00.000Z,e,STANDARD\n", "Size \"\""),
            ("registry,k,1,yesterday,e,STANDARD\n", "LastModifiedDate of k"),
            (
                "registry,k,1,2025-12-01T10:00:00.000Z,e\n",
                "5 columns, but the fileSchema names 6",
            ),
            ("registry,,1,2025-12-01T10:00:00.000Z,e,STANDARD\n", "no Key"),
            (
                "registry,%FF,1,2025-12-01T10:00:00.000Z,e,STANDARD\n",
                "not URL-encoded UTF-8",
            ),
            (
                "other,k,1,2025-12-01T10:00:00.000Z,e,STANDARD\n",
                "bucket \"other\"",
            ),
        ] {
            let e = read_csv(&m, &format!("{good}{good}{bad}{good}"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("s3://inv/data/a.csv.gz: row 3: "), "{e}");
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn a_file_that_fails_its_checksum_or_size_is_an_error() {
        let m = csv_manifest();
        let bytes = b"some bytes";
        let sum: [u8; 16] = md5::Md5::digest(bytes).into();
        let file = |size, md5| DataFile {
            key: "k".into(),
            size,
            md5,
        };
        m.check_file(&file(Some(10), Some(sum)), "f", bytes).unwrap();
        m.check_file(&file(None, None), "f", bytes).unwrap();
        let e = m
            .check_file(&file(Some(11), Some(sum)), "f", bytes)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("f: 10 bytes, but the manifest s3://inv/manifest.json says 11"),
            "{e}"
        );
        let e = m
            .check_file(&file(None, Some([0; 16])), "f", bytes)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("its MD5 is {}", hex(&sum))), "{e}");
        // Read through read_file: the check comes first.
        let e = m
            .read_file(
                &file(None, Some([0; 16])),
                "f",
                Bytes::from_static(bytes),
                &mut |_, _, _, _| {},
            )
            .unwrap_err();
        assert!(e.to_string().contains("a damaged or replaced report file"), "{e}");
    }

    #[test]
    fn a_stale_report_is_refused_naming_both_times() {
        let m = csv_manifest();
        let hour = Duration::from_secs(3600);
        m.check_age(m.created + hour, hour).unwrap();
        m.check_age(m.created - hour, hour).unwrap();
        let e = m
            .check_age(m.created + hour + Duration::from_secs(60), hour)
            .unwrap_err()
            .to_string();
        assert!(e.contains("made at 2025-12-02T00:00:00Z"), "{e}");
        assert!(e.contains("it is now 2025-12-02T01:01:00Z"), "{e}");
        assert!(e.contains("1h 1m old, older than --min-age 1h allows"), "{e}");
    }

    #[test]
    fn gzip_csv_is_read_whole() {
        use std::io::Write;
        let m = csv_manifest();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(
            b"registry,a,1,2025-12-01T10:00:00.000Z,e,S\nregistry,b,2,2025-12-01T10:00:00.000Z,e,S\n",
        )
        .unwrap();
        let bytes = gz.finish().unwrap();
        let file = DataFile {
            key: "k".into(),
            size: Some(bytes.len() as u64),
            md5: Some(md5::Md5::digest(&bytes).into()),
        };
        let mut keys = Vec::new();
        let n = m
            .read_file(&file, "f", Bytes::from(bytes), &mut |k, _, _, _| {
                keys.push(k.to_string())
            })
            .unwrap();
        assert_eq!((n, keys), (2, vec!["a".to_string(), "b".to_string()]));
    }

    /// A Parquet file of (key, size, last_modified_date in ms, e_tag) rows,
    /// `None` for a null; with `etag: false`, without the e_tag column.
    fn parquet_file(rows: &[(&str, Option<i64>, i64, Option<&str>)], etag: bool) -> Bytes {
        use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        let schema = format!(
            "message s3.inventory {{ required binary key (STRING); optional int64 size; \
             optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); {} }}",
            if etag {
                "optional binary e_tag (STRING);"
            } else {
                ""
            }
        );
        let schema = std::sync::Arc::new(parquet::schema::parser::parse_message_type(&schema).unwrap());
        let props = std::sync::Arc::new(
            WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build(),
        );
        let mut w = SerializedFileWriter::new(Vec::new(), schema, props).unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut i = 0;
        while let Some(mut col) = rg.next_column().unwrap() {
            match i {
                0 => {
                    let v: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.0)).collect();
                    col.typed::<ByteArrayType>().write_batch(&v, None, None).unwrap();
                }
                1 | 2 => {
                    let all: Vec<Option<i64>> = rows
                        .iter()
                        .map(|r| if i == 1 { r.1 } else { Some(r.2) })
                        .collect();
                    let v: Vec<i64> = all.iter().flatten().copied().collect();
                    let defs: Vec<i16> = all.iter().map(|x| i16::from(x.is_some())).collect();
                    col.typed::<Int64Type>()
                        .write_batch(&v, Some(&defs), None)
                        .unwrap();
                }
                _ => {
                    let v: Vec<ByteArray> = rows.iter().filter_map(|r| r.3).map(ByteArray::from).collect();
                    let defs: Vec<i16> = rows.iter().map(|r| i16::from(r.3.is_some())).collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&v, Some(&defs), None)
                        .unwrap();
                }
            }
            col.close().unwrap();
            i += 1;
        }
        rg.close().unwrap();
        Bytes::from(w.into_inner().unwrap())
    }

    fn parquet_manifest() -> Manifest {
        let text = manifest(
            "Parquet",
            "message s3.inventory { required binary key (STRING); optional int64 size; \
             optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); optional binary e_tag (STRING);}",
            r#"{"key":"inv/data/a.parquet"}"#,
        );
        parse_manifest(text.as_bytes(), "s3://inv/manifest.json").unwrap()
    }

    fn read_parquet(m: &Manifest, bytes: Bytes) -> Result<Rows> {
        let file = DataFile {
            key: "inv/data/a.parquet".into(),
            size: None,
            md5: None,
        };
        let mut rows = Vec::new();
        m.read_file(&file, "s3://inv/data/a.parquet", bytes, &mut |k, s, t, e| {
            rows.push((k.to_string(), s, t, e.map(str::to_string)))
        })?;
        Ok(rows)
    }

    #[test]
    fn parquet_rows_keys_as_they_are() {
        let m = parquet_manifest();
        let rows = read_parquet(
            &m,
            parquet_file(
                &[
                    (
                        "v2/blobs/a+b%2F",
                        Some(5),
                        1_764_633_600_250,
                        Some("d41d8cd98f00b204e9800998ecf8427e"),
                    ),
                    ("v2/x", Some(0), 0, None),
                ],
                true,
            ),
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        // Parquet keys are not URL-encoded: taken as they are.
        assert_eq!(rows[0].0, "v2/blobs/a+b%2F");
        assert_eq!(rows[0].1, 5);
        assert_eq!(rows[0].2, m.created + Duration::from_millis(250));
        assert_eq!(rows[0].3.as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        assert_eq!((rows[1].2, rows[1].3.as_deref()), (SystemTime::UNIX_EPOCH, None));
    }

    #[test]
    fn a_bad_parquet_row_or_a_missing_column_is_an_error_naming_the_file() {
        let m = parquet_manifest();
        let rows = [
            ("a", Some(1), 0, Some("e")),
            ("b", None, 0, Some("e")),
            ("c", Some(1), 0, None),
        ];
        let e = read_parquet(&m, parquet_file(&rows, true))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "s3://inv/data/a.parquet: row 2: size of b is not a number of bytes: null"
        );
        let e = read_parquet(&m, parquet_file(&rows, false))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s3://inv/data/a.parquet: no column e_tag in this file, though the manifest"),
            "{e}"
        );
        let e = read_parquet(&m, Bytes::from_static(b"not parquet"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s3://inv/data/a.parquet: not a Parquet file"),
            "{e}"
        );
    }

    #[test]
    fn locations() {
        assert_eq!(
            Location::parse("s3://inv/a/b/manifest.json").unwrap(),
            Location::S3 {
                bucket: "inv".into(),
                key: "a/b/manifest.json".into()
            }
        );
        assert!(Location::parse("s3://inv").is_err());
        assert!(Location::parse("s3://inv/dir/").is_err());
        assert!(Location::parse("azure://a/b").is_err());
        assert_eq!(
            Location::parse("/tmp/r/manifest.json").unwrap(),
            Location::Local("/tmp/r/manifest.json".into())
        );
        let s3 = Location::parse("s3://inv/p/manifest.json").unwrap();
        assert_eq!(s3.data_file("p/data/x.csv.gz"), "s3://inv/p/data/x.csv.gz");
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("2025-12-02T00-00Z/manifest.json");
        std::fs::create_dir_all(m.parent().unwrap()).unwrap();
        let local = Location::Local(m.clone());
        let beside = m.parent().unwrap().join("x.csv.gz");
        assert_eq!(local.data_file("a/data/x.csv.gz"), beside.display().to_string());
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/x.csv.gz"), b"").unwrap();
        assert!(local
            .data_file("a/data/x.csv.gz")
            .ends_with("2025-12-02T00-00Z/../data/x.csv.gz"));
    }
}
