//! The run state machine.
//!
//! ```text
//!                      claim                      outcome (fenced by the lease)
//!   ticker ──▶ QUEUED ───────▶ RUNNING ──────────────────────────▶ SUCCESS | FAILED
//!   manual ──▶   │ ▲              │
//!                │ └──────────────┘  lease expired with attempts left, lease given back at
//!                │                   shutdown, or a transient error with retries left
//!                │                ──▶ FAILED  lease expired with no attempts left ("worker lost")
//!                └──▶ CANCELLED   cancelled while queued
//!
//!   ticker ──▶ SKIPPED   a tick fell while a load of the ingestion was QUEUED or RUNNING
//!   ticker ──▶ MISSED    ticks later than the misfire grace time (one row per schedule)
//! ```
//!
//! SKIPPED and MISSED rows are born terminal: they record a tick that did not run, so the run
//! table holds one row for every tick of every schedule.
//!
//! This module is the one home of the run table: every statement on `runs` is in it or its
//! submodules, and each move of the state machine is one function:
//!
//! | move | function |
//! |---|---|
//! | (new) → QUEUED, SKIPPED, MISSED | [`scheduled::runs_insert_queued`], [`scheduled::runs_insert_skipped`], [`scheduled::runs_insert_missed`] (the ticker) |
//! | (new) → QUEUED | [`history::run_insert_manual`] (a manual trigger), [`maintenance::maintenance_queue`], [`maintenance::maintenance_plan`] (maintenance runs) |
//! | QUEUED → CANCELLED | [`history::run_cancel`] |
//! | QUEUED → RUNNING, RUNNING → SUCCESS / FAILED / QUEUED | [`lease`] |
//! | (finished) → deleted | [`retention::runs_prune`] |
//! | (finished) → counted in `run_stats` | the trigger `runs_stats_count`; read by [`stats::run_stats_read`] |
//!
//! [`RunStatus::can_become`] names the legal moves; PostgreSQL enforces the same list (the
//! trigger `runs_status_transition`, migration 0010), so neither a code path nor a person at a
//! psql prompt can make another. The partial unique index `runs_one_active_per_ingestion` and
//! `runs_one_per_tick` keep the invariants several processes race on.

pub mod dashboard;
pub mod history;
pub mod lease;
pub mod maintenance;
pub mod retention;
pub mod scheduled;
pub mod stats;
pub mod totals;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a run is in its life. Stored as upper-case text in `runs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    Queued,
    Running,
    Success,
    Failed,
    Skipped,
    Missed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Success,
        RunStatus::Failed,
        RunStatus::Skipped,
        RunStatus::Missed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "QUEUED",
            RunStatus::Running => "RUNNING",
            RunStatus::Success => "SUCCESS",
            RunStatus::Failed => "FAILED",
            RunStatus::Skipped => "SKIPPED",
            RunStatus::Missed => "MISSED",
            RunStatus::Cancelled => "CANCELLED",
        }
    }

    /// QUEUED and RUNNING: the states of which an ingestion may have at most one.
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    pub fn is_terminal(self) -> bool {
        !self.is_active()
    }

    /// The moves the engine makes, and the only ones PostgreSQL lets through (the trigger
    /// `runs_status_transition` holds the same list; `tests/tests/run_states.rs` checks both
    /// agree). The SQL that moves a run also names the state it expects in its `where` clause,
    /// so a lost race changes nothing.
    pub fn can_become(self, next: RunStatus) -> bool {
        use RunStatus::*;
        matches!(
            (self, next),
            (Queued, Running)
                | (Queued, Cancelled)
                | (Running, Success)
                | (Running, Failed)
                | (Running, Queued)
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown run status '{0}' (expected one of QUEUED, RUNNING, SUCCESS, FAILED, SKIPPED, MISSED, CANCELLED)")]
pub struct UnknownStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// What created a run. Stored as lower-case text in `runs.triggered_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggeredBy {
    Scheduler,
    Manual,
    Retry,
    Backfill,
}

