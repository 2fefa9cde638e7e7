//! What an ingestion reads and how: its `options` (S3 connection, CSV dialect, file filter, batch
//! bounds) and the directories local sources may read from. Both the API (refusing a bad
//! definition before it is stored) and the worker (reading files) use these, so a definition the
//! API accepted is one the worker understands.

use serde_json::{Map, Value};

use super::definition::{FormatType, SourceType};

/// Files one run takes at most, unless `options.max_files_per_run` says otherwise.
pub const DEFAULT_MAX_FILES_PER_RUN: u64 = 1_000;
/// Bytes one run reads at most (10 GiB), unless `options.max_bytes_per_run` says otherwise. A
/// single file larger than this is still loaded, alone.
pub const DEFAULT_MAX_BYTES_PER_RUN: u64 = 10 << 30;

/// The operator's caps on what one run reads (`AUTOLOADER_MAX_FILE_BYTES`,
/// `AUTOLOADER_MAX_BYTES_PER_RUN`, `AUTOLOADER_MAX_RECORD_BYTES`), whatever a tenant's options
/// say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file a run reads.
    pub max_file_bytes: u64,
    /// The ceiling of `options.max_bytes_per_run`.
    pub max_bytes_per_run: u64,
    /// Longest record a run reads: one JSON document (a line, or an element of a file that is one
    /// array) or one CSV line. A longer one fails the run; no more than about this much of it is
    /// held.
    pub max_record_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_file_bytes: 64 << 30,
            max_bytes_per_run: 100 << 30,
            max_record_bytes: 16 << 20,
        }
    }
}

impl Limits {
    /// A tenant's `max_bytes_per_run` within the operator's ceiling: refused above it when an
    /// ingestion is written.
    pub fn check(&self, options: &IngestOptions) -> Result<(), OptionProblem> {
        if options.max_bytes_per_run > self.max_bytes_per_run {
            return Err(OptionProblem {
                field: "options.max_bytes_per_run".into(),
                message: format!(
                    "max_bytes_per_run may be at most {} (AUTOLOADER_MAX_BYTES_PER_RUN)",
                    self.max_bytes_per_run
                ),
            });
        }
        Ok(())
    }
}

/// One problem with one option: the field is `options.<key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionProblem {
    pub field: String,
    pub message: String,
}

/// S3 connection settings; unset ones fall back to the worker's `AWS_*` environment. Its
/// `Debug` form hides the secret key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
    pub path_style: Option<bool>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "********"),
            )
            .field("allow_http", &self.allow_http)
            .field("path_style", &self.path_style)
            .finish()
    }
}

/// The CSV dialect: a header row naming the columns, a delimiter and a quote character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    pub header: bool,
    pub delimiter: u8,
    pub quote: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: b',',
            quote: b'"',
        }
    }
}

pub use super::glob::Glob;

/// An ingestion's `options`, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOptions {
    pub s3: S3Options,
    pub csv: CsvOptions,
    /// Only files whose path below the source prefix matches this glob are loaded.
    pub glob: Option<Glob>,
    pub max_files_per_run: u64,
    pub max_bytes_per_run: u64,
    /// What a file with columns the table lacks does to the table (`schema_evolution`).
    pub schema_evolution: SchemaEvolution,
    /// What a bad record or an unreadable file does to the run (`on_error`).
    pub on_error: OnError,
    /// Types for some columns instead of the inferred ones (`schema_hints`).
    pub schema_hints: Vec<SchemaHint>,
    /// Each row also gets `_source_file`, `_source_modified_at` and `_ingested_run_id`
    /// (`metadata_columns`).
    pub metadata_columns: bool,
    /// The table's maintenance settings (`maintenance`, `snapshot_retention`, ...).
    pub maintenance: MaintenanceOptions,
    /// How a table the loader creates is partitioned (`partition_by`); empty: unpartitioned.
    pub partition_by: Vec<PartitionField>,
    /// Hive-style directories (`dt=2025-01-01/`) between the prefix and a file's name become
    /// columns of its rows (`partition_columns_from_path`).
    pub partition_columns_from_path: bool,
    /// What a run lists (`discovery`).
    pub discovery: Discovery,
    /// How often an incremental ingestion lists its whole prefix (`full_listing_interval`).
    pub full_listing_interval: std::time::Duration,
}

