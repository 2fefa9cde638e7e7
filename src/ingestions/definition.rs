//! An ingestion's definition, parsed at the boundary into values that cannot be invalid: where
//! files come from, what format they are in, which Iceberg table they go to, and when.
//!
//! Every problem is reported as a [`FieldProblem`] naming the API field, and all problems of one
//! request are collected, so a user fixes a request in one round trip.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::options::IngestOptions;
pub use crate::schedule::FieldProblem;
use crate::schedule::{
    check_cron, Schedule, ScheduleInput, FIELD_CRON, FIELD_FREQUENCY, FIELD_TIME,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    S3,
    Local,
}

impl SourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::S3 => "s3",
            SourceType::Local => "local",
        }
    }

    pub fn parse(s: &str) -> Result<SourceType, String> {
        match s {
            "s3" => Ok(SourceType::S3),
            "local" => Ok(SourceType::Local),
            other => Err(format!(
                "source_type must be one of: s3, local (got '{other}')"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatType {
    Json,
    Csv,
    Parquet,
    /// Avro object container files.
    Avro,
}

impl FormatType {
    pub fn as_str(self) -> &'static str {
        match self {
            FormatType::Json => "json",
            FormatType::Csv => "csv",
            FormatType::Parquet => "parquet",
            FormatType::Avro => "avro",
        }
    }

    pub fn parse(s: &str) -> Result<FormatType, String> {
        match s {
            "json" => Ok(FormatType::Json),
            "csv" => Ok(FormatType::Csv),
            "parquet" => Ok(FormatType::Parquet),
            "avro" => Ok(FormatType::Avro),
            other => Err(format!(
                "format_type must be one of: json, csv, parquet, avro (got '{other}')"
            )),
        }
    }
}

/// A source prefix that matches its source type: `s3://bucket/prefix/` (or `s3a://`) for S3,
/// `file:///absolute/dir/` for local files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePath(String);

impl SourcePath {
    pub fn parse(source_type: SourceType, s: &str) -> Result<SourcePath, String> {
        if s.len() > 1024 {
            return Err("source_path is longer than 1024 characters".into());
        }
        if s.chars().any(char::is_control) {
            return Err("source_path contains control characters".into());
        }
        match source_type {
            SourceType::S3 => {
                let rest = s
                    .strip_prefix("s3://")
                    .or_else(|| s.strip_prefix("s3a://"))
                    .ok_or_else(|| format!("source_path must look like s3://bucket/prefix/ for an s3 source (got '{s}')"))?;
                let bucket = rest.split('/').next().unwrap_or("");
                if !valid_bucket(bucket) {
                    return Err(format!(
                        "source_path: '{bucket}' is not a valid bucket name (3-63 lower-case letters, digits, dots and hyphens)"
                    ));
                }
            }
            SourceType::Local => {
                let path = s
                    .strip_prefix("file://")
                    .filter(|p| p.starts_with('/'))
                    .ok_or_else(|| format!("source_path must look like file:///absolute/dir/ for a local source (got '{s}')"))?;
                if path.split('/').any(|seg| seg == "..") {
                    return Err("source_path must not contain '..'".into());
                }
            }
        }
        Ok(SourcePath(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// `namespace.table` (namespaces may nest: `a.b.table`), each part an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationTable {
    pub namespace: Vec<String>,
    pub table: String,
}

impl DestinationTable {
    pub fn parse(s: &str) -> Result<DestinationTable, String> {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() < 2 {
            return Err(format!(
                "destination_table must be namespace.table (got '{s}')"
            ));
        }
        for p in &parts {
            let ok = !p.is_empty()
                && p.len() <= 128
                && p.bytes()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
            if !ok {
                return Err(format!(
                    "destination_table: '{p}' is not an identifier (letters, digits and underscores, not starting with a digit, at most 128)"
                ));
            }
        }
        let (table, namespace) = parts
            .split_last()
            .map(|(t, ns)| (t.to_string(), ns.iter().map(|s| s.to_string()).collect()))
            .unwrap_or_default();
        Ok(DestinationTable { namespace, table })
    }
}

impl DestinationTable {
    /// The Iceberg table this destination is for a tenant whose namespace root is `root`:
    /// `<root>.<namespace>.<table>`. Tenants never share a table, whatever names they choose.
    pub fn under(&self, root: &str) -> DestinationTable {
        let mut namespace = Vec::with_capacity(self.namespace.len() + 1);
        namespace.push(root.to_owned());
        namespace.extend(self.namespace.iter().cloned());
        DestinationTable {
            namespace,
            table: self.table.clone(),
        }
    }
}

/// The full, dot-joined Iceberg identifier of a tenant's destination, as readers (pyiceberg,
/// Spark) load it from the catalog.
pub fn iceberg_table(tenant_namespace: &str, destination_table: &str) -> String {
    format!("{tenant_namespace}.{destination_table}")
}

impl fmt::Display for DestinationTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace.join("."), self.table)
    }
}

/// What a run of an ingestion works from: the parts of its definition, parsed.
#[derive(Debug, Clone)]
pub struct Definition {
    pub source_type: SourceType,
    pub source_path: SourcePath,
    pub format_type: FormatType,
    pub destination_table: DestinationTable,
    pub options: IngestOptions,
}

impl Definition {
    /// Parses a definition as stored. The API stores only what parses, but a person at a psql
    /// prompt can store anything: a run of such an ingestion fails with this error.
    pub fn parse(
        source_type: &str,
        source_path: &str,
        format_type: &str,
        destination_table: &str,
        options: &Value,
    ) -> Result<Definition, String> {
        let source_type = SourceType::parse(source_type)?;
        let format_type = FormatType::parse(format_type)?;
        let options = IngestOptions::parse(options, source_type, format_type).map_err(|ps| {
            ps.iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        Ok(Definition {
            source_type,
            source_path: SourcePath::parse(source_type, source_path)?,
            format_type,
            destination_table: DestinationTable::parse(destination_table)?,
            options,
        })
    }
}

/// The schedule fields of a request, as the user sent them.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFields {
    pub frequency: Option<String>,
    pub time: Option<String>,
    pub timezone: Option<String>,
    pub cron: Option<String>,
    pub enabled: bool,
}

impl ScheduleFields {
    /// Validates the fields as the product spec does. Format rules apply to every field given,
    /// enabled or not (its section 7.1: `validate_cron`, `validate_time`...). Completeness
    /// applies only to an enabled schedule (section 8.3, `_validate_schedule`): a frequency, a
    /// time for daily and weekly, a cron for custom. Returns the schedule the fields define, if
    /// any: a daily or weekly one without a time is at 00:00 (`_parse_schedule_time`); a
    /// disabled one without a frequency, or a disabled custom one without a cron, has none.
    pub fn validate(&self) -> Result<Option<Schedule>, Vec<FieldProblem>> {
        let frequency = blank_to_none(self.frequency.clone());
        let cron = blank_to_none(self.cron.clone());
        let mut problems = Vec::new();
        // A frequency is one of four words; "no frequency" is null or no field, not "".
        if self
            .frequency
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            problems.push(FieldProblem {
                field: FIELD_FREQUENCY,
                message: "schedule_frequency must be one of: hourly, daily, weekly, custom \
                          (null, or no field, for none)"
                    .into(),
            });
        }
        if self.enabled {
            match frequency.as_deref() {
                None => problems.push(FieldProblem {
                    field: FIELD_FREQUENCY,
                    message: "schedule_frequency is required when schedule_enabled is true".into(),
                }),
                Some(f @ ("daily" | "weekly")) if blank_to_none(self.time.clone()).is_none() => {
                    problems.push(FieldProblem {
                        field: FIELD_TIME,
                        message: format!("schedule_time is required for {f} schedules"),
                    })
                }
                // A custom schedule without a cron: `Schedule::parse` reports it (below).
                _ => {}
            }
        }
        let input = ScheduleInput {
            frequency: self.frequency.as_deref(),
            time: self.time.as_deref(),
            timezone: self.timezone.as_deref(),
            cron: self.cron.as_deref(),
        };
        let schedule = match Schedule::parse(&input) {
            Ok(s) => Some(s),
            Err(e) => {
                // `Schedule::parse` cannot build a schedule without a frequency, nor a custom
                // one without a cron; both are required of an enabled schedule only.
                let custom_without_cron = frequency.as_deref() == Some("custom") && cron.is_none();
                problems.extend(e.problems.into_iter().filter(|p| {
                    if p.field == FIELD_FREQUENCY && frequency.is_none() {
                        return false; // reported above when enabled
                    }
                    !(p.field == FIELD_CRON && custom_without_cron && !self.enabled)
                }));
                None
            }
        };
        // `Schedule::parse` reads the cron of custom schedules only; any other cron given must
        // parse too (`validate_cron`), so nothing unparsable is stored.
        if frequency.as_deref() != Some("custom") {
            if let Some(Err(p)) = cron.as_deref().map(check_cron) {
                problems.extend(p);
            }
        }
        if problems.is_empty() {
            Ok(schedule)
        } else {
            Err(problems)
        }
    }
}

/// A field as given, trimmed; blank or absent is "not set".
pub(crate) fn blank_to_none(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Longest name of an ingestion or a tenant, in characters, as sent (before trimming).
pub const MAX_NAME_CHARS: usize = 200;

/// Checks a name as sent: at most [`MAX_NAME_CHARS`] characters and no control characters.
/// (Whether it is blank is the caller's `required` check.)
pub fn check_name(raw: &str) -> Result<(), String> {
    if raw.chars().count() > MAX_NAME_CHARS {
        return Err(format!("name must be at most {MAX_NAME_CHARS} characters"));
    }
    if raw.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(())
}

/// Options whose keys name secrets; never returned by the API or logged.
pub fn is_secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("secret")
        || k.contains("password")
        || k.contains("token")
        || (k.ends_with("_key") && k != "s3_access_key_id")
}

/// What the API shows in place of a secret option's value.
pub const REDACTED: &str = "********";

/// The options as the API shows them: secret values replaced by [`REDACTED`].
pub fn redact_options(options: &Value) -> Value {
    match options {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_option(k) {
                        Value::String(REDACTED.into())
                    } else {
                        v.clone()
                    };
                    (k.clone(), v)
                })
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_paths_match_their_type() {
        assert!(SourcePath::parse(SourceType::S3, "s3://my-logs-bucket/cloudtrail/").is_ok());
        assert!(SourcePath::parse(SourceType::S3, "s3a://my-logs-bucket/").is_ok());
        assert!(SourcePath::parse(SourceType::Local, "file:///data/in/").is_ok());
        for (t, bad) in [
            (SourceType::S3, "file:///data/in/"),
            (SourceType::S3, "s3://UPPER/x/"),
            (SourceType::S3, "s3://ab/"),
            (SourceType::Local, "s3://bucket/x/"),
            (SourceType::Local, "file://relative/dir"),
            (SourceType::Local, "file:///data/../etc/"),
        ] {
            assert!(SourcePath::parse(t, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destination_tables_are_identifiers() {
        let t = DestinationTable::parse("security.cloudtrail_logs").expect("valid");
        assert_eq!(
            (t.namespace.clone(), t.table.as_str()),
            (vec!["security".to_owned()], "cloudtrail_logs")
        );
        assert_eq!(t.to_string(), "security.cloudtrail_logs");
        for bad in ["events", "a..b", "1a.b", "a.b-c", ".a", "a.", "a b.c"] {
            assert!(DestinationTable::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_are_required_only_when_enabled() {
        let off = ScheduleFields::default();
        assert_eq!(off.validate(), Ok(None));
        let on = ScheduleFields {
            enabled: true,
            ..ScheduleFields::default()
        };
        let problems = on.validate().expect_err("enabled without frequency");
        assert_eq!(problems[0].field, "schedule_frequency");
        assert_eq!(
            problems[0].message,
            "schedule_frequency is required when schedule_enabled is true"
        );
        // Format rules apply even to a disabled schedule.
        let bad_time = ScheduleFields {
            time: Some("9:00".into()),
            ..ScheduleFields::default()
        };
        assert_eq!(
            bad_time.validate().expect_err("bad time")[0].field,
            "schedule_time"
        );
    }

    fn fields(frequency: &str, enabled: bool) -> ScheduleFields {
        ScheduleFields {
            frequency: Some(frequency.into()),
            timezone: Some("UTC".into()),
            enabled,
            ..ScheduleFields::default()
        }
    }

    fn problem_fields(f: &ScheduleFields) -> Vec<(&'static str, String)> {
        f.validate()
            .expect_err("refused")
            .into_iter()
            .map(|p| (p.field, p.message))
            .collect()
    }

    #[test]
    fn a_time_or_a_cron_is_required_only_when_the_schedule_is_enabled() {
        // Disabled: a daily or weekly schedule without a time is one at 00:00, a custom one
        // without a cron is no schedule yet.
        let daily = fields("daily", false).validate().expect("valid");
        assert_eq!(
            daily.map(|s| s.cron_expression().to_owned()),
            Some("0 0 * * *".into())
        );
        let weekly = fields("weekly", false).validate().expect("valid");
        assert_eq!(
            weekly.map(|s| s.cron_expression().to_owned()),
            Some("0 0 * * 0".into())
        );
        assert!(matches!(fields("custom", false).validate(), Ok(None)));
        // Enabled: each names its missing field, once.
        assert_eq!(
            problem_fields(&fields("daily", true)),
            [(
                "schedule_time",
                "schedule_time is required for daily schedules".to_owned()
            )]
        );
        assert_eq!(
            problem_fields(&fields("weekly", true)),
            [(
                "schedule_time",
                "schedule_time is required for weekly schedules".to_owned()
            )]
        );
        assert_eq!(
            problem_fields(&fields("custom", true)),
            [(
                "schedule_cron",
                "schedule_cron is required for custom schedules".to_owned()
            )]
        );
    }

    #[test]
    fn a_cron_given_must_parse_whatever_the_frequency() {
        let mut daily = fields("daily", false);
        daily.cron = Some("61 * * * *".into());
        let problems = problem_fields(&daily);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "schedule_cron");
        let mut fine = fields("daily", true);
        fine.time = Some("02:00".into());
        fine.cron = Some("*/5 * * * *".into());
        assert!(
            fine.validate().is_ok(),
            "a valid cron beside a preset is kept, unused"
        );
    }

    #[test]
    fn names_are_checked_as_sent() {
        assert!(check_name("Daily AWS CloudTrail Ingestion").is_ok());
        let long = format!(" {}", "x".repeat(MAX_NAME_CHARS));
        assert!(check_name(&long).is_err(), "counted before trimming");
        assert!(check_name("tab\there").is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let shown = redact_options(&serde_json::json!({
            "s3_region": "eu-west-1", "s3_access_key_id": "AKIA", "s3_secret_access_key": "shh"
        }));
        assert_eq!(shown["s3_secret_access_key"], "********");
        assert_eq!(shown["s3_access_key_id"], "AKIA");
        assert_eq!(shown["s3_region"], "eu-west-1");
    }
}
