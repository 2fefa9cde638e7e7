//! Run retention: with `SCHEDULER_RUN_RETENTION_DAYS` set, finished runs older than that many days
//! are deleted, so the run table does not grow without end. Unset, every run is kept.
//!
//! Only finished runs go (`finished_at` set: SUCCESS, FAILED, SKIPPED, MISSED, CANCELLED), never a
//! queued or running one, however old. The ledger of loaded files (`loaded_files`) keeps its rows:
//! it names the run that loaded each file but does not depend on it, so a pruned run never makes
//! a file look new. An API process that had counted a pruned run for `/metrics` keeps counting
//! it; one started later does not. Runs whose ids are not UUIDv7 (written by hand) are not pruned.
//! Each batch folds the loads it deletes into `run_stats` in the same statement
//! (`autoloader::runs::retention::runs_prune`), so an ingestion's statistics do not change.
//!
//! The retention must be longer than `SCHEDULER_MISFIRE_GRACE_TIME` (checked at start): the row of
//! a pruned tick no longer stops a ticker from materialising that tick again, and only ticks
//! within the grace time are ever run late.
//!
//! Every worker process sweeps when it starts and then hourly; concurrent sweeps skip each
//! other's rows (`for update skip locked`). A sweep deletes in batches, one commit each, oldest run ids
//! (UUIDv7: creation time) first, reading the primary key from its left edge.
//!
//! The same sweep, whether or not runs are kept for ever, first folds the finished loads more than
//! a day old into the `run_stats` hour buckets ([`fold_stats`], `autoloader::runs::fold`), so a
//! statistics read aggregates about a day of live runs whatever its window; the retention then
//! deletes folded runs without adding them again. It also deletes dry runs an hour past their
//! deadline ([`DRY_RUN_RETENTION`]): their answers hold sample rows of tenants' files, read once
//! by whoever asked.

use std::time::Duration;

use autoloader::dry_runs::dry_runs_prune;
use autoloader::runs::fold::run_stats_fold;
use autoloader::runs::retention::runs_prune;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Runs one statement deletes at most.
const BATCH: i64 = 5_000;
/// Time between sweeps of one process.
const EVERY: Duration = Duration::from_secs(3600);
/// Time before a failed sweep is tried again.
const RETRY: Duration = Duration::from_secs(60);
/// Pause between two batches of one sweep.
const PAUSE: Duration = Duration::from_millis(50);

/// Deletes every run that finished more than `days` days ago, `limit` per commit, pausing
/// between batches so that a large backlog does not crowd out claims. Stops early when `stop`
/// fires; returns how many runs were deleted.
pub async fn prune(
    pool: &PgPool,
    days: i32,
    limit: i64,
    stop: &CancellationToken,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    while !stop.is_cancelled() {
        let n = runs_prune(pool, days, limit).await?;
        total += n;
        metrics::counter!("autoloader_runs_pruned_total").increment(n);
        if n < u64::try_from(limit).unwrap_or(u64::MAX) {
            break;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(PAUSE) => {}
        }
    }
    Ok(total)
}

/// Ingestions one fold statement moves forward (each by at most a day of its loads).
pub const FOLD_BATCH: i64 = 20;
/// Fold statements one sweep runs at most: a first sweep over 30 days of 10,000 ingestions
/// takes several sweeps; the read is correct whatever the watermarks are.
pub const FOLD_STATEMENTS: u32 = 20_000;

/// Folds the finished loads more than a day old of every ingestion into `run_stats`,
/// [`FOLD_BATCH`] ingestions a statement and commit, in id order, pausing between statements;
/// at most [`FOLD_STATEMENTS`] statements. Stops early when `stop` fires. Returns how many loads
/// were folded. Another process folding at the same time takes turns with this one
/// (`run_stats_lock()`) and finds nothing folded twice.
pub async fn fold_stats(pool: &PgPool, stop: &CancellationToken) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    let mut after = Uuid::nil();
    for _ in 0..FOLD_STATEMENTS {
        if stop.is_cancelled() {
            break;
        }
        let batch = run_stats_fold(pool, after, FOLD_BATCH).await?;
        total += u64::try_from(batch.runs).unwrap_or(0);
        if batch.behind == 0 {
            match batch.last {
                Some(last) if batch.picked >= FOLD_BATCH => after = last,
                _ => break,
            }
        }
        if batch.runs > 0 {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(PAUSE) => {}
            }
        }
    }
    metrics::counter!("autoloader_runs_folded_total").increment(total);
    Ok(total)
}

/// How long a dry run's row is kept past its deadline.
pub const DRY_RUN_RETENTION: Duration = Duration::from_secs(3600);

/// Deletes every dry run more than [`DRY_RUN_RETENTION`] past its deadline, [`BATCH`] per
/// commit; returns how many.
pub async fn prune_dry_runs(pool: &PgPool, stop: &CancellationToken) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    while !stop.is_cancelled() {
        let n = dry_runs_prune(pool, DRY_RUN_RETENTION, BATCH).await?;
        total += n;
        if n < u64::try_from(BATCH).unwrap_or(u64::MAX) {
            break;
        }
    }
    Ok(total)
}

/// Sweeps at start and then every hour until `shutdown` fires; a sweep that failed is tried
/// again after a minute. Runs are pruned only with a retention (`days`); dry runs always.
pub async fn run(pool: PgPool, days: Option<u32>, shutdown: CancellationToken) {
    let days = days.map(|d| i32::try_from(d).unwrap_or(i32::MAX));
    if let Some(days) = days {
        tracing::info!(retention_days = days, "run retention on");
    }
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        match prune_dry_runs(&pool, &shutdown).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(dry_runs = n, "pruned old dry runs"),
            Err(e) => tracing::warn!(error = %e, "pruning dry runs failed"),
        }
        match fold_stats(&pool, &shutdown).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "folded finished loads into the run statistics"),
            Err(e) => tracing::warn!(error = %e, "folding the run statistics failed"),
        }
        let Some(days) = days else {
            wait = EVERY;
            continue;
        };
        wait = match prune(&pool, days, BATCH, &shutdown).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(
                        runs = n,
                        retention_days = days,
                        "pruned finished runs past retention"
                    );
                }
                EVERY
            }
            Err(e) => {
                tracing::warn!(error = %e, "run retention sweep failed; trying again in a minute");
                RETRY
            }
        };
    }
}
