//! Folding finished loads into the `run_stats` hour buckets ahead of the retention, so that a
//! statistics read ([`crate::runs::stats`]) aggregates about a day of live runs plus hour
//! buckets, however long its window. The sweep that calls this is
//! `autoloader_worker::retention`.
//!
//! Which loads are folded is a function of the row and the ingestion's watermark
//! (`run_stats_folds.folded_before`, migration 20261130000023):
//!
//! ```text
//! folded(r) <=> r.kind = 'load' and t(r) < folded_before and not late(r)
//! t(r)       = coalesce(scheduled_for, queued_at)
//! late(r)   <=> queued_at - scheduled_for > 1 day
//! ```
//!
//! Invariants:
//! - a step moves an ingestion's watermark forward to at most [`LIVE`] before now, rounded down
//!   to the UTC hour, never past the hour of its queued or running load (not late), and by at
//!   most a day past its next load: so every load that becomes folded is finished, and a step
//!   folds at most a day of one ingestion's loads;
//! - the loads that become folded are added to their buckets and the watermark is moved in one
//!   statement, one transaction: a crash leaves both or neither;
//! - the step holds the advisory transaction lock `run_stats_lock()`, as the run retention does,
//!   and reads the watermarks after taking it: two workers folding at once, or a fold racing the
//!   retention, take turns and never add a load twice;
//! - a load written later for a tick before the watermark is written over a day after its tick
//!   (the watermark trails now by more than a day), so it is late: read live, never folded here,
//!   folded by the retention when it deletes it.

use sqlx::PgPool;
use uuid::Uuid;

/// How far behind now the watermark stays at least (then rounded down to the hour): a day, the
/// lateness from which a row is read live below the watermark, and an hour for a transaction
/// that wrote a load on time and commits late.
pub const LIVE: chrono::TimeDelta = chrono::TimeDelta::hours(25);

/// One statement of the fold: what it did to a batch of ingestions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldBatch {
    /// The greatest ingestion id of the batch; `None` when no ingestion after the cursor is
    /// behind.
    pub last: Option<Uuid>,
    /// Ingestions of the batch.
    pub picked: i64,
    /// Ingestions whose watermark moved but is still short of the target: the same batch has
    /// more to fold.
    pub behind: i64,
    /// Loads folded.
    pub runs: i64,
}

/// Moves the fold watermark of up to `limit` ingestions with ids after `after` (in id order) one
/// step forward, adding the loads that become folded to their hour buckets; one transaction.
pub async fn run_stats_fold(
    pool: &PgPool,
    after: Uuid,
    limit: i64,
) -> Result<FoldBatch, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("select pg_advisory_xact_lock(run_stats_lock())")
        .execute(&mut *tx)
        .await?;
    // `target` is the hour the watermarks move to. For each ingestion of the batch the step ends
    // at the least of the target, a day past the hour of its next load at or after its
    // watermark (gaps are skipped in one step), and the hour of its active load that is not
    // late (a finished run is final; an active one is not). The loads between the old and new
    // watermark, not late, are read through runs_one_per_tick and runs_manual_history and
    // folded as the retention folds (src/runs/retention.rs): grouped by bucket first, as one
    // upsert may not touch a row twice.
    let row = sqlx::query!(
        r#"
        with target as (
            select to_timestamp(floor(extract(epoch from now() - make_interval(secs => $3::bigint))
                                      / 3600) * 3600) as at
        ),
        pick as (
            select i.id, i.tenant_id, coalesce(f.folded_before, '-infinity') as old
            from ingestions i
            left join run_stats_folds f on f.ingestion_id = i.id
            cross join target
            where i.id > $1 and coalesce(f.folded_before, '-infinity') < target.at
            order by i.id
            limit $2
        ),
        step as (
            select p.id, p.tenant_id, p.old,
                   least(target.at,
                         to_timestamp(floor(extract(epoch from n.next_at) / 3600) * 3600)
                             + interval '1 day',
                         to_timestamp(floor(extract(epoch from a.active_at) / 3600) * 3600)) as new
            from pick p
            cross join target
            cross join lateral (
                select least(
                    (select min(r.scheduled_for) from runs r
                     where r.ingestion_id = p.id and r.scheduled_for >= p.old),
                    (select min(r.queued_at) from runs r
                     where r.ingestion_id = p.id and r.scheduled_for is null
                       and r.status not in ('QUEUED', 'RUNNING') and r.queued_at >= p.old)
                ) as next_at
            ) n
            left join lateral (
                select coalesce(r.scheduled_for, r.queued_at) as active_at
                from runs r
                where r.ingestion_id = p.id and r.kind = 'load'
                  and r.status in ('QUEUED', 'RUNNING')
                  and not coalesce(r.queued_at - r.scheduled_for > interval '1 day', false)
            ) a on true
        ),
        moved as (
            select s.id, s.tenant_id, s.old, s.new from step s where s.new > s.old
        ),
        facts as (
            select r.id, m.id as ingestion_id, m.tenant_id, r.status, r.finished_at,
                   r.files_processed, r.rows_ingested, r.bytes_read,
                   to_timestamp(floor(extract(epoch from coalesce(r.scheduled_for, r.queued_at))
                                      / 3600) * 3600) as hour_start,
                   case when r.status in ('SUCCESS', 'FAILED') and r.started_at is not null
                        then greatest(0, extract(epoch from r.finished_at - r.started_at)::float8 * 1000)
                   end as duration_ms,
                   case when r.status in ('SUCCESS', 'FAILED') and r.started_at is not null
                             and r.scheduled_for is not null
                        then greatest(0, extract(epoch from r.started_at - r.scheduled_for)::float8 * 1000)
                   end as lateness_ms
            from moved m
            cross join lateral (
                select r.id, r.status, r.scheduled_for, r.queued_at, r.started_at, r.finished_at,
                       r.files_processed, r.rows_ingested, r.bytes_read
                from runs r
                where r.ingestion_id = m.id and r.kind = 'load'
                  and r.scheduled_for >= m.old and r.scheduled_for < m.new
                  and r.status not in ('QUEUED', 'RUNNING')
                  and not r.queued_at - r.scheduled_for > interval '1 day'
                union all
                select r.id, r.status, r.scheduled_for, r.queued_at, r.started_at, r.finished_at,
                       r.files_processed, r.rows_ingested, r.bytes_read
                from runs r
                where r.ingestion_id = m.id and r.kind = 'load' and r.scheduled_for is null
                  and r.status not in ('QUEUED', 'RUNNING')
                  and r.queued_at >= m.old and r.queued_at < m.new
            ) r
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
                   (array_agg(f.id order by f.finished_at desc, f.id desc) filter (where f.status = 'SUCCESS'))[1],
                   max(f.finished_at) filter (where f.status = 'FAILED'),
                   (array_agg(f.id order by f.finished_at desc, f.id desc) filter (where f.status = 'FAILED'))[1]
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
        ),
        marked as (
            insert into run_stats_folds (ingestion_id, tenant_id, folded_before)
            select m.id, m.tenant_id, m.new from moved m
            on conflict (ingestion_id) do update
                set folded_before = excluded.folded_before, folded_at = now()
            returning 1
        )
        select (select max(p.id::text)::uuid from pick p) as last,
               (select count(*) from pick) as "picked!",
               (select count(*) from moved m, target where m.new < target.at) as "behind!",
               (select count(*) from facts) as "runs!"
        "#,
        after,
        limit,
        LIVE.num_seconds(),
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(FoldBatch {
        last: row.last,
        picked: row.picked,
        behind: row.behind,
        runs: row.runs,
    })
}
