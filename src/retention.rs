//! Run retention: with `SCHEDULER_RUN_RETENTION_DAYS` set, finished runs older than that many days
//! are deleted, so the run table does not grow without end. Unset, every run is kept.
//!
//! Only finished runs go (`finished_at` set: SUCCESS, FAILED, SKIPPED, MISSED, CANCELLED), never a
//! queued or running one, however old. The ledger of loaded files (`loaded_files`) keeps its rows:
//! it names the run that loaded each file but does not depend on it, so a pruned run never makes
//! a file look new. Counters already reported by `/metrics` keep the pruned runs.
//!
//! Every worker process sweeps when it starts and then hourly; concurrent sweeps skip each
//! other's rows (`for update skip locked`). A sweep deletes in batches, one commit each, oldest run ids
//! (UUIDv7: creation time) first, reading the primary key from its left edge.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Runs one statement deletes at most.
const BATCH: i64 = 5_000;
/// Time between sweeps of one process.
const EVERY: Duration = Duration::from_secs(3600);

/// Deletes up to `limit` runs that finished more than `days` days ago; returns how many.
pub async fn prune_batch(pool: &PgPool, days: i32, limit: i64) -> Result<u64, sqlx::Error> {
    // The id bound only narrows the scan to the primary key's old end: a run finished before the
    // cutoff was made before it, and a UUIDv7's first 48 bits are its creation time in ms.
    // `finished_at` decides (null while a run is queued or running).
    let done = sqlx::query!(
        r#"
        with cutoff as (select now() - make_interval(days => $1) as at),
        doomed as (
            select r.id from runs r, cutoff
            where r.id < (lpad(to_hex((extract(epoch from cutoff.at) * 1000)::bigint), 12, '0')
                          || '70008000000000000000')::uuid
              and r.finished_at < cutoff.at
            order by r.id
            limit $2
            for update of r skip locked
        )
        delete from runs r using doomed d where r.id = d.id
        "#,
        days,
        limit
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes every run that finished more than `days` days ago, `limit` per commit.
pub async fn prune(pool: &PgPool, days: i32, limit: i64) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let n = prune_batch(pool, days, limit).await?;
        total += n;
        if n < u64::try_from(limit).unwrap_or(u64::MAX) {
            return Ok(total);
        }
    }
}

/// Sweeps at start and then every hour until `shutdown` fires.
pub async fn run(pool: PgPool, days: u32, shutdown: CancellationToken) {
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    tracing::info!(retention_days = days, "run retention on");
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        // Batch by batch, so that a long first sweep does not hold up a shutdown.
        let mut pruned = 0;
        while !shutdown.is_cancelled() {
            match prune_batch(&pool, days, BATCH).await {
                Ok(n) => {
                    pruned += n;
                    metrics::counter!("autoloader_runs_pruned_total").increment(n);
                    if n < BATCH as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "run retention sweep failed; next sweep in an hour");
                    break;
                }
            }
        }
        if pruned > 0 {
            tracing::info!(
                runs = pruned,
                retention_days = days,
                "pruned finished runs past retention"
            );
        }
    }
}