pub use super::listing::Discovery;
pub use super::maintenance::{MaintenanceMode, MaintenanceOptions};

pub use super::hints::{HintType, SchemaHint};
pub use super::partitions::{PartitionField, Transform};

/// `schema_evolution`: what a file whose columns the table lacks does (Databricks Auto Loader's
/// `cloudFiles.schemaEvolutionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaEvolution {
    /// New columns are added to the table (nullable, appended, in the file's order) in the
    /// commit of the data; allowed widenings (int to long, float to double, a decimal's
    /// precision up) evolve a column. Anything else that does not fit follows `on_error`.
    #[default]
    AddNewColumns,
    /// The table's schema stays; values of unknown columns, and values that do not convert,
    /// go into the string column `_rescued_data` as one JSON object per row (with `_file_path`,
    /// the file's URL), and the row loads.
    Rescue,
    /// A file with a column the table lacks fails the run, naming the column.
    FailOnNewColumns,
    /// Unknown columns are dropped; values that do not convert follow `on_error`.
    None,
}

impl SchemaEvolution {
    pub const ALL: [SchemaEvolution; 4] = [
        SchemaEvolution::AddNewColumns,
        SchemaEvolution::Rescue,
        SchemaEvolution::FailOnNewColumns,
        SchemaEvolution::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SchemaEvolution::AddNewColumns => "add_new_columns",
            SchemaEvolution::Rescue => "rescue",
            SchemaEvolution::FailOnNewColumns => "fail_on_new_columns",
            SchemaEvolution::None => "none",
        }
    }
}

/// `on_error`: what a bad record (malformed, or a value that does not convert) or an unreadable
/// file does (Snowflake's `ON_ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// The run fails, naming the file, the record and the column; nothing is committed.
    #[default]
    Abort,
    /// The file is not loaded: it is recorded in the ledger as rejected with its error, the
    /// run loads the others, and the file waits until someone retries it.
    SkipFile,
    /// Bad records are dropped and counted; the rest of the file loads.
    SkipRecord,
}

impl OnError {
    pub const ALL: [OnError; 3] = [OnError::Abort, OnError::SkipFile, OnError::SkipRecord];

    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Abort => "abort",
            OnError::SkipFile => "skip_file",
            OnError::SkipRecord => "skip_record",
        }
    }
}

fn one_of<T: Copy>(all: &[T], name: fn(T) -> &'static str, v: &Value) -> Option<T> {
    let s = v.as_str()?;
    all.iter().copied().find(|x| name(*x) == s)
}

