//! A run and its lease: claim, heartbeat, outcome, give-back, rescue, and the fence a commit
//! holds. Every status change the engine makes after a run is queued is a function here:
//!
//! | move | function |
//! |---|---|
//! | QUEUED → RUNNING | [`run_claim`] (and the claim half of [`run_exchange`]) |
//! | RUNNING → SUCCESS / FAILED | [`run_complete`] (and the outcome half of [`run_exchange`]) |
//! | RUNNING → QUEUED | [`run_requeue`] (retry back-off, give-back at shutdown), [`run_rescue_expired`] |
//! | RUNNING → FAILED (`worker lost`) | [`run_rescue_expired`] |
//!
//! PostgreSQL refuses any other move (trigger `runs_status_transition`).
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

use sqlx::{PgConnection, Postgres, Transaction};

use super::{RunKind, TriggeredBy};

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
    /// A load, or the kind of maintenance of `maintained_table`.
    pub kind: RunKind,
    pub maintained_table: Option<String>,
    pub ingestion: ClaimedIngestion,
}

/// The ingestion of a claimed run, as stored when the run was claimed. The worker parses it into
/// a definition before it executes the run.
#[derive(Clone)]
pub struct ClaimedIngestion {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub source_type: String,
    pub source_path: String,
    pub format_type: String,
    pub destination_table: String,
    pub options: serde_json::Value,
    /// The tenant's Iceberg namespace root: the run writes `<tenant_namespace>.<destination_table>`.
    pub tenant_namespace: String,
    /// The directories the tenant's local sources may read.
    pub tenant_file_roots: Vec<String>,
}

impl std::fmt::Debug for ClaimedIngestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedIngestion")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("source_type", &self.source_type)
            .field("source_path", &self.source_path)
            .field("format_type", &self.format_type)
            .field("destination_table", &self.destination_table)
            .field("tenant_namespace", &self.tenant_namespace)
            .field(
                "options",
                &crate::ingestions::definition::redact_options(&self.options),
            )
            .finish()
    }
}

/// What a successful run did, recorded in the run's row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOutput {
    pub files_processed: i64,
    pub rows_ingested: i64,
    pub bytes_read: i64,
    pub bytes_written: i64,
    /// The Iceberg snapshot the run committed; `None` when it loaded nothing.
    pub snapshot_id: Option<i64>,
}

/// A lease (attempt) of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

pub(crate) fn interval(d: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
    }
}

/// Longest error text stored with a run; the rest is cut, saying so.
const MAX_ERROR_BYTES: usize = 16 * 1024;

/// `text` as PostgreSQL can store it: without NUL characters (which `text` refuses, and which an
/// error quoting a binary record may carry) and at most [`MAX_ERROR_BYTES`] long.
fn storable(text: &str) -> String {
    let mut t = text.replace('\0', "\u{FFFD}");
    if t.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
        t.push_str(" [cut at 16 KiB]");
    }
    t
}

fn triggered_by(s: &str) -> TriggeredBy {
    s.parse().unwrap_or(TriggeredBy::Scheduler)
}

/// QUEUED → RUNNING: claims up to `limit` queued runs, oldest tick first, in one statement
/// (tenants without a default cap on concurrent runs: see [`run_exchange`]).
pub async fn run_claim(
    pool: &PgPool,
    worker_id: &str,
    limit: i64,
    ttl: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    Ok(run_exchange(pool, worker_id, &[], limit, ttl, None)
        .await?
        .claimed)
}

/// The outcome of one run, for [`run_complete`] and [`run_exchange`].
#[derive(Debug, Clone)]
pub enum Outcome {
    Success(RunOutput),
    Failure(String),
}

