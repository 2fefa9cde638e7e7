//! The runs people ask about: a manual trigger (and `manual_triggers`, its rate's window), one
//! run, an ingestion's history, cancelling a queued run. Every statement is scoped to a tenant:
//! another tenant's run is as absent as one that does not exist.

use sqlx::PgPool;
use uuid::Uuid;

use super::{RunRow, RunStatus};
use crate::audit::{audit_record, Action, Actor};
use crate::paging::PageRequest;

/// The columns of [`RunRow`], in its order, for the one statement the checked macros cannot
/// type (the history's union: every column would need an override).
const RUN_COLUMNS: &str = "id, ingestion_id, triggered_by, status, scheduled_for, \
     data_interval_start, queued_at, started_at, finished_at, attempt, worker_id, error, reason, \
     files_processed, rows_ingested, bytes_read, bytes_written, snapshot_id, files_rejected, \
     records_rejected, rejected_records, kind, maintained_table, maintenance";

/// What a manual trigger did.
#[derive(Debug)]
pub enum Triggered {
    Queued(Box<RunRow>),
    /// `runs_one_active_per_ingestion` refused the run: this one is QUEUED or RUNNING (`None`
    /// when it finished between the refusal and the look).
    Refused(Option<(Uuid, String)>),
    /// The tenant has made `limit` manual triggers in the last minute; the oldest of them leaves
    /// the window in `retry_after_secs`.
    RateLimited {
        limit: i32,
        retry_after_secs: u64,
    },
}

/// (new) → QUEUED: queues a manual run unless one of the ingestion's runs is QUEUED or RUNNING.
/// The partial unique index decides (`on conflict do nothing`), not a read before the write.
/// The caller has checked that the ingestion belongs to `tenant_id`.
///
/// At most `max_per_minute` manual triggers per tenant in any minute (the tenant's own
/// `max_manual_runs_per_minute`, else this default): concurrent triggers of one tenant take the
/// tenant's trigger lock in turn, so two cannot both take the last place.
///
/// A queued run is recorded as triggered by `actor` (`run.triggered`), in the same transaction.
pub async fn run_insert_manual(
    pool: &PgPool,
    tenant_id: Uuid,
    ingestion_id: Uuid,
    default_max_per_minute: i32,
    actor: &Actor,
) -> Result<Triggered, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('autoloader.manual.' || ($1::uuid)::text, 0))",
        tenant_id
    )
    .execute(&mut *tx)
    .await?;
    // After the lock, in statements of their own: their snapshots see every earlier trigger.
    sqlx::query!(
        "delete from manual_triggers
         where tenant_id = $1 and triggered_at <= now() - interval '1 minute'",
        tenant_id
    )
    .execute(&mut *tx)
    .await?;
    let window = sqlx::query!(
        r#"select coalesce(t.max_manual_runs_per_minute, $2) as "limit!",
                  count(m.run_id) as "used!",
                  min(m.triggered_at) as oldest
           from tenants t
           left join manual_triggers m on m.tenant_id = t.id
           where t.id = $1
           group by t.id"#,
        tenant_id,
        default_max_per_minute
    )
    .fetch_one(&mut *tx)
    .await?;
    if window.used >= i64::from(window.limit) {
        let retry_after_secs = window
            .oldest
            .map(|o| (o + chrono::Duration::minutes(1) - chrono::Utc::now()).num_seconds() + 1)
            .unwrap_or(60)
            .clamp(1, 60) as u64;
        return Ok(Triggered::RateLimited {
            limit: window.limit,
            retry_after_secs,
        });
    }
    let inserted = sqlx::query_as!(
        RunRow,
        "insert into runs (id, ingestion_id, tenant_id, triggered_by) values ($1, $2, $3, 'manual')
         on conflict do nothing
         returning id, ingestion_id, triggered_by, status, scheduled_for, data_interval_start,
                   queued_at, started_at, finished_at, attempt, worker_id, error, reason,
                   files_processed, rows_ingested, bytes_read, bytes_written, snapshot_id,
                   files_rejected, records_rejected, rejected_records, kind, maintained_table, maintenance",
        Uuid::now_v7(),
        ingestion_id,
        tenant_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(run) = &inserted {
        sqlx::query!(
            "insert into manual_triggers (tenant_id, run_id) values ($1, $2)",
            tenant_id,
            run.id
        )
        .execute(&mut *tx)
        .await?;
        audit_record(
            &mut tx,
            actor,
            Some(tenant_id),
            Some(ingestion_id),
            Action::RunTriggered,
            &serde_json::json!({ "run_id": run.id }),
        )
        .await?;
    }
    tx.commit().await?;
    match inserted {
        Some(run) => Ok(Triggered::Queued(Box::new(run))),
        None => Ok(Triggered::Refused(run_active(pool, ingestion_id).await?)),
    }
}

