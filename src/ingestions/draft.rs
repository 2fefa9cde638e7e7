//! A definition as a request sends it ([`Draft`]: every field optional, strings as typed),
//! checked whole into a [`Valid`] one that the store writes. Every problem is collected and
//! named by its field, so a user fixes a request in one round trip; nothing is stored unless the
//! whole definition is valid.

use serde_json::Value;

use super::catchup::{check_max_runs, Catchup, DEFAULT_MAX_CATCHUP_RUNS};
use super::definition::{
    blank_to_none, check_name, is_secret_option, DestinationTable, FieldProblem, FormatType,
    ScheduleFields, SourcePath, SourceType, REDACTED,
};
use super::egress::EgressPolicy;
use super::options::{IngestOptions, Limits};
use super::roots::FileRoots;
use super::store::IngestionRow;
use crate::schedule::Schedule;

/// One problem of a request, named by its field (`options.<key>` for an option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl From<FieldProblem> for Problem {
    fn from(p: FieldProblem) -> Problem {
        Problem {
            field: p.field.to_owned(),
            message: p.message,
        }
    }
}

/// The operator's bounds a definition is checked against: the directories local sources may
/// read, where S3 endpoints may point, and the caps on what a run reads.
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    pub roots: FileRoots,
    pub egress: EgressPolicy,
    pub limits: Limits,
    /// The catch-up policy of a definition that names none (`SCHEDULER_COALESCE`).
    pub default_catchup: Catchup,
}

/// An ingestion's definition as a request sends it: the body of a create or replace, or a stored
/// definition with a patch applied.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub name: Option<String>,
    pub description: Option<String>,
    pub source_type: Option<String>,
    pub source_path: Option<String>,
    pub format_type: Option<String>,
    pub destination_table: Option<String>,
    pub options: Option<Value>,
    pub schedule_frequency: Option<String>,
    pub schedule_time: Option<String>,
    pub schedule_timezone: Option<String>,
    pub schedule_cron: Option<String>,
    pub schedule_enabled: Option<bool>,
    pub status: Option<String>,
    pub catchup: Option<String>,
    pub max_catchup_runs: Option<i64>,
}

/// The status of an ingestion: `ACTIVE` runs on its schedule, `PAUSED` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestionStatus {
    Active,
    Paused,
}

impl IngestionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IngestionStatus::Active => "ACTIVE",
            IngestionStatus::Paused => "PAUSED",
        }
    }

    pub fn parse(s: &str) -> Result<IngestionStatus, String> {
        match s {
            "ACTIVE" => Ok(IngestionStatus::Active),
            "PAUSED" => Ok(IngestionStatus::Paused),
            other => Err(format!("status must be ACTIVE or PAUSED (got '{other}')")),
        }
    }
}

/// A whole definition that passed every check, ready to store.
#[derive(Debug, Clone)]
pub struct Valid {
    pub name: String,
    pub description: Option<String>,
    pub status: IngestionStatus,
    pub source_type: SourceType,
    pub source_path: SourcePath,
    pub format_type: FormatType,
    pub destination_table: DestinationTable,
    /// The options object as stored (checked by [`IngestOptions::parse`]).
    pub options: Value,
    /// The schedule, when the fields hold one (always, when it is enabled).
    pub schedule: Option<Schedule>,
    pub fields: ScheduleFields,
    pub catchup: Catchup,
    /// 1..=`MAX_CATCHUP_RUNS`.
    pub max_catchup_runs: i32,
}

impl Valid {
    /// Whether the schedule runs: enabled, and the ingestion ACTIVE.
    pub fn is_live(&self) -> bool {
        self.fields.enabled && self.status == IngestionStatus::Active
    }
}

const NUL_MESSAGE: &str = "must not contain the NUL character (\\u0000)";

/// The top-level key of the first option whose key, or any string within whose value, holds a
/// NUL character.
fn nul_in_options(options: &Value) -> Option<String> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    options.as_object().and_then(|map| {
        map.iter()
            .find(|(k, v)| k.contains('\0') || has_nul(v))
            .map(|(k, _)| k.replace('\0', "\\u0000"))
    })
}

