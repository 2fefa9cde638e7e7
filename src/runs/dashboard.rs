//! What the dashboard reads of the run table beyond one ingestion's history: each listed
//! ingestion's latest load, the runs active now (the fleet page and the live updates), the
//! workers seen lately and the lateness of the last hour's ticks.
//!
//! Every read is bounded (a `limit`, or an index range over one hour) and goes through an index:
//! the partial indexes of QUEUED and RUNNING runs, `runs_history` per ingestion and
//! `runs_tenant` per tenant. Reads across tenants take the tenants' ids, so they stay on
//! `runs_tenant` too.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Most active runs one read returns.
pub const MAX_ACTIVE: i64 = 1000;
/// Most lateness points one read returns.
pub const MAX_LATENESS_POINTS: i64 = 5000;

/// The latest load of an ingestion (SKIPPED and MISSED ticks are not loads).
#[derive(Debug, Clone)]
pub struct LatestLoad {
    pub ingestion_id: Uuid,
    pub status: String,
    pub queued_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The latest load of each of `ingestions` that has one.
pub async fn runs_latest_load(
    pool: &PgPool,
    ingestions: &[Uuid],
) -> Result<Vec<LatestLoad>, sqlx::Error> {
    sqlx::query_as!(
        LatestLoad,
        r#"select i.id as "ingestion_id!", r.status as "status!", r.queued_at as "queued_at!",
                  r.finished_at
           from unnest($1::uuid[]) as i (id)
           cross join lateral (
               select status, queued_at, finished_at from runs
               where ingestion_id = i.id and kind = 'load'
                 and status not in ('SKIPPED', 'MISSED')
               order by queued_at desc limit 1) r"#,
        ingestions
    )
    .fetch_all(pool)
    .await
}

/// A QUEUED or RUNNING run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRun {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub ingestion_id: Uuid,
    pub status: String,
    pub worker_id: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
}

/// The runs QUEUED or RUNNING now, of `tenant` (`None`: of every tenant), oldest first, at most
/// [`MAX_ACTIVE`].
pub async fn runs_active(
    pool: &PgPool,
    tenant: Option<Uuid>,
) -> Result<Vec<ActiveRun>, sqlx::Error> {
    sqlx::query_as!(
        ActiveRun,
        r#"select id, tenant_id, ingestion_id, status, worker_id, lease_expires_at, queued_at,
                  started_at
           from runs
           where status in ('QUEUED', 'RUNNING') and ($1::uuid is null or tenant_id = $1)
           order by queued_at, id
           limit $2"#,
        tenant,
        MAX_ACTIVE,
    )
    .fetch_all(pool)
    .await
}

/// A worker seen in the last hour's runs of some tenants.
#[derive(Debug, Clone)]
pub struct WorkerSeen {
    pub worker_id: String,
    /// Its runs RUNNING now with a lease not yet expired.
    pub running: i64,
    /// Its latest heartbeat, start or finish.
    pub last_seen: DateTime<Utc>,
}

/// Workers that ran runs of `tenants` queued in the last hour, or hold a lease on one now, the
/// latest seen first.
pub async fn runs_workers_seen(
    pool: &PgPool,
    tenants: &[Uuid],
) -> Result<Vec<WorkerSeen>, sqlx::Error> {
    sqlx::query_as!(
        WorkerSeen,
        r#"select worker_id as "worker_id!",
                  count(*) filter (where status = 'RUNNING' and lease_expires_at > now())
                      as "running!",
                  max(greatest(heartbeat_at, started_at, finished_at)) as "last_seen!"
           from (select worker_id, status, lease_expires_at, heartbeat_at, started_at, finished_at
                 from runs
                 where tenant_id = any($1) and queued_at > now() - interval '1 hour'
                   and worker_id is not null
                 union all
                 select worker_id, status, lease_expires_at, heartbeat_at, started_at, finished_at
                 from runs
                 where status = 'RUNNING' and tenant_id = any($1)
                   and queued_at <= now() - interval '1 hour') w
           group by worker_id
           order by 3 desc
           limit 200"#,
        tenants
    )
    .fetch_all(pool)
    .await
}

/// When a scheduled run of `tenants` started in the last hour, and how late.
#[derive(Debug, Clone)]
pub struct LatenessPoint {
    pub started_at: DateTime<Utc>,
    pub lateness_ms: f64,
}

/// The lateness (`started_at - scheduled_for`, 0 when early) of the scheduled runs of `tenants`
/// queued in the last hour and started, oldest first.
pub async fn runs_lateness_last_hour(
    pool: &PgPool,
    tenants: &[Uuid],
) -> Result<Vec<LatenessPoint>, sqlx::Error> {
    sqlx::query_as!(
        LatenessPoint,
        r#"select started_at as "started_at!",
                  greatest(0, extract(epoch from started_at - scheduled_for) * 1000)::float8
                      as "lateness_ms!"
           from runs
           where tenant_id = any($1) and queued_at > now() - interval '1 hour'
             and scheduled_for is not null and started_at is not null
           order by started_at
           limit $2"#,
        tenants,
        MAX_LATENESS_POINTS,
    )
    .fetch_all(pool)
    .await
}

/// The status of each of the runs `ids` that still exists.
pub async fn runs_status(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let rows = sqlx::query!("select id, status from runs where id = any($1)", ids)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.status)).collect())
}

/// A run's state as the live updates compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub ingestion_id: Uuid,
    pub status: String,
}

/// Most recent runs one read returns.
pub const MAX_RECENT: i64 = 5000;

/// The runs made in the last `secs` seconds, whatever their state, through the primary key
/// (run ids are UUIDv7, time-ordered): a run queued and finished between two reads of the
/// active runs is seen here.
pub async fn runs_recent(pool: &PgPool, secs: f64) -> Result<Vec<RunState>, sqlx::Error> {
    sqlx::query_as!(
        RunState,
        "select id, tenant_id, ingestion_id, status from runs
         where id >= uuid_v7_floor(now() - make_interval(secs => $1))
         order by id
         limit $2",
        secs,
        MAX_RECENT,
    )
    .fetch_all(pool)
    .await
}