/// The ingestion's QUEUED or RUNNING load, if any: (id, status).
pub async fn run_active(
    pool: &PgPool,
    ingestion_id: Uuid,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    let row = sqlx::query!(
        "select id, status from runs
         where ingestion_id = $1 and status in ('QUEUED', 'RUNNING') and kind = 'load'",
        ingestion_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.id, r.status)))
}

/// One run of the tenant.
pub async fn run_get(
    pool: &PgPool,
    tenant_id: Uuid,
    run_id: Uuid,
) -> Result<Option<RunRow>, sqlx::Error> {
    sqlx::query_as!(
        RunRow,
        "select id, ingestion_id, triggered_by, status, scheduled_for, data_interval_start,
                queued_at, started_at, finished_at, attempt, worker_id, error, reason,
                files_processed, rows_ingested, bytes_read, bytes_written, snapshot_id,
                files_rejected, records_rejected, rejected_records, kind, maintained_table, maintenance
         from runs where id = $1 and tenant_id = $2",
        run_id,
        tenant_id
    )
    .fetch_optional(pool)
    .await
}

/// One page of an ingestion's runs, newest first by the instant a run stands for (its tick, or
/// when it was triggered by hand), and how many runs match in all.
pub async fn run_history(
    pool: &PgPool,
    tenant_id: Uuid,
    ingestion_id: Uuid,
    status: Option<RunStatus>,
    page: PageRequest,
) -> Result<(Vec<RunRow>, i64), sqlx::Error> {
    let status = status.map(RunStatus::as_str);
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from runs
           where ingestion_id = $1 and tenant_id = $2 and ($3::text is null or status = $3)"#,
        ingestion_id,
        tenant_id,
        status
    )
    .fetch_one(pool)
    .await?;
    // Each part reads an index in that order and stops after the rows this page can need:
    // scheduled runs through `runs_one_per_tick` backwards, finished manual runs through
    // `runs_manual_history`, and the ingestion's one active run, if manual, through
    // `runs_one_active_per_ingestion`. The filter is written once, in `mine`, which each part
    // narrows in its own way (a CTE that PostgreSQL inlines, so each part keeps its index).
    let rows = sqlx::query_as::<_, RunRow>(&format!(
        "with mine as not materialized (
             select * from runs
             where ingestion_id = $1 and tenant_id = $2 and ($3::text is null or status = $3)
         )
         select {RUN_COLUMNS} from (
             (select * from mine where scheduled_for is not null
              order by scheduled_for desc limit $6)
             union all
             (select * from mine
              where scheduled_for is null and status not in ('QUEUED', 'RUNNING')
              order by queued_at desc, id desc limit $6)
             union all
             (select * from mine where scheduled_for is null and status in ('QUEUED', 'RUNNING'))
         ) runs
         order by coalesce(scheduled_for, queued_at) desc, id desc limit $4 offset $5"
    ))
    .bind(ingestion_id)
    .bind(tenant_id)
    .bind(status)
    .bind(page.size)
    .bind(page.offset())
    .bind(page.offset().saturating_add(page.size))
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}

/// What cancelling did.
#[derive(Debug)]
pub enum Cancelled {
    Cancelled(Box<RunRow>),
    /// The run is not QUEUED: it stays as it is (its status).
    NotQueued(String),
    NotFound,
}

/// QUEUED → CANCELLED, recorded as cancelled by `actor` (`run.cancelled`) in the same
/// transaction. A RUNNING run is not interrupted.
pub async fn run_cancel(
    pool: &PgPool,
    tenant_id: Uuid,
    run_id: Uuid,
    actor: &Actor,
) -> Result<Cancelled, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let cancelled = sqlx::query_as!(
        RunRow,
        "update runs set status = 'CANCELLED', finished_at = now(), reason = 'cancelled through the API'
         where id = $1 and tenant_id = $2 and status = 'QUEUED'
         returning id, ingestion_id, triggered_by, status, scheduled_for, data_interval_start,
                   queued_at, started_at, finished_at, attempt, worker_id, error, reason,
                   files_processed, rows_ingested, bytes_read, bytes_written, snapshot_id,
                   files_rejected, records_rejected, rejected_records, kind, maintained_table, maintenance",
        run_id,
        tenant_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(run) = cancelled {
        audit_record(
            &mut tx,
            actor,
            Some(tenant_id),
            Some(run.ingestion_id),
            Action::RunCancelled,
            &serde_json::json!({ "run_id": run.id, "kind": run.kind }),
        )
        .await?;
        tx.commit().await?;
        return Ok(Cancelled::Cancelled(Box::new(run)));
    }
    tx.commit().await?;
    Ok(match run_get(pool, tenant_id, run_id).await? {
        Some(run) => Cancelled::NotQueued(run.status),
        None => Cancelled::NotFound,
    })
}