/// Every key `options` may hold, with what it means; anything else is refused.
pub const OPTION_KEYS: &[(&str, &str)] = &[
    (
        "s3_endpoint",
        "S3 endpoint URL, for S3-compatible servers (default: AWS)",
    ),
    (
        "s3_region",
        "S3 region (default: AWS_REGION, then us-east-1)",
    ),
    (
        "s3_access_key_id",
        "S3 access key id (default: AWS_ACCESS_KEY_ID)",
    ),
    (
        "s3_secret_access_key",
        "S3 secret key (default: AWS_SECRET_ACCESS_KEY); never shown",
    ),
    (
        "s3_allow_http",
        "allow a plain http:// endpoint (default false)",
    ),
    (
        "s3_path_style",
        "path-style requests instead of virtual-hosted (default true when s3_endpoint is set)",
    ),
    (
        "csv_header",
        "the first CSV line names the columns (default true)",
    ),
    ("csv_delimiter", "one-character CSV delimiter (default ',')"),
    ("csv_quote", "one-character CSV quote (default '\"')"),
    (
        "glob",
        "only load files whose path below the prefix matches, e.g. '**/*.json'",
    ),
    (
        "max_files_per_run",
        "files one run loads at most; the rest wait for the next run (default 1000)",
    ),
    (
        "max_bytes_per_run",
        "bytes one run reads at most (default 10 GiB)",
    ),
    (
        "schema_evolution",
        "a file with columns the table lacks: add_new_columns (default; also widens int to long, \
         float to double, a decimal's precision), rescue (unknown and unconvertible values go to \
         the string column _rescued_data), fail_on_new_columns, or none (unknown columns dropped)",
    ),
    (
        "on_error",
        "a bad record or unreadable file: abort (default; the run fails naming file, record and \
         column), skip_file (the file is rejected, the rest load), or skip_record (bad records \
         are dropped and counted)",
    ),
    (
        "schema_hints",
        "types for some columns instead of inferred ones, e.g. 'id bigint, ts timestamp, \
         amount decimal(12,2)' (types: boolean, int, bigint, float, double, decimal(p,s), \
         string, binary, date, timestamp, timestamp_ntz)",
    ),
    (
        "metadata_columns",
        "true: each row also gets _source_file, _source_modified_at and _ingested_run_id \
         (default false)",
    ),
    (
        "partition_by",
        "how a table the loader creates is partitioned: a list of Iceberg transforms of columns, \
         e.g. [\"day(ts)\", \"region\", \"bucket(16, id)\"] (identity(c) or c, year, month, day, \
         hour, bucket(n, c), truncate(w, c)); an existing table keeps its own partitioning",
    ),
    (
        "partition_columns_from_path",
        "true: Hive-style directories between the prefix and a file's name (dt=2025-01-01/region=eu/) \
         become columns of its rows, typed by schema_hints or inferred (digits: bigint, \
         YYYY-MM-DD: date, else string); the path's value wins over the file's (default false)",
    ),
    (
        "discovery",
        "what a run lists: full (default; the whole prefix every run, new files oldest first) \
         or incremental (only keys after the greatest key already loaded, and the whole prefix \
         every full_listing_interval; new files in key order)",
    ),
    (
        "full_listing_interval",
        "with discovery incremental, how often the whole prefix is listed to find files that \
         arrived late: minutes, hours or days such as '30m', '6h', '1d' (default '1d'; 1 minute \
         to 365 days)",
    ),
    (
        "maintenance",
        "auto (default: the scheduler compacts, expires snapshots and removes orphans) or manual \
         (only POST .../maintenance)",
    ),
    (
        "snapshot_retention",
        "snapshots older than this are expired, e.g. '7d', '36h' (default \
         AUTOLOADER_SNAPSHOT_RETENTION, 7d)",
    ),
    (
        "min_snapshots_to_keep",
        "the last N snapshots are kept whatever their age (default \
         AUTOLOADER_MIN_SNAPSHOTS_TO_KEEP, 1)",
    ),
    (
        "target_file_size",
        "bytes a compacted data file aims at (default AUTOLOADER_TARGET_FILE_SIZE, 128 MiB)",
    ),
    (
        "orphan_safety_window",
        "unreferenced files younger than this are never removed, e.g. '3d' (default \
         AUTOLOADER_ORPHAN_SAFETY_WINDOW, 3d)",
    ),
];

