//! Deleting finished runs past the retention (`SCHEDULER_RUN_RETENTION_DAYS`); the sweep that
//! calls this, and why it is safe, is `autoloader_worker::retention`.
//!
//! Only finished runs go (`finished_at` set: SUCCESS, FAILED, SKIPPED, MISSED, CANCELLED), never a
//! queued or running one, however old. Runs whose ids are not UUIDv7 (written by hand) are not
//! pruned: the statement reads the primary key's old end only.

use sqlx::PgPool;

/// Deletes up to `limit` runs that finished more than `days` days ago; returns how many.
pub async fn runs_prune(pool: &PgPool, days: i32, limit: i64) -> Result<u64, sqlx::Error> {
    // The id bound only narrows the scan to the primary key's old end: a run finished before the
    // cutoff was made before it (`uuid_v7_floor`, migration 0009). `finished_at` decides (null
    // while a run is queued or running).
    let done = sqlx::query!(
        r#"
        with cutoff as (select now() - make_interval(days => $1) as at),
        doomed as (
            select r.id from runs r, cutoff
            where r.id < uuid_v7_floor(cutoff.at)
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
