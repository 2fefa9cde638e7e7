//! Maintenance runs: compaction, snapshot expiry and orphan removal of a table, queued by hand
//! ([`maintenance_queue`]) or by the scheduler when due ([`maintenance_plan`]), and then claimed,
//! leased, fenced and finished like any run (`runs.kind` says which). At most one maintenance run
//! of a table is QUEUED or RUNNING at a time (`runs_one_maintenance_per_table`).

use std::time::Duration;

use sqlx::postgres::types::PgInterval;
use sqlx::PgPool;
use uuid::Uuid;

use super::lease::interval;
use super::{RunKind, RunRow};
use crate::audit::{audit_record, Action, Actor};

/// What asking for a maintenance run did.
#[derive(Debug)]
pub enum Queued {
    Queued(Box<RunRow>),
    /// A maintenance run of the table is already QUEUED or RUNNING: (id, kind, status); `None`
    /// when it finished between the refused insert and the look-up (the caller may ask again).
    Busy(Option<(Uuid, String, String)>),
}

/// (new) → QUEUED: a maintenance run of `table` for the ingestion, by hand, recorded as queued
/// by `actor` in the same transaction. Refused by PostgreSQL (`runs_one_maintenance_per_table`)
/// while one of the table is active.
pub async fn maintenance_queue(
    pool: &PgPool,
    tenant_id: Uuid,
    ingestion_id: Uuid,
    table: &str,
    kind: RunKind,
    actor: &Actor,
) -> Result<Queued, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query_as!(
        RunRow,
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, kind, maintained_table)
         values ($1, $2, $3, 'manual', $4, $5)
         on conflict do nothing
         returning id, ingestion_id, triggered_by, status, scheduled_for, data_interval_start,
                   queued_at, started_at, finished_at, attempt, worker_id, error, reason,
                   files_processed, rows_ingested, bytes_read, bytes_written, snapshot_id,
                   files_rejected, records_rejected, rejected_records, kind, maintained_table,
                   maintenance",
        Uuid::now_v7(),
        ingestion_id,
        tenant_id,
        kind.as_str(),
        table,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(run) = inserted {
        let detail = serde_json::json!({ "run_id": run.id, "kind": kind.as_str(), "table": table });
        audit_record(
            &mut tx,
            actor,
            Some(tenant_id),
            Some(ingestion_id),
            Action::MaintenanceQueued,
            &detail,
        )
        .await?;
        tx.commit().await?;
        return Ok(Queued::Queued(Box::new(run)));
    }
    tx.commit().await?;
    let busy = sqlx::query!(
        "select id, kind, status from runs
         where tenant_id = $1 and maintained_table = $2 and kind <> 'load'
           and status in ('QUEUED', 'RUNNING')",
        tenant_id,
        table
    )
    .fetch_optional(pool)
    .await?;
    Ok(Queued::Busy(busy.map(|b| (b.id, b.kind, b.status))))
}

/// When the scheduler queues maintenance of a table whose ingestion says `maintenance: auto`.
#[derive(Debug, Clone, Copy)]
pub struct MaintenancePolicy {
    /// A table is compacted at most this often...
    pub compaction_interval: Duration,
    /// ... and only with at least this many small data files.
    pub compact_min_files: u32,
    /// Snapshot expiry and orphan removal at most this often.
    pub cleanup_interval: Duration,
    /// Tables looked at in one pass, at most.
    pub batch: i64,
}

/// A maintenance run the scheduler queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub run_id: Uuid,
    pub table: String,
    pub kind: String,
}