/// RUNNING → SUCCESS / FAILED: records outcomes (SUCCESS with counters, FAILED with the error)
/// in one statement, one commit, each fenced by its own lease. Returns the runs whose lease still
/// held; the others were not touched.
pub async fn run_complete(
    pool: &PgPool,
    worker_id: &str,
    outcomes: &[(Lease, Outcome)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    Ok(
        run_exchange(pool, worker_id, outcomes, 0, Duration::ZERO, None)
            .await?
            .recorded
            .into_iter()
            .map(|l| l.run_id)
            .collect(),
    )
}

/// What one [`run_exchange`] did.
#[derive(Debug, Default)]
pub struct Exchanged {
    /// Leases whose outcome was written: they still held. The other outcomes were dropped.
    pub recorded: Vec<Lease>,
    /// Runs newly claimed, oldest tick first.
    pub claimed: Vec<Claimed>,
}

/// Records the outcomes of finished runs and claims up to `claim` queued runs, in one statement
/// and one commit: the slots that finished runs free are refilled in the same round trip.
///
/// Each outcome is fenced by its own lease (`id, attempt, worker_id, status = 'RUNNING'`); the
/// claim takes the oldest queued runs with `for update skip locked`. The two parts touch disjoint
/// rows (RUNNING ones and QUEUED ones), so neither can see or undo the other.
///
/// Commits: outcomes are durable (the commit waits for its WAL flush as the cluster is
/// configured). A statement that only claims need not wait: if PostgreSQL crashes before the
/// flush, the claim is undone, the run is QUEUED again and this worker's later writes are fenced
/// out, exactly as if the worker had died (runs are executed at least once either way), and the
/// flush of any later outcome carries every earlier claim with it.
///
/// Tenants: runs of a SUSPENDED tenant are never claimed (they wait, QUEUED, until it is ACTIVE
/// again, or are cancelled). A tenant with a cap on concurrent runs (`tenants.max_concurrent_runs`,
/// or `default_max_concurrent_runs` when that is null) never has more RUNNING runs than its cap
/// across every worker: the claim takes that tenant's claim lock (an advisory lock held to the
/// commit; a claim that finds it taken leaves the tenant to the claim holding it) and counts its
/// RUNNING runs after taking it (`tenant_free_run_slots`, migration 0014). Each tenant's runs are
/// read through its own index entries (`runs_active_by_tenant`), never by walking past another
/// tenant's backlog, and the picks go round robin: every tenant's oldest due run before any
/// tenant's second. The cost: each claim looks at every ACTIVE tenant once (an index probe) and
/// locks up to `claim` runs of each tenant with due runs, keeping only `claim` of them.
pub async fn run_exchange(
    db: impl sqlx::PgExecutor<'_>,
    worker_id: &str,
    outcomes: &[(Lease, Outcome)],
    claim: i64,
    ttl: Duration,
    default_max_concurrent_runs: Option<i32>,
) -> Result<Exchanged, sqlx::Error> {
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
                errors.push(Some(storable(e)));
                RunOutput::default()
            }
        };
        files.push(out.files_processed);
        rows.push(out.rows_ingested);
        bytes.push(out.bytes_read);
        written.push(out.bytes_written);
        snapshots.push(out.snapshot_id);
    }
    // One row always comes back: the recorded ids, and the claimed run's columns (null when
    // nothing was claimed). `set_config(.., true)` lasts for this statement's own transaction.
    let result = sqlx::query!(
        r#"
        with commit_mode as (
            select set_config('synchronous_commit',
                              case when cardinality($2::uuid[]) = 0 then 'off'
                                   else current_setting('synchronous_commit') end,
                              true)
        ),
        recorded as (
            update runs r
            set status = o.status, finished_at = now(), lease_expires_at = null, error = o.error,
                files_processed = o.files, rows_ingested = o.rows_ingested, bytes_read = o.bytes,
                bytes_written = o.written, snapshot_id = o.snapshot_id
            from unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                        $8::bigint[], $9::bigint[], $10::bigint[])
                as o(id, attempt, status, error, files, rows_ingested, bytes, written, snapshot_id)
            where r.id = o.id and r.attempt = o.attempt and r.worker_id = $1 and r.status = 'RUNNING'
            returning r.id, r.attempt
        ),
        -- Every ACTIVE tenant with a due queued run, and how many more of its runs may start:
        -- the whole claim for an uncapped tenant, its free slots across the fleet for a capped
        -- one (taking its claim lock; see tenant_free_run_slots).
        open as materialized (
            select t.id,
                   case when coalesce(t.max_concurrent_runs, $13) is null then $11::bigint
                        else tenant_free_run_slots(t.id, coalesce(t.max_concurrent_runs, $13))
                   end as free
            from tenants t
            where $11::bigint > 0 and t.status = 'ACTIVE'
              and (select true from runs q
                   where q.tenant_id = t.id and q.status in ('QUEUED', 'RUNNING')
                     and q.status = 'QUEUED' and (q.not_before is null or q.not_before <= now())
                   limit 1)
            order by t.id
        ),
        -- Each such tenant's oldest due runs, through its own index entries (never a walk past
        -- other tenants' runs), numbered within the tenant.
        candidates as (
            select c.id, c.due, c.queued_at,
                   row_number() over (partition by c.tenant_id order by c.due, c.queued_at) as k
            from open cross join lateral (
                select r.id, r.tenant_id, coalesce(r.scheduled_for, r.queued_at) as due,
                       r.queued_at
                from runs r
                where r.tenant_id = open.id and r.status in ('QUEUED', 'RUNNING')
                  and r.status = 'QUEUED' and (r.not_before is null or r.not_before <= now())
                order by r.status, coalesce(r.scheduled_for, r.queued_at), r.queued_at
                limit least(open.free::bigint, $11)
                for update skip locked
            ) c
        ),
        -- Round robin: every tenant's oldest run before any tenant's second, so no tenant's
        -- backlog starves another's; within a round, the oldest tick first.
        picked as (
            select id from candidates order by k, due, queued_at limit $11
        ),
        claimed as (
            update runs r
            set status = 'RUNNING', worker_id = $1, attempt = r.attempt + 1, started_at = now(),
                heartbeat_at = now(), lease_expires_at = now() + $12::interval, not_before = null
            from ingestions i, tenants n
            -- By key: a generic plan (sqlx prepares this statement) cannot turn it into a scan
            -- of runs hashed against the picks.
            where r.id = any(array(select id from picked))
              and i.id = r.ingestion_id and n.id = i.tenant_id
            returning r.id, r.attempt, r.triggered_by, r.scheduled_for, r.data_interval_start,
                      r.queued_at, r.started_at, r.kind, r.maintained_table,
                      i.id as ingestion_id, i.tenant_id, i.name, i.description, i.source_type,
                      i.source_path, i.format_type, i.destination_table, i.options,
                      n.namespace as tenant_namespace, n.file_roots as tenant_file_roots
        )
        select (select coalesce(array_agg(id), '{}') from recorded) as "recorded!: Vec<Uuid>",
               (select coalesce(array_agg(attempt), '{}') from recorded)
                   as "recorded_attempts!: Vec<i32>",
               c.id as "id?", c.attempt as "attempt?", c.triggered_by as "triggered_by?",
               c.scheduled_for, c.data_interval_start, c.queued_at as "queued_at?",
               c.started_at as "started_at?", c.kind as "kind?", c.maintained_table,
               c.ingestion_id as "ingestion_id?",
               c.tenant_id as "tenant_id?", c.name as "name?", c.description,
               c.source_type as "source_type?",
               c.source_path as "source_path?", c.format_type as "format_type?",
               c.destination_table as "destination_table?", c.options as "options?",
               c.tenant_namespace as "tenant_namespace?",
               c.tenant_file_roots as "tenant_file_roots?"
        from commit_mode left join claimed c on true
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
        claim,
        interval(ttl) as PgInterval,
        default_max_concurrent_runs,
    )
    .fetch_all(db)
    .await?;
    let mut done = Exchanged::default();
    for r in result {
        if done.recorded.is_empty() {
            done.recorded = r
                .recorded
                .iter()
                .zip(&r.recorded_attempts)
                .map(|(&run_id, &attempt)| Lease { run_id, attempt })
                .collect();
        }
        let (
            Some(run_id),
            Some(attempt),
            Some(by),
            Some(queued_at),
            Some(started_at),
            Some(kind),
            Some(id),
            Some(tenant_id),
            Some(name),
            Some(source_type),
            Some(source_path),
            Some(format_type),
            Some(destination_table),
            Some(options),
            Some(tenant_namespace),
            Some(tenant_file_roots),
        ) = (
            r.id,
            r.attempt,
            r.triggered_by,
            r.queued_at,
            r.started_at,
            r.kind,
            r.ingestion_id,
            r.tenant_id,
            r.name,
            r.source_type,
            r.source_path,
            r.format_type,
            r.destination_table,
            r.options,
            r.tenant_namespace,
            r.tenant_file_roots,
        )
        else {
            continue; // the row that says only which outcomes were recorded
        };
        done.claimed.push(Claimed {
            run_id,
            attempt,
            triggered_by: triggered_by(&by),
            scheduled_for: r.scheduled_for,
            data_interval_start: r.data_interval_start,
            queued_at,
            started_at,
            // The column's check allows only the kinds there are.
            kind: kind.parse().unwrap_or(RunKind::Load),
            maintained_table: r.maintained_table,
            ingestion: ClaimedIngestion {
                id,
                tenant_id,
                name,
                description: r.description,
                source_type,
                source_path,
                format_type,
                destination_table,
                options,
                tenant_namespace,
                tenant_file_roots,
            },
        });
    }
    // `returning` has no order; execute oldest ticks first.
    done.claimed
        .sort_by_key(|c| (c.scheduled_for.unwrap_or(c.queued_at), c.queued_at));
    Ok(done)
}

