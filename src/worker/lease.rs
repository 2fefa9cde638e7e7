//! The SQL of a run's lease: claim, heartbeat, outcome, give-back and rescue.
//!
//! Fencing: `(id, attempt, worker_id)` with `status = 'RUNNING'` names one lease. `attempt` only
//! grows (every claim increments it), so once a run has been requeued and claimed again, every
//! write of the earlier holder matches no row and changes nothing. Each function here that acts
//! on a held lease returns whether the lease was still held.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::types::PgInterval;
use sqlx::PgPool;
use uuid::Uuid;

use crate::executor::{IngestionSpec, RunOutput};
use crate::run::TriggeredBy;

/// A run this worker holds the lease of.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub run_id: Uuid,
    pub attempt: i32,
    pub triggered_by: TriggeredBy,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub ingestion: IngestionSpec,
}

/// A lease (attempt) of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub run_id: Uuid,
    pub attempt: i32,
}

impl Claimed {
    pub fn lease(&self) -> Lease {
        Lease {
            run_id: self.run_id,
            attempt: self.attempt,
        }
    }
}

fn interval(d: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
    }
}

fn triggered_by(s: &str) -> TriggeredBy {
    match s {
        "manual" => TriggeredBy::Manual,
        "retry" => TriggeredBy::Retry,
        "backfill" => TriggeredBy::Backfill,
        _ => TriggeredBy::Scheduler,
    }
}

/// Claims up to `limit` queued runs, oldest tick first, in one statement.
pub async fn claim_many(
    pool: &PgPool,
    worker_id: &str,
    limit: i64,
    ttl: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    // A claim need not wait for its WAL flush: if PostgreSQL crashes before the flush, the claim
    // is undone, the run is QUEUED again and this worker's later writes are fenced out, exactly as
    // if the worker had died (runs are executed at least once either way). Outcomes stay durable,
    // and their flush carries every earlier claim with it.
    // One statement, so one round trip: `set_config(.., true)` lasts for the statement's own
    // transaction, whose commit is then asynchronous.
    let rows = sqlx::query!(
        r#"
        with async_commit as (select set_config('synchronous_commit', 'off', true)),
        picked as (
            select id from runs
            where status = 'QUEUED' and (not_before is null or not_before <= now())
            order by coalesce(scheduled_for, queued_at), queued_at
            limit $1
            for update skip locked
        )
        update runs r
        set status = 'RUNNING', worker_id = $2, attempt = r.attempt + 1, started_at = now(),
            heartbeat_at = now(), lease_expires_at = now() + $3::interval, not_before = null
        from picked, ingestions i, async_commit
        where r.id = picked.id and i.id = r.ingestion_id
        returning r.id, r.attempt, r.triggered_by, r.scheduled_for, r.data_interval_start,
                  r.queued_at, r.started_at as "started_at!",
                  i.id as ingestion_id, i.tenant_id, i.name, i.source_type, i.source_path,
                  i.format_type, i.destination_table, i.options
        "#,
        limit,
        worker_id,
        interval(ttl) as PgInterval,
    )
    .fetch_all(pool)
    .await?;
    let mut claimed: Vec<Claimed> = rows
        .into_iter()
        .map(|r| Claimed {
            run_id: r.id,
            attempt: r.attempt,
            triggered_by: triggered_by(&r.triggered_by),
            scheduled_for: r.scheduled_for,
            data_interval_start: r.data_interval_start,
            queued_at: r.queued_at,
            started_at: r.started_at,
            ingestion: IngestionSpec {
                id: r.ingestion_id,
                tenant_id: r.tenant_id,
                name: r.name,
                source_type: r.source_type,
                source_path: r.source_path,
                format_type: r.format_type,
                destination_table: r.destination_table,
                options: r.options,
            },
        })
        .collect();
    // `returning` has no order; execute oldest ticks first.
    claimed.sort_by_key(|c| (c.scheduled_for.unwrap_or(c.queued_at), c.queued_at));
    Ok(claimed)
}