/// (new) → QUEUED: for every table due for maintenance (of an ACTIVE tenant, whose last
/// committing ingestion says `maintenance: auto`, with no maintenance run active), one run of the
/// first kind due: snapshot expiry (more than one snapshot; none queued within the cleanup
/// interval), orphan removal (none within the cleanup interval), compaction (at least
/// `compact_min_files` small files; none within the compaction interval). Any number of workers
/// may plan at once: `runs_one_maintenance_per_table` keeps one run per table.
pub async fn maintenance_plan(
    pool: &PgPool,
    policy: MaintenancePolicy,
) -> Result<Vec<Planned>, sqlx::Error> {
    let due = sqlx::query!(
        r#"
        select f.tenant_id, f.iceberg_table, f.ingestion_id as "ingestion_id!", k.kind as "kind!"
        from table_facts f
        join tenants t on t.id = f.tenant_id and t.status = 'ACTIVE'
        join ingestions i on i.id = f.ingestion_id and i.tenant_id = f.tenant_id
        cross join lateral (
            select v.kind from (values ('expire_snapshots', 1, $1::interval),
                                       ('remove_orphans', 2, $1::interval),
                                       ('compact', 3, $2::interval)) as v(kind, ord, every)
            where (v.kind <> 'compact' or f.small_files >= $3)
              and (v.kind <> 'expire_snapshots' or f.snapshots > 1)
              and not exists (
                  select 1 from runs r
                  where r.tenant_id = f.tenant_id and r.maintained_table = f.iceberg_table
                    and r.kind <> 'load' and r.kind = v.kind and r.queued_at > now() - v.every)
            order by v.ord
            limit 1
        ) k
        where coalesce(i.options ->> 'maintenance', 'auto') = 'auto'
          and not exists (
              select 1 from runs r
              where r.tenant_id = f.tenant_id and r.maintained_table = f.iceberg_table
                and r.kind <> 'load' and r.status in ('QUEUED', 'RUNNING'))
        order by f.updated_at
        limit $4
        "#,
        interval(policy.cleanup_interval) as PgInterval,
        interval(policy.compaction_interval) as PgInterval,
        i64::from(policy.compact_min_files),
        policy.batch,
    )
    .fetch_all(pool)
    .await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = due.iter().map(|_| Uuid::now_v7()).collect();
    let ingestions: Vec<Uuid> = due.iter().map(|d| d.ingestion_id).collect();
    let tenants: Vec<Uuid> = due.iter().map(|d| d.tenant_id).collect();
    let tables: Vec<String> = due.iter().map(|d| d.iceberg_table.clone()).collect();
    let kinds: Vec<String> = due.iter().map(|d| d.kind.clone()).collect();
    let planned = sqlx::query!(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, kind, maintained_table)
         select id, ingestion_id, tenant_id, 'scheduler', kind, maintained_table
         from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[])
             as p(id, ingestion_id, tenant_id, kind, maintained_table)
         on conflict do nothing
         returning id, maintained_table as \"maintained_table!\", kind",
        &ids,
        &ingestions,
        &tenants,
        &kinds,
        &tables,
    )
    .fetch_all(pool)
    .await?;
    Ok(planned
        .into_iter()
        .map(|p| Planned {
            run_id: p.id,
            table: p.maintained_table,
            kind: p.kind,
        })
        .collect())
}

/// The latest maintenance run of each kind of a table (of the tenant), newest first.
pub async fn maintenance_latest(
    pool: &PgPool,
    tenant_id: Uuid,
    table: &str,
) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as!(
        RunRow,
        r#"
        select r.id as "id!", r.ingestion_id as "ingestion_id!", r.triggered_by as "triggered_by!",
               r.status as "status!", r.scheduled_for, r.data_interval_start,
               r.queued_at as "queued_at!", r.started_at, r.finished_at, r.attempt as "attempt!",
               r.worker_id, r.error, r.reason, r.files_processed as "files_processed!",
               r.rows_ingested as "rows_ingested!", r.bytes_read as "bytes_read!",
               r.bytes_written as "bytes_written!", r.snapshot_id,
               r.files_rejected as "files_rejected!", r.records_rejected as "records_rejected!",
               r.rejected_records, r.kind as "kind!", r.maintained_table, r.maintenance
        from unnest(array['compact', 'expire_snapshots', 'remove_orphans']) as k(kind)
        cross join lateral (
            select * from runs
            where tenant_id = $1 and maintained_table = $2 and kind <> 'load' and kind = k.kind
            order by queued_at desc
            limit 1
        ) r
        order by r.queued_at desc
        "#,
        tenant_id,
        table
    )
    .fetch_all(pool)
    .await
}

/// Writes what a maintenance run did on its row, fenced by its lease like every write of a run.
/// `false`: the lease is gone.
pub async fn run_maintenance_report(
    pool: &PgPool,
    fence: &super::lease::Fence,
    report: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update runs set maintenance = $4
         where id = $1 and attempt = $2 and worker_id = $3 and status = 'RUNNING'
           and kind <> 'load'",
        fence.run_id,
        fence.attempt,
        fence.worker_id,
        report,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
