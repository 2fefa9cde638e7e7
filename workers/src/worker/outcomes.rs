//! Finished runs on their way to the database, and what is said about them once written.
//!
//! A run's task does not write its own outcome: it hands a [`Finished`] to the worker's loop and
//! ends, freeing its slot. The loop writes every outcome waiting when it next goes to the
//! database, together with the claim that refills the freed slots ([`autoloader::runs::lease::run_exchange`]),
//! so a batch of runs that finish together costs one statement and one commit. Batches grow by
//! themselves exactly when runs finish faster than the database commits, and a lone outcome is
//! written at once.

use tokio::sync::mpsc;
use tracing::Span;

use autoloader::runs::lease::{Lease, Outcome};

/// A run whose executor returned, waiting for its outcome to be written.
pub struct Finished {
    pub lease: Lease,
    pub outcome: Outcome,
    /// How long the executor ran, in seconds.
    pub secs: f64,
    /// The run's span (run, ingestion and tenant ids), for what is logged once it is written.
    pub span: Span,
}

/// Moves every outcome already sent into `batch` without waiting; returns how many it moved.
pub fn take_ready(rx: &mut mpsc::UnboundedReceiver<Finished>, batch: &mut Vec<Finished>) -> usize {
    let before = batch.len();
    while let Ok(f) = rx.try_recv() {
        batch.push(f);
    }
    batch.len() - before
}

/// Logs and counts one written (or refused, or failed) outcome, inside the run's span.
/// `recorded`: `Ok(true)` written, `Ok(false)` the lease was gone and nothing was written,
/// `Err` the statement failed (the run's lease runs out and the run is retried elsewhere).
pub fn report(f: &Finished, recorded: Result<bool, &str>) {
    let _entered = f.span.enter();
    let status = match f.outcome {
        Outcome::Success(_) => "success",
        Outcome::Failure(_) => "failed",
    };
    match recorded {
        Ok(true) => {
            match &f.outcome {
                Outcome::Success(out) => {
                    let count = |n: i64| u64::try_from(n).unwrap_or(0);
                    metrics::counter!("autoloader_files_loaded_total")
                        .increment(count(out.files_processed));
                    metrics::counter!("autoloader_rows_loaded_total")
                        .increment(count(out.rows_ingested));
                    metrics::counter!("autoloader_bytes_read_total")
                        .increment(count(out.bytes_read));
                    metrics::counter!("autoloader_bytes_written_total")
                        .increment(count(out.bytes_written));
                    tracing::info!(
                        duration_s = f.secs,
                        files = out.files_processed,
                        rows = out.rows_ingested,
                        bytes = out.bytes_read,
                        "run succeeded"
                    )
                }
                Outcome::Failure(e) => {
                    tracing::warn!(duration_s = f.secs, error = %e, outcome = status, "run failed")
                }
            }
            metrics::counter!("autoloader_scheduled_executions_total", "status" => status)
                .increment(1);
        }
        Ok(false) => super::lease_lost("recording the outcome"),
        Err(e) => {
            tracing::error!(error = %e, outcome = status, "cannot record the run's outcome");
        }
    }
}