impl IngestOptions {
    /// Parses `options` (a JSON object, `null` meaning none) for a source of `source_type` in
    /// `format`, collecting every problem.
    pub fn parse(
        options: &Value,
        source_type: SourceType,
        format: FormatType,
    ) -> Result<IngestOptions, Vec<OptionProblem>> {
        let empty = Map::new();
        let map = match options {
            Value::Null => &empty,
            Value::Object(m) => m,
            _ => {
                return Err(vec![OptionProblem {
                    field: "options".into(),
                    message: "options must be a JSON object".into(),
                }])
            }
        };
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(OptionProblem {
                field: format!("options.{key}"),
                message,
            })
        };
        let mut out = IngestOptions {
            s3: S3Options::default(),
            csv: CsvOptions::default(),
            glob: None,
            max_files_per_run: DEFAULT_MAX_FILES_PER_RUN,
            max_bytes_per_run: DEFAULT_MAX_BYTES_PER_RUN,
            schema_evolution: SchemaEvolution::default(),
            on_error: OnError::default(),
            schema_hints: Vec::new(),
            metadata_columns: false,
            maintenance: MaintenanceOptions::default(),
            partition_by: Vec::new(),
            partition_columns_from_path: false,
            discovery: Discovery::default(),
            full_listing_interval: super::listing::DEFAULT_FULL_LISTING_INTERVAL,
        };
        for (key, value) in map {
            let k = key.as_str();
            if k.starts_with("s3_") && source_type != SourceType::S3 {
                problem(k, format!("{k} only applies to s3 sources"));
                continue;
            }
            if k.starts_with("csv_") && format != FormatType::Csv {
                problem(k, format!("{k} only applies to the csv format"));
                continue;
            }
            match k {
                "s3_endpoint" => match text(value) {
                    Some(s) if s.starts_with("http://") || s.starts_with("https://") => {
                        out.s3.endpoint = Some(s.trim_end_matches('/').to_owned())
                    }
                    _ => problem(k, "s3_endpoint must be an http:// or https:// URL".into()),
                },
                "s3_region" => match text(value) {
                    Some(_) if value.as_str().is_some_and(is_region) => {
                        out.s3.region = value.as_str().map(str::to_owned)
                    }
                    // The region is written into the endpoint's host name: anything but a
                    // region's letters, digits and hyphens could send signed requests elsewhere.
                    Some(_) => problem(
                        k,
                        "s3_region must look like a region: lower-case letters, digits and \
                         hyphens, at most 64 (e.g. 'eu-west-1')"
                            .into(),
                    ),
                    None => problem(k, "s3_region must be a non-empty string".into()),
                },
                "s3_access_key_id" => match text(value) {
                    Some(s) => out.s3.access_key_id = Some(s.to_owned()),
                    None => problem(k, "s3_access_key_id must be a non-empty string".into()),
                },
                "s3_secret_access_key" => match text(value) {
                    Some(s) => out.s3.secret_access_key = Some(s.to_owned()),
                    None => problem(k, "s3_secret_access_key must be a non-empty string".into()),
                },
                "s3_allow_http" => match flag(value) {
                    Some(b) => out.s3.allow_http = Some(b),
                    None => problem(k, "s3_allow_http must be true or false".into()),
                },
                "s3_path_style" => match flag(value) {
                    Some(b) => out.s3.path_style = Some(b),
                    None => problem(k, "s3_path_style must be true or false".into()),
                },
                "csv_header" => match flag(value) {
                    Some(b) => out.csv.header = b,
                    None => problem(k, "csv_header must be true or false".into()),
                },
                "csv_delimiter" | "csv_quote" => match one_char(value) {
                    Some(c) if k == "csv_delimiter" => out.csv.delimiter = c,
                    Some(c) => out.csv.quote = c,
                    None => problem(k, format!("{k} must be a single ASCII character")),
                },
                "glob" => match text(value).map(Glob::parse) {
                    Some(Ok(g)) => out.glob = Some(g),
                    Some(Err(m)) => problem(k, m),
                    None => problem(k, "glob must be a non-empty string".into()),
                },
                "max_files_per_run" => match value.as_u64().filter(|n| (1..=100_000).contains(n)) {
                    Some(n) => out.max_files_per_run = n,
                    None => problem(
                        k,
                        "max_files_per_run must be an integer from 1 to 100000".into(),
                    ),
                },
                "max_bytes_per_run" => match value.as_u64().filter(|n| *n >= 1) {
                    Some(n) => out.max_bytes_per_run = n,
                    None => problem(k, "max_bytes_per_run must be a positive integer".into()),
                },
                "schema_evolution" => {
                    match one_of(&SchemaEvolution::ALL, SchemaEvolution::as_str, value) {
                        Some(m) => out.schema_evolution = m,
                        None => problem(
                            k,
                            "schema_evolution must be one of: add_new_columns, rescue, \
                             fail_on_new_columns, none"
                                .into(),
                        ),
                    }
                }
                "on_error" => match one_of(&OnError::ALL, OnError::as_str, value) {
                    Some(m) => out.on_error = m,
                    None => problem(
                        k,
                        "on_error must be one of: abort, skip_file, skip_record".into(),
                    ),
                },
                "schema_hints" => match value.as_str().map(super::hints::parse_hints) {
                    Some(Ok(h)) => out.schema_hints = h,
                    Some(Err(m)) => problem(k, m),
                    None => problem(
                        k,
                        "schema_hints must be a string such as 'id bigint, ts timestamp'".into(),
                    ),
                },
                "metadata_columns" => match flag(value) {
                    Some(b) => out.metadata_columns = b,
                    None => problem(k, "metadata_columns must be true or false".into()),
                },
                "discovery" => match one_of(&Discovery::ALL, Discovery::as_str, value) {
                    Some(d) => out.discovery = d,
                    None => problem(k, "discovery must be one of: full, incremental".into()),
                },
                "full_listing_interval" => match value.as_str().map(super::listing::parse_interval)
                {
                    Some(Ok(d)) => out.full_listing_interval = d,
                    Some(Err(m)) => problem(k, m),
                    None => problem(
                        k,
                        "full_listing_interval must be a string such as '30m', '6h' or '1d'".into(),
                    ),
                },
                "partition_columns_from_path" => match flag(value) {
                    Some(b) => out.partition_columns_from_path = b,
                    None => problem(
                        k,
                        "partition_columns_from_path must be true or false".into(),
                    ),
                },
                "partition_by" => match super::partitions::parse_partition_by(value) {
                    Ok(fields) => out.partition_by = fields,
                    Err(found) => {
                        for (i, message) in found {
                            match i {
                                Some(i) => problem(&format!("{k}[{i}]"), message),
                                None => problem(k, message),
                            }
                        }
                    }
                },
                other => match out.maintenance.read(other, value) {
                    Some(Ok(())) => {}
                    Some(Err(m)) => problem(other, m),
                    None => {
                        let known: Vec<&str> = OPTION_KEYS.iter().map(|(k, _)| *k).collect();
                        problem(
                            other,
                            format!("unknown option '{other}' (known: {})", known.join(", ")),
                        )
                    }
                },
            }
        }
        // A hinted column's type is known now: a transform it does not allow is refused here
        // rather than by the run that creates the table.
        for (i, field) in out.partition_by.iter().enumerate() {
            let hinted = out.schema_hints.iter().find(|h| h.column == field.column);
            if let Some(Err(message)) = hinted.map(|h| field.check_type(h.hint)) {
                problem(&format!("partition_by[{i}]"), message);
            }
        }
        if out.csv.delimiter == out.csv.quote {
            problem(
                "csv_quote",
                "csv_quote must differ from csv_delimiter".into(),
            );
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

/// `eu-west-1`, `us-gov-west-1`, `local`: lower-case letters and digits in hyphen-separated
/// parts, at most 64 characters.
fn is_region(s: &str) -> bool {
    s.len() <= 64
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn text(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn one_char(v: &Value) -> Option<u8> {
    let s = v.as_str()?;
    let s = if s == "\\t" { "\t" } else { s };
    match s.as_bytes() {
        [c] if c.is_ascii() && *c != b'\n' && *c != b'\r' => Some(*c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn parse(v: Value) -> Result<IngestOptions, Vec<OptionProblem>> {
        IngestOptions::parse(&v, SourceType::S3, FormatType::Csv)
    }

    #[test]
    fn defaults_when_no_options() {
        let o = IngestOptions::parse(&Value::Null, SourceType::Local, FormatType::Json)
            .expect("no options is fine");
        assert_eq!(o.max_files_per_run, DEFAULT_MAX_FILES_PER_RUN);
        assert_eq!(o.csv, CsvOptions::default());
        assert_eq!(o.s3, S3Options::default());
    }

    #[test]
    fn known_options_are_read() {
        let o = parse(json!({
            "s3_endpoint": "http://127.0.0.1:9000/", "s3_allow_http": "true", "s3_path_style": true,
            "csv_delimiter": ";", "csv_quote": "'", "csv_header": false, "glob": "**/*.csv",
            "max_files_per_run": 5
        }))
        .expect("valid");
        assert_eq!(o.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(o.s3.allow_http, Some(true));
        assert_eq!(o.csv.delimiter, b';');
        assert_eq!(o.csv.quote, b'\'');
        assert!(!o.csv.header);
        assert_eq!(o.max_files_per_run, 5);
    }

    #[test]
    fn file_handling_options_are_read_and_checked() {
        let o = parse(json!({
            "schema_evolution": "rescue", "on_error": "skip_record",
            "schema_hints": "id bigint", "metadata_columns": true
        }))
        .expect("valid");
        assert_eq!(o.schema_evolution, SchemaEvolution::Rescue);
        assert_eq!(o.on_error, OnError::SkipRecord);
        assert_eq!(o.schema_hints[0].hint, HintType::Long);
        assert!(o.metadata_columns);
        let d = parse(json!({})).expect("defaults");
        assert_eq!(
            (d.schema_evolution, d.on_error, d.metadata_columns),
            (SchemaEvolution::AddNewColumns, OnError::Abort, false)
        );
        let problems = parse(json!({
            "schema_evolution": "addNewColumns", "on_error": "continue",
            "schema_hints": "id varchar", "metadata_columns": "yes"
        }))
        .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "options.metadata_columns",
                "options.on_error",
                "options.schema_evolution",
                "options.schema_hints"
            ]
        );
        assert!(problems[3].message.contains("unknown type 'varchar'"));
    }

    #[test]
    fn partition_by_is_read_and_checked_against_the_hinted_types() {
        let o =
            parse(json!({"partition_by": ["day(ts)", "region"], "schema_hints": "ts timestamp"}))
                .expect("valid");
        let names: Vec<String> = o.partition_by.iter().map(PartitionField::name).collect();
        assert_eq!(names, ["ts_day", "region"]);
        assert!(parse(json!({})).expect("defaults").partition_by.is_empty());
        let problems = parse(json!({
            "partition_by": ["region", "day(region)", "bucket(4, id)", "hour(ts)"],
            "schema_hints": "region string, ts date"
        }))
        .expect_err("a transform the hinted type does not allow");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["options.partition_by[1]", "options.partition_by[3]"]
        );
        assert!(problems[0].message.contains("column 'region' is string"));
        assert!(problems[1].message.contains("column 'ts' is date"));
        let problems = parse(json!({"partition_by": ["week(ts)"]})).expect_err("unknown");
        assert_eq!(problems[0].field, "options.partition_by[0]");
        let problems = parse(json!({"partition_by": "day(ts)"})).expect_err("not a list");
        assert_eq!(problems[0].field, "options.partition_by");
    }

    #[test]
    fn discovery_options_are_read_and_checked() {
        let d = parse(json!({})).expect("defaults");
        assert_eq!(d.discovery, Discovery::Full);
        assert_eq!(d.full_listing_interval, Duration::from_secs(86_400));
        let o = parse(json!({"discovery": "incremental", "full_listing_interval": "6h"}))
            .expect("valid");
        assert_eq!(o.discovery, Discovery::Incremental);
        assert_eq!(o.full_listing_interval, Duration::from_secs(6 * 3_600));
        let problems = parse(json!({"discovery": "Incremental", "full_listing_interval": "30s"}))
            .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["options.discovery", "options.full_listing_interval"]
        );
        for bad in [json!("0m"), json!("366d"), json!(3600), json!(null)] {
            let problems =
                parse(json!({ "full_listing_interval": bad })).expect_err("out of bounds");
            assert_eq!(problems[0].field, "options.full_listing_interval", "{bad}");
        }
    }

    #[test]
    fn the_secret_key_never_shows_in_debug_output() {
        let o = parse(json!({"s3_secret_access_key": "hunter2-very-secret"})).expect("valid");
        assert_eq!(
            o.s3.secret_access_key.as_deref(),
            Some("hunter2-very-secret")
        );
        let shown = format!("{o:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn every_bad_option_is_named() {
        let problems = parse(json!({
            "s3_endpoint": "ftp://x", "csv_delimiter": ";;", "max_files_per_run": 0, "colour": "red"
        }))
        .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        for f in [
            "options.s3_endpoint",
            "options.csv_delimiter",
            "options.max_files_per_run",
            "options.colour",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn options_must_fit_the_source_and_format() {
        let p = IngestOptions::parse(
            &json!({"s3_region": "eu-west-1", "csv_header": true}),
            SourceType::Local,
            FormatType::Json,
        )
        .expect_err("s3 option on a local json source");
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn a_region_is_a_region_and_nothing_that_reaches_another_host() {
        for good in [
            "eu-west-1",
            "us-gov-west-1",
            "cn-north-1",
            "local",
            "us-east-1",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "eu-west-1.evil.example",
            "evil.example/x",
            "us-east-1#",
            "EU-WEST-1",
            "eu--west",
            " eu-west-1",
            "-eu",
            "",
            &"a".repeat(65),
        ] {
            assert!(!is_region(bad), "{bad:?}");
        }
        let problems = IngestOptions::parse(
            &json!({"s3_region": "x.evil.example"}),
            SourceType::S3,
            FormatType::Json,
        )
        .expect_err("refused");
        assert_eq!(problems[0].field, "options.s3_region");
    }
}