impl Draft {
    /// The stored definition, as a draft a patch can change. Secret options are kept as stored
    /// (the client never sees them, so it cannot send them back).
    pub fn from_row(r: &IngestionRow) -> Draft {
        Draft {
            name: Some(r.name.clone()),
            description: r.description.clone(),
            source_type: Some(r.source_type.clone()),
            source_path: Some(r.source_path.clone()),
            format_type: Some(r.format_type.clone()),
            destination_table: Some(r.destination_table.clone()),
            options: Some(r.options.clone()),
            schedule_frequency: r.schedule_frequency.clone(),
            schedule_time: r.schedule_time.clone(),
            schedule_timezone: Some(r.schedule_timezone.clone()),
            schedule_cron: r.schedule_cron.clone(),
            schedule_enabled: Some(r.schedule_enabled),
            status: Some(r.status.clone()),
            catchup: Some(r.catchup.clone()),
            max_catchup_runs: Some(i64::from(r.max_catchup_runs)),
        }
    }

    /// Keeps the stored secret wherever the request sends back the mask the API shows for it
    /// ([`REDACTED`]), so a client that echoes a GET body through PUT or PATCH does not store the
    /// mask as its secret. A mask for a secret that was never stored is dropped.
    pub fn keep_masked_secrets(&mut self, stored: &Value) {
        let Some(Value::Object(options)) = self.options.as_mut() else {
            return;
        };
        let masked: Vec<String> = options
            .iter()
            .filter(|(k, v)| is_secret_option(k) && v.as_str() == Some(REDACTED))
            .map(|(k, _)| k.clone())
            .collect();
        for key in masked {
            match stored.get(&key) {
                Some(secret) => options.insert(key, secret.clone()),
                None => options.remove(&key),
            };
        }
    }

