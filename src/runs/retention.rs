//! Deleting finished runs past the retention (`SCHEDULER_RUN_RETENTION_DAYS`); the sweep that
//! calls this, and why it is safe, is `autoloader_worker::retention`.
//!
//! Only finished runs go (`finished_at` set: SUCCESS, FAILED, SKIPPED, MISSED, CANCELLED), never a
//! queued or running one, however old. Runs whose ids are not UUIDv7 (written by hand) are not
//! pruned: the statement reads the primary key's old end only.
//!
//! The loads deleted that the fold ([`crate::runs::fold`]) has not folded already are folded, in
//! the same statement, into their ingestion's `run_stats` hour bucket (the hour of the tick, or
//! of `queued_at` for a manual run): a load is either unfolded in `runs` or in `run_stats`,
//! never both and never neither, so the statistics ([`crate::runs::stats`]) do not change when
//! runs are pruned. The statement runs under the fold's advisory lock (`run_stats_lock()`) and
//! reads the fold watermarks after taking it, so a fold committing meanwhile is seen whole.

use sqlx::PgPool;

/// Deletes up to `limit` runs that finished more than `days` days ago, folding the loads among
/// them into `run_stats`; returns how many runs were deleted.
pub async fn runs_prune(pool: &PgPool, days: i32, limit: i64) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("select pg_advisory_xact_lock(run_stats_lock())")
        .execute(&mut *tx)
        .await?;
    // The id bound only narrows the scan to the primary key's old end: a run finished before the
    // cutoff was made before it (`uuid_v7_floor`, migration 0009). `finished_at` decides (null
    // while a run is queued or running). A data-modifying CTE runs once whether or not the outer
    // select reads it; the fold groups by bucket first, as one upsert may not touch a row twice.
    // A load the fold folded (below its ingestion's watermark and not late: migration
    // 20261130000023) is deleted and not added again.
    let done = sqlx::query_scalar!(
        r#"
        with cutoff as (select now() - make_interval(days => $1) as at),
        doomed as (
            select r.id from runs r, cutoff
            where r.id < uuid_v7_floor(cutoff.at)
              and r.finished_at < cutoff.at
            order by r.id
            limit $2
            for update of r skip locked
        ),
        gone as (
            delete from runs r using doomed d where r.id = d.id
            returning r.id, r.ingestion_id, r.tenant_id, r.kind, r.status, r.scheduled_for,
                      r.queued_at, r.started_at, r.finished_at, r.files_processed,
                      r.rows_ingested, r.bytes_read
        ),
        facts as (
            select g.*,
                   to_timestamp(floor(extract(epoch from coalesce(g.scheduled_for, g.queued_at))
                                      / 3600) * 3600) as hour_start,
                   case when g.status in ('SUCCESS', 'FAILED') and g.started_at is not null
                        then greatest(0, extract(epoch from g.finished_at - g.started_at)::float8 * 1000)
                   end as duration_ms,
                   case when g.status in ('SUCCESS', 'FAILED') and g.started_at is not null
                             and g.scheduled_for is not null
                        then greatest(0, extract(epoch from g.started_at - g.scheduled_for)::float8 * 1000)
                   end as lateness_ms
            from gone g
            left join run_stats_folds w on w.ingestion_id = g.ingestion_id
            where g.kind = 'load'
              and not (coalesce(g.scheduled_for, g.queued_at) < coalesce(w.folded_before, '-infinity')
                       and not coalesce(g.queued_at - g.scheduled_for > interval '1 day', false))
        ),
        folded as (
            insert into run_stats as s (
                ingestion_id, tenant_id, hour_start,
                succeeded, failed, cancelled, skipped, missed,
                files_loaded, rows_loaded, bytes_loaded,
                duration_count, duration_sum_ms, duration_max_ms, duration_hist,
                lateness_count, lateness_sum_ms, lateness_max_ms, lateness_hist,
                last_success_at, last_success_run, last_failure_at, last_failure_run)
            select f.ingestion_id, f.tenant_id, f.hour_start,
                   count(*) filter (where f.status = 'SUCCESS'),
                   count(*) filter (where f.status = 'FAILED'),
                   count(*) filter (where f.status = 'CANCELLED'),
                   count(*) filter (where f.status = 'SKIPPED'),
                   count(*) filter (where f.status = 'MISSED'),
                   coalesce(sum(f.files_processed) filter (where f.status = 'SUCCESS'), 0)::bigint,
                   coalesce(sum(f.rows_ingested) filter (where f.status = 'SUCCESS'), 0)::bigint,
                   coalesce(sum(f.bytes_read) filter (where f.status = 'SUCCESS'), 0)::bigint,
                   count(f.duration_ms), coalesce(sum(f.duration_ms), 0), max(f.duration_ms),
                   run_stats_hist(width_bucket(f.duration_ms, run_stats_bounds())),
                   count(f.lateness_ms), coalesce(sum(f.lateness_ms), 0), max(f.lateness_ms),
                   run_stats_hist(width_bucket(f.lateness_ms, run_stats_bounds())),
                   max(f.finished_at) filter (where f.status = 'SUCCESS'),
                   (array_agg(f.id order by f.finished_at desc) filter (where f.status = 'SUCCESS'))[1],
                   max(f.finished_at) filter (where f.status = 'FAILED'),
                   (array_agg(f.id order by f.finished_at desc) filter (where f.status = 'FAILED'))[1]
            from facts f
            group by f.ingestion_id, f.tenant_id, f.hour_start
            on conflict (ingestion_id, hour_start) do update set
                succeeded = s.succeeded + excluded.succeeded,
                failed = s.failed + excluded.failed,
                cancelled = s.cancelled + excluded.cancelled,
                skipped = s.skipped + excluded.skipped,
                missed = s.missed + excluded.missed,
                files_loaded = s.files_loaded + excluded.files_loaded,
                rows_loaded = s.rows_loaded + excluded.rows_loaded,
                bytes_loaded = s.bytes_loaded + excluded.bytes_loaded,
                duration_count = s.duration_count + excluded.duration_count,
                duration_sum_ms = s.duration_sum_ms + excluded.duration_sum_ms,
                duration_max_ms = greatest(s.duration_max_ms, excluded.duration_max_ms),
                duration_hist = run_stats_hist_add(s.duration_hist, excluded.duration_hist),
                lateness_count = s.lateness_count + excluded.lateness_count,
                lateness_sum_ms = s.lateness_sum_ms + excluded.lateness_sum_ms,
                lateness_max_ms = greatest(s.lateness_max_ms, excluded.lateness_max_ms),
                lateness_hist = run_stats_hist_add(s.lateness_hist, excluded.lateness_hist),
                last_success_run = case when excluded.last_success_at >= s.last_success_at
                                             or s.last_success_at is null
                                        then excluded.last_success_run else s.last_success_run end,
                last_success_at = greatest(s.last_success_at, excluded.last_success_at),
                last_failure_run = case when excluded.last_failure_at >= s.last_failure_at
                                             or s.last_failure_at is null
                                        then excluded.last_failure_run else s.last_failure_run end,
                last_failure_at = greatest(s.last_failure_at, excluded.last_failure_at)
            returning 1
        )
        select count(*) as "deleted!" from gone
        "#,
        days,
        limit
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(u64::try_from(done).unwrap_or(0))
}