impl TriggeredBy {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggeredBy::Scheduler => "scheduler",
            TriggeredBy::Manual => "manual",
            TriggeredBy::Retry => "retry",
            TriggeredBy::Backfill => "backfill",
        }
    }
}

impl FromStr for TriggeredBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scheduler" => Ok(TriggeredBy::Scheduler),
            "manual" => Ok(TriggeredBy::Manual),
            "retry" => Ok(TriggeredBy::Retry),
            "backfill" => Ok(TriggeredBy::Backfill),
            other => Err(format!("unknown trigger '{other}'")),
        }
    }
}

impl fmt::Display for TriggeredBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run does. Stored as lower-case text in `runs.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// New files of the source into the table: every scheduled and manual run of an ingestion.
    Load,
    /// Rewrite the table's small data files into files near the target size.
    Compact,
    /// Expire old snapshots and delete the files only they referenced.
    ExpireSnapshots,
    /// Delete files under the table's location that no snapshot references.
    RemoveOrphans,
}

impl RunKind {
    pub const MAINTENANCE: [RunKind; 3] = [
        RunKind::Compact,
        RunKind::ExpireSnapshots,
        RunKind::RemoveOrphans,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Load => "load",
            RunKind::Compact => "compact",
            RunKind::ExpireSnapshots => "expire_snapshots",
            RunKind::RemoveOrphans => "remove_orphans",
        }
    }

    pub fn is_maintenance(self) -> bool {
        self != RunKind::Load
    }
}

impl FromStr for RunKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [RunKind::Load]
            .into_iter()
            .chain(RunKind::MAINTENANCE)
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown run kind '{s}'"))
    }
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run as stored, as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub ingestion_id: Uuid,
    pub triggered_by: String,
    pub status: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempt: i32,
    pub worker_id: Option<String>,
    pub error: Option<String>,
    pub reason: Option<String>,
    pub files_processed: i64,
    pub rows_ingested: i64,
    pub bytes_read: i64,
    pub bytes_written: i64,
    pub snapshot_id: Option<i64>,
    /// Files the run did not load because of bad content (`on_error = skip_file`).
    pub files_rejected: i64,
    /// Records the run dropped (`on_error = skip_record`).
    pub records_rejected: i64,
    /// The first rejected records, as the worker wrote them: null, or an array of at most 20
    /// `{"file", "record", "column", "reason"}` objects.
    pub rejected_records: Option<serde_json::Value>,
    /// `load`, or the kind of maintenance.
    pub kind: String,
    /// The table a maintenance run works on; null for loads.
    pub maintained_table: Option<String>,
    /// What a maintenance run did; null for loads.
    pub maintenance: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_stored_text() {
        for st in RunStatus::ALL {
            assert_eq!(st.as_str().parse::<RunStatus>(), Ok(st));
            assert_eq!(
                serde_json::to_string(&st).expect("serialises"),
                format!("\"{st}\"")
            );
        }
        assert!(
            "running".parse::<RunStatus>().is_err(),
            "stored text is upper-case only"
        );
    }

    #[test]
    fn kinds_round_trip_through_their_stored_text() {
        for k in [RunKind::Load].into_iter().chain(RunKind::MAINTENANCE) {
            assert_eq!(k.as_str().parse::<RunKind>(), Ok(k));
            assert_eq!(
                serde_json::to_string(&k).expect("serialises"),
                format!("\"{k}\"")
            );
        }
        assert!("Compact".parse::<RunKind>().is_err());
    }

    #[test]
    fn terminal_states_never_move() {
        for from in RunStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in RunStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn a_queued_run_cannot_finish_without_running() {
        assert!(!RunStatus::Queued.can_become(RunStatus::Success));
        assert!(!RunStatus::Queued.can_become(RunStatus::Failed));
        assert!(RunStatus::Queued.can_become(RunStatus::Running));
        assert!(
            RunStatus::Running.can_become(RunStatus::Queued),
            "lease recovery requeues"
        );
    }
}