    /// Checks the whole definition, collecting every problem. Local sources must lie under
    /// `roots` (after following symlinks).
    pub fn validate(self, bounds: &Bounds) -> Result<Valid, Vec<Problem>> {
        let Bounds {
            roots,
            egress,
            limits,
            default_catchup,
        } = bounds;
        let mut errors: Vec<Problem> = Vec::new();
        let mut problem = |field: &str, message: String| {
            errors.push(Problem {
                field: field.to_owned(),
                message,
            })
        };
        let raw_name_problem = self.name.as_deref().and_then(|n| check_name(n).err());
        let mut required = |v: Option<String>, field: &str| -> Option<String> {
            let v = blank_to_none(v);
            if v.is_none() {
                problem(field, format!("{field} is required"));
            }
            v
        };
        let name = required(self.name, "name");
        let source_type = required(self.source_type, "source_type");
        let source_path = required(self.source_path, "source_path");
        let format_type = required(self.format_type, "format_type");
        let destination_table = required(self.destination_table, "destination_table");
        let mut problem = |field: &str, message: String| {
            errors.push(Problem {
                field: field.to_owned(),
                message,
            })
        };

        if let Some(m) = raw_name_problem {
            problem("name", m);
        }
        let source_type = source_type.and_then(|s| {
            SourceType::parse(&s)
                .map_err(|m| problem("source_type", m))
                .ok()
        });
        let source_path = match (source_type, source_path) {
            (Some(t), Some(p)) => SourcePath::parse(t, &p)
                .map_err(|m| problem("source_path", m))
                .ok(),
            _ => None,
        };
        let format_type = format_type.and_then(|s| {
            FormatType::parse(&s)
                .map_err(|m| problem("format_type", m))
                .ok()
        });
        let destination_table = destination_table.and_then(|s| {
            DestinationTable::parse(&s)
                .map_err(|m| problem("destination_table", m))
                .ok()
        });
        // PostgreSQL stores no NUL character in text or jsonb: refused here, naming the field,
        // rather than failing the write.
        if self
            .description
            .as_deref()
            .is_some_and(|d| d.contains('\0'))
        {
            problem("description", NUL_MESSAGE.into());
        }
        if let Some(key) = self.options.as_ref().and_then(nul_in_options) {
            problem(&format!("options.{key}"), NUL_MESSAGE.into());
        }
        let options = match self.options {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => {
                problem("options", "options must be a JSON object".into());
                Value::Null
            }
        };
        if let (Some(t), Some(f), Value::Object(_)) = (source_type, format_type, &options) {
            match IngestOptions::parse(&options, t, f) {
                Ok(parsed) => {
                    if let Err(m) = egress.check(parsed.s3.endpoint.as_deref()) {
                        problem("options.s3_endpoint", m);
                    }
                    if let Err(p) = limits.check(&parsed) {
                        problem(&p.field, p.message);
                    }
                }
                Err(problems) => {
                    for p in problems {
                        problem(&p.field, p.message);
                    }
                }
            }
        }
        if let (Some(SourceType::Local), Some(p)) = (source_type, &source_path) {
            if let Err(m) = roots.resolve(p) {
                problem("source_path", m);
            }
        }
        let status = match self.status.as_deref().map(str::trim) {
            None => IngestionStatus::Active,
            Some(s) => IngestionStatus::parse(s).unwrap_or_else(|m| {
                problem("status", m);
                IngestionStatus::Active
            }),
        };
        let fields = ScheduleFields {
            frequency: self.schedule_frequency.map(|f| f.trim().to_owned()),
            time: blank_to_none(self.schedule_time),
            timezone: blank_to_none(self.schedule_timezone).or_else(|| Some("UTC".to_owned())),
            cron: blank_to_none(self.schedule_cron),
            enabled: self.schedule_enabled.unwrap_or(false),
        };
        let catchup = match self.catchup.as_deref().map(str::trim) {
            None => *default_catchup,
            Some(c) => Catchup::parse(c).unwrap_or_else(|m| {
                problem("catchup", m);
                Catchup::Skip
            }),
        };
        let max_catchup_runs = match self.max_catchup_runs {
            None => DEFAULT_MAX_CATCHUP_RUNS,
            Some(n) => check_max_runs(n).unwrap_or_else(|m| {
                problem("max_catchup_runs", m);
                DEFAULT_MAX_CATCHUP_RUNS
            }),
        };
        let schedule = match fields.validate() {
            Ok(s) => s,
            Err(problems) => {
                errors.extend(problems.into_iter().map(Problem::from));
                None
            }
        };
        match (
            name,
            source_type,
            source_path,
            format_type,
            destination_table,
        ) {
            (
                Some(name),
                Some(source_type),
                Some(source_path),
                Some(format_type),
                Some(destination_table),
            ) if errors.is_empty() => Ok(Valid {
                name,
                description: self.description,
                status,
                source_type,
                source_path,
                format_type,
                destination_table,
                options,
                schedule,
                fields,
                catchup,
                max_catchup_runs,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            name: Some("events".into()),
            source_type: Some("s3".into()),
            source_path: Some("s3://bucket-one/logs/".into()),
            format_type: Some("json".into()),
            destination_table: Some("analytics.events".into()),
            ..Draft::default()
        }
    }

    #[test]
    fn a_nul_character_is_refused_naming_its_field() {
        assert!(draft().validate(&Bounds::default()).is_ok());
        let mut d = draft();
        d.description = Some("before\0after".into());
        d.options = Some(serde_json::json!({"glob": "a\0b"}));
        let fields: Vec<String> = d
            .validate(&Bounds::default())
            .expect_err("refused")
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert!(fields.contains(&"description".to_owned()), "{fields:?}");
        assert!(fields.contains(&"options.glob".to_owned()), "{fields:?}");
    }

    #[test]
    fn the_catchup_policy_defaults_from_the_operator_and_names_its_fields() {
        let coalescing = Bounds::default();
        let v = draft().validate(&coalescing).expect("valid");
        assert_eq!((v.catchup, v.max_catchup_runs), (Catchup::Skip, 100));
        let each = Bounds {
            default_catchup: Catchup::All,
            ..Bounds::default()
        };
        assert_eq!(
            draft().validate(&each).expect("valid").catchup,
            Catchup::All
        );
        let mut d = draft();
        d.catchup = Some("once".into());
        d.max_catchup_runs = Some(7);
        let v = d.validate(&each).expect("valid");
        assert_eq!((v.catchup, v.max_catchup_runs), (Catchup::Once, 7));
        let mut d = draft();
        d.catchup = Some("always".into());
        d.max_catchup_runs = Some(0);
        let fields: Vec<String> = d
            .validate(&coalescing)
            .expect_err("refused")
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, vec!["catchup", "max_catchup_runs"]);
    }
}