/// Extends the lease. `false`: the lease is gone (rescued and maybe claimed by another worker).
pub async fn heartbeat(
    pool: &PgPool,
    worker_id: &str,
    lease: Lease,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"
        update runs set heartbeat_at = now(), lease_expires_at = now() + $4::interval
        where id = $1 and attempt = $2 and worker_id = $3 and status = 'RUNNING'
        "#,
        lease.run_id,
        lease.attempt,
        worker_id,
        interval(ttl) as PgInterval,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The outcome of one run, for [`complete_many`].
#[derive(Debug, Clone)]
pub enum Outcome {
    Success(RunOutput),
    Failure(String),
}

/// Records outcomes (SUCCESS with counters, FAILED with the error) in one statement, one commit,
/// each fenced by its own lease. Returns the runs whose lease still held; the others were not
/// touched.
pub async fn complete_many(
    pool: &PgPool,
    worker_id: &str,
    outcomes: &[(Lease, Outcome)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut ids = Vec::with_capacity(outcomes.len());
    let mut attempts = Vec::with_capacity(outcomes.len());
    let mut statuses = Vec::with_capacity(outcomes.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(outcomes.len());
    let (mut files, mut rows, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut written, mut snapshots): (Vec<i64>, Vec<Option<i64>>) = (Vec::new(), Vec::new());
    for (lease, outcome) in outcomes {
        ids.push(lease.run_id);
        attempts.push(lease.attempt);
        let out = match outcome {
            Outcome::Success(out) => {
                statuses.push("SUCCESS".to_owned());
                errors.push(None);
                *out
            }
            Outcome::Failure(e) => {
                statuses.push("FAILED".to_owned());
                errors.push(Some(e.clone()));
                RunOutput::default()
            }
        };
        files.push(out.files_processed);
        rows.push(out.rows_ingested);
        bytes.push(out.bytes_read);
        written.push(out.bytes_written);
        snapshots.push(out.snapshot_id);
    }
    let applied = sqlx::query_scalar!(
        r#"
        update runs r
        set status = o.status, finished_at = now(), lease_expires_at = null, error = o.error,
            files_processed = o.files, rows_ingested = o.rows_ingested, bytes_read = o.bytes,
            bytes_written = o.written, snapshot_id = o.snapshot_id
        from unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                    $8::bigint[], $9::bigint[], $10::bigint[])
            as o(id, attempt, status, error, files, rows_ingested, bytes, written, snapshot_id)
        where r.id = o.id and r.attempt = o.attempt and r.worker_id = $1 and r.status = 'RUNNING'
        returning r.id
        "#,
        worker_id,
        &ids,
        &attempts,
        &statuses,
        &errors as &[Option<String>],
        &files,
        &rows,
        &bytes,
        &written,
        &snapshots as &[Option<i64>],
    )
    .fetch_all(pool)
    .await?;
    Ok(applied)
}

/// Puts the run back in the queue, claimable after `delay` (a retry back-off, or zero when a
/// worker gives its runs back at shutdown).
pub async fn requeue(
    pool: &PgPool,
    worker_id: &str,
    lease: Lease,
    delay: Duration,
    reason: &str,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"
        update runs set status = 'QUEUED', worker_id = null, lease_expires_at = null,
                        heartbeat_at = null, started_at = null,
                        not_before = now() + $4::interval, reason = $5, error = coalesce($6, error)
        where id = $1 and attempt = $2 and worker_id = $3 and status = 'RUNNING'
        "#,
        lease.run_id,
        lease.attempt,
        worker_id,
        interval(delay) as PgInterval,
        reason,
        error,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A run whose lease expired, as [`rescue_expired`] left it.
#[derive(Debug, Clone)]
pub struct Rescued {
    pub run_id: Uuid,
    pub ingestion_id: Uuid,
    pub tenant_id: Uuid,
    pub attempt: i32,
    /// QUEUED (requeued) or FAILED (out of attempts).
    pub status: String,
    pub lost_worker: Option<String>,
}

/// Requeues runs whose lease expired (their worker died, froze or lost the database), or fails
/// them with reason `worker lost` once `max_attempts` claims have been spent. Any process may
/// call this; `skip locked` keeps two callers from rescuing the same run.
pub async fn rescue_expired(
    pool: &PgPool,
    max_attempts: i32,
    limit: i64,
) -> Result<Vec<Rescued>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"
        with expired as (
            select id, worker_id as lost_worker, lease_expires_at as expired_at from runs
            where status = 'RUNNING' and lease_expires_at < now()
            order by lease_expires_at
            limit $2
            for update skip locked
        )
        update runs r
        set status = case when r.attempt >= $1 then 'FAILED' else 'QUEUED' end,
            finished_at = case when r.attempt >= $1 then now() end,
            error = case when r.attempt >= $1
                         then 'worker lost: ' || e.lost_worker || ' stopped renewing its lease (attempt '
                              || r.attempt || ' of ' || $1 || ')'
                         else r.error end,
            reason = case when r.attempt >= $1 then 'worker lost'
                          else 'requeued: worker ' || e.lost_worker || ' lost its lease at '
                               || to_char(e.expired_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') end,
            worker_id = case when r.attempt >= $1 then r.worker_id end,
            started_at = case when r.attempt >= $1 then r.started_at end,
            lease_expires_at = null,
            heartbeat_at = null
        from expired e
        where r.id = e.id
        returning r.id, r.ingestion_id, r.tenant_id, r.attempt, r.status, e.lost_worker
        "#,
        max_attempts,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Rescued {
            run_id: r.id,
            ingestion_id: r.ingestion_id,
            tenant_id: r.tenant_id,
            attempt: r.attempt,
            status: r.status,
            lost_worker: r.lost_worker,
        })
        .collect())
}
