//! The seam between the scheduling engine and the work a run does.
//!
//! The engine claims a run, holds its lease and records its outcome; an [`Executor`] does the
//! work. The executor gets everything it needs in a [`RunContext`], including a cancellation
//! token that fires when the run's lease is lost or the worker is shutting down: after that,
//! nothing the executor returns is recorded, so it should stop as soon as it can.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use autoloader::ingestions::Definition;
use autoloader::runs::lease::ClaimedIngestion;
pub use autoloader::runs::lease::RunOutput;
use autoloader::runs::{RunKind, TriggeredBy};

/// The ingestion a run belongs to, as it was when the run was claimed, its definition parsed.
#[derive(Debug, Clone)]
pub struct IngestionSpec {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub definition: Definition,
    /// The tenant's Iceberg namespace root: the run's table is
    /// `<tenant_namespace>.<destination_table>`.
    pub tenant_namespace: String,
    /// The directories the tenant's local sources may read (each still checked against the
    /// operator's `AUTOLOADER_FILE_ROOTS` when the run opens its source).
    pub tenant_file_roots: Vec<String>,
}

impl IngestionSpec {
    /// Parses the claimed row. A definition that does not parse (a person changed it at psql)
    /// fails the run, saying why.
    pub fn parse(claimed: &ClaimedIngestion) -> Result<IngestionSpec, ExecError> {
        let definition = Definition::parse(
            &claimed.source_type,
            &claimed.source_path,
            &claimed.format_type,
            &claimed.destination_table,
            &claimed.options,
        )
        .map_err(|e| ExecError::Permanent(format!("the stored definition is invalid: {e}")))?;
        Ok(IngestionSpec {
            id: claimed.id,
            tenant_id: claimed.tenant_id,
            name: claimed.name.clone(),
            description: claimed.description.clone(),
            definition,
            tenant_namespace: claimed.tenant_namespace.clone(),
            tenant_file_roots: claimed.tenant_file_roots.clone(),
        })
    }
}

/// Everything an executor knows about the run it executes.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: Uuid,
    /// 1 for the first execution; higher after a lost lease or a retry.
    pub attempt: i32,
    /// The worker holding the run's lease: with `run_id` and `attempt`, it fences every write
    /// the executor makes on the run's behalf.
    pub worker_id: String,
    pub triggered_by: TriggeredBy,
    /// A load of new files, or a kind of maintenance of `maintained_table`.
    pub kind: RunKind,
    /// The Iceberg table (`namespace.table`) a maintenance run works on; `None` for loads.
    pub maintained_table: Option<String>,
    /// The nominal tick; `None` for manual runs.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The data interval: from the schedule's previous tick (if any) to this one.
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub ingestion: IngestionSpec,
    /// Fires when the lease is lost or the worker gives the run back at shutdown.
    pub cancel: CancellationToken,
}

/// Why a run failed. Transient errors may be retried (when retries are configured); permanent
/// ones never are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

pub type ExecFuture<'a> = Pin<Box<dyn Future<Output = Result<RunOutput, ExecError>> + Send + 'a>>;

/// Executes runs. Implementations must be cheap to share: one instance serves every run of a
/// worker process concurrently.
pub trait Executor: Send + Sync + 'static {
    fn execute(&self, ctx: RunContext) -> ExecFuture<'_>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(options: serde_json::Value, destination: &str) -> ClaimedIngestion {
        ClaimedIngestion {
            id: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            name: "events".into(),
            description: None,
            source_type: "s3".into(),
            source_path: "s3://bucket-one/logs/".into(),
            format_type: "csv".into(),
            destination_table: destination.into(),
            options,
            tenant_namespace: "acme".into(),
            tenant_file_roots: Vec::new(),
        }
    }

    #[test]
    fn the_loader_gets_the_definition_parsed() {
        let spec = IngestionSpec::parse(&claimed(
            serde_json::json!({"csv_delimiter": ";", "max_files_per_run": 5}),
            "analytics.events",
        ))
        .expect("a stored definition the API accepted parses");
        let d = &spec.definition;
        assert_eq!(d.destination_table.to_string(), "analytics.events");
        assert_eq!(d.options.csv.delimiter, b';');
        assert_eq!(d.options.max_files_per_run, 5);
    }

    #[test]
    fn a_definition_broken_at_psql_fails_the_run_saying_why() {
        for (options, destination, needle) in [
            (
                serde_json::json!({"no_such_option": 1}),
                "analytics.events",
                "no_such_option",
            ),
            (serde_json::json!({}), "not a table", "destination"),
        ] {
            match IngestionSpec::parse(&claimed(options, destination)) {
                Err(ExecError::Permanent(msg)) => {
                    assert!(msg.starts_with("the stored definition is invalid"), "{msg}");
                    assert!(msg.contains(needle), "{msg}");
                }
                other => panic!("expected a permanent failure, got {other:?}"),
            }
        }
    }
}
