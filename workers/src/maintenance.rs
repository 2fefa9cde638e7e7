//! The maintenance scheduler: in every process that runs a ticker, a pass at least every minute
//! queues the maintenance runs that tables are due for ([`maintenance_plan`]: snapshot expiry and
//! orphan removal once per cleanup interval, compaction once per compaction interval when a table
//! has enough small files). Workers then claim them like any run. Any number of processes may plan
//! at once: PostgreSQL keeps one maintenance run per table active.

use std::time::Duration;

use autoloader::config::MaintenanceConfig;
use autoloader::runs::maintenance::{maintenance_plan, MaintenancePolicy};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Tables one pass looks at, at most; a pass that found this many runs again at once.
const BATCH: i64 = 1_000;
/// Longest time between passes.
const EVERY: Duration = Duration::from_secs(60);
/// Time before a failed pass is tried again.
const RETRY: Duration = Duration::from_secs(10);

/// Plans until `shutdown` fires.
pub async fn run(pool: PgPool, config: MaintenanceConfig, shutdown: CancellationToken) {
    let policy = MaintenancePolicy {
        compaction_interval: config.compaction_interval,
        compact_min_files: config.compact_min_files,
        cleanup_interval: config.cleanup_interval,
        batch: BATCH,
    };
    let every = EVERY
        .min(config.compaction_interval)
        .min(config.cleanup_interval);
    tracing::info!(
        compaction_interval_s = config.compaction_interval.as_secs(),
        cleanup_interval_s = config.cleanup_interval.as_secs(),
        "table maintenance scheduler on"
    );
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = match maintenance_plan(&pool, policy).await {
            Ok(planned) => {
                for p in &planned {
                    tracing::info!(run_id = %p.run_id, table = %p.table, kind = %p.kind, "maintenance queued");
                }
                metrics::counter!("autoloader_maintenance_queued_total")
                    .increment(planned.len() as u64);
                if planned.len() as i64 >= BATCH {
                    Duration::ZERO
                } else {
                    every
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "maintenance planning failed; trying again");
                RETRY
            }
        }
    }
}