/// Extends the lease. `false`: the lease is gone (rescued and maybe claimed by another worker).
pub async fn run_heartbeat(
    db: impl sqlx::PgExecutor<'_>,
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
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// RUNNING → QUEUED: puts the run back in the queue, claimable after `delay` (a retry back-off,
/// or zero when a worker gives its runs back at shutdown).
pub async fn run_requeue(
    db: impl sqlx::PgExecutor<'_>,
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
        storable(reason),
        error.map(storable),
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A run whose lease expired, as [`run_rescue_expired`] left it.
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

/// RUNNING → QUEUED, or RUNNING → FAILED: requeues runs whose lease expired (their worker died,
/// froze or lost the database), or fails them with reason `worker lost` once `max_attempts`
/// claims have been spent. Any process may call this; `skip locked` keeps two callers from
/// rescuing the same run.
pub async fn run_rescue_expired(
    db: impl sqlx::PgExecutor<'_>,
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
    .fetch_all(db)
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

/// The lease a commit is made under: the run, its attempt and the worker holding it.
#[derive(Debug, Clone)]
pub struct Fence {
    pub run_id: Uuid,
    pub attempt: i32,
    pub worker_id: String,
}

/// What a run did not load: written on the run with its commit ([`run_fence`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rejections {
    /// Files rejected (`on_error = skip_file`, or unreadable under `skip_record`).
    pub files: i64,
    /// Records dropped (`on_error = skip_record`).
    pub records: i64,
    /// The first rejected records, `[{"file", "record", "column", "reason"}]`; `None` when none.
    pub first: Option<serde_json::Value>,
}

/// Checks, inside a commit's transaction, that the lease still holds, and locks the run row
/// until the transaction ends: recovery cannot requeue the run meanwhile, and after a requeue
/// this attempt no longer matches. The run's rejections, when the commit carries files, are
/// written in the same statement, so they stand exactly when the commit does; a commit without
/// files (`None`: a full listing that found nothing new, a maintenance commit) leaves what an
/// earlier attempt recorded. `false`: the lease is gone and the commit must not happen.
pub async fn run_fence(
    tx: &mut Transaction<'_, Postgres>,
    fence: &Fence,
    rejections: Option<&Rejections>,
) -> Result<bool, sqlx::Error> {
    let conn: &mut PgConnection = tx;
    let held = sqlx::query_scalar!(
        "update runs set heartbeat_at = now(),
                         files_rejected = coalesce($4, files_rejected),
                         records_rejected = coalesce($5, records_rejected),
                         rejected_records = case when $4::bigint is null then rejected_records
                                                 else $6 end
         where id = $1 and attempt = $2 and worker_id = $3 and status = 'RUNNING'
         returning id",
        fence.run_id,
        fence.attempt,
        fence.worker_id,
        rejections.map(|r| r.files),
        rejections.map(|r| r.records),
        rejections.and_then(|r| r.first.clone()),
    )
    .fetch_optional(conn)
    .await?;
    Ok(held.is_some())
}

/// The attempt a run is at, and its state: whether a data file written by one of its attempts
/// can still be committed (see [`RunAttempt::is_live`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAttempt {
    pub run_id: Uuid,
    pub attempt: i32,
    pub status: super::RunStatus,
}

impl RunAttempt {
    /// Whether attempt `attempt` of this run may still commit: only while the run is RUNNING at
    /// that attempt (an earlier attempt's lease is gone for good: `attempt` only grows).
    pub fn is_live(&self, attempt: i32) -> bool {
        self.status == super::RunStatus::Running && self.attempt == attempt
    }
}

/// The runs among `ids` that still exist, with their current attempt and state. A run that is
/// not returned is gone (pruned): none of its attempts can commit.
pub async fn run_attempts(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<RunAttempt>, sqlx::Error> {
    let rows = sqlx::query!(
        "select id, attempt, status from runs where id = any($1)",
        ids
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let status = r
                .status
                .parse()
                .map_err(|e: super::UnknownStatus| sqlx::Error::Decode(Box::new(e)))?;
            Ok(RunAttempt {
                run_id: r.id,
                attempt: r.attempt,
                status,
            })
        })
        .collect()
}
