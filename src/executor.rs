//! The seam between the scheduling engine and the work a run does.
//!
//! The engine claims a run, holds its lease and records its outcome; an [`Executor`] does the
//! work. The executor gets everything it needs in a [`RunContext`], including a cancellation
//! token that fires when the run's lease is lost or the worker is shutting down: after that,
//! nothing the executor returns is recorded, so it should stop as soon as it can.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::run::TriggeredBy;

/// The ingestion a run belongs to, as it was when the run was claimed. Its `Debug` form shows
/// the options with secrets hidden.
#[derive(Clone)]
pub struct IngestionSpec {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub source_type: String,
    pub source_path: String,
    pub format_type: String,
    pub destination_table: String,
    pub options: Value,
}

impl std::fmt::Debug for IngestionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestionSpec")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("source_type", &self.source_type)
            .field("source_path", &self.source_path)
            .field("format_type", &self.format_type)
            .field("destination_table", &self.destination_table)
            .field("options", &crate::ingestion::redact_options(&self.options))
            .finish()
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
    /// The nominal tick; `None` for manual runs.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The data interval: from the schedule's previous tick (if any) to this one.
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub ingestion: IngestionSpec,
    /// Fires when the lease is lost or the worker gives the run back at shutdown.
    pub cancel: CancellationToken,
}

/// What a successful run did, recorded in the run's row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOutput {
    pub files_processed: i64,
    pub rows_ingested: i64,
    pub bytes_read: i64,
    pub bytes_written: i64,
    /// The Iceberg snapshot the run committed; `None` when it loaded nothing.
    pub snapshot_id: Option<i64>,
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
