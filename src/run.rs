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
//!   ticker ──▶ SKIPPED   a tick fell while a run of the ingestion was QUEUED or RUNNING
//!   ticker ──▶ MISSED    ticks later than the misfire grace time (one row per schedule)
//! ```
//!
//! SKIPPED and MISSED rows are born terminal: they record a tick that did not run, so the run
//! table holds one row for every tick of every schedule. The database enforces the parts of this
//! that several processes race on (see `migrations/`); this module names the states and the legal
//! moves between them for the code and the tests.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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

    /// The moves the engine makes. Anything else is a bug, and the SQL that moves a run names
    /// the state it expects in its `where` clause so a lost race changes nothing.
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

impl fmt::Display for TriggeredBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
