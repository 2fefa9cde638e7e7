//! `dry_runs`: requests for a dry run and their answers, every statement on the table.
//!
//! The API (or the CLI) inserts a request with its deadline ([`dry_run_insert`]) and reads it
//! until it is over ([`dry_run_get`]); a worker claims it ([`dry_run_claim`]: oldest first, of
//! ACTIVE tenants only, as run claims are, `for update skip locked`), works it out and writes the
//! answer ([`dry_run_finish`]), which drops the stored definition. A request no worker claimed
//! by its deadline is marked failed by the one who asked ([`dry_run_abandon`]), so no worker
//! takes it later. The retention sweep deletes rows an hour past their deadline
//! ([`dry_runs_prune`]).
//!
//! States: `queued` -> `running` -> `done` | `failed`; `finished_at` is set exactly when over
//! (constraint `dry_runs_finished_iff_over`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::types::PgInterval;
use sqlx::PgPool;
use uuid::Uuid;

/// The definition a dry run tries, as stored (secret options sealed).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct DryRunDefinition {
    pub source_type: String,
    pub source_path: String,
    pub format_type: String,
    pub destination_table: String,
    pub options: Value,
}

impl std::fmt::Debug for DryRunDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DryRunDefinition")
            .field("source_type", &self.source_type)
            .field("source_path", &self.source_path)
            .field("format_type", &self.format_type)
            .field("destination_table", &self.destination_table)
            .field(
                "options",
                &crate::ingestions::definition::redact_options(&self.options),
            )
            .finish()
    }
}

/// A dry run as the one who asked reads it.
#[derive(Debug, Clone)]
pub struct DryRunState {
    pub id: Uuid,
    pub status: String,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub deadline: DateTime<Utc>,
}

impl DryRunState {
    pub fn is_over(&self) -> bool {
        self.status == "done" || self.status == "failed"
    }
}

/// A dry run a worker claimed, with what it needs of the tenant.
#[derive(Debug, Clone)]
pub struct ClaimedDryRun {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub ingestion_id: Option<Uuid>,
    pub definition: Option<Value>,
    pub deadline: DateTime<Utc>,
    /// Seconds from the claim to the deadline, by the database's clock.
    pub remaining_secs: f64,
    pub tenant_namespace: String,
    pub tenant_file_roots: Vec<String>,
}

fn interval(d: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
    }
}

/// Queues a dry run of `definition` for `tenant` (of its ingestion `ingestion_id`, if saved),
/// due within `within` of the database's clock. Returns its id and deadline.
pub async fn dry_run_insert(
    pool: &PgPool,
    tenant: Uuid,
    ingestion_id: Option<Uuid>,
    definition: &DryRunDefinition,
    within: Duration,
) -> Result<DryRunState, sqlx::Error> {
    let id = Uuid::now_v7();
    let definition = serde_json::to_value(definition).unwrap_or(Value::Null);
    let row = sqlx::query!(
        r#"
        insert into dry_runs (id, tenant_id, ingestion_id, definition, deadline)
        values ($1, $2, $3, $4, now() + $5)
        returning status, deadline
        "#,
        id,
        tenant,
        ingestion_id,
        definition,
        interval(within)
    )
    .fetch_one(pool)
    .await?;
    Ok(DryRunState {
        id,
        status: row.status,
        result: None,
        error: None,
        deadline: row.deadline,
    })
}

/// The tenant's dry run `id`, as it stands.
pub async fn dry_run_get(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<DryRunState>, sqlx::Error> {
    sqlx::query_as!(
        DryRunState,
        r#"
        select id, status, result, error, deadline
        from dry_runs where id = $1 and tenant_id = $2
        "#,
        id,
        tenant
    )
    .fetch_optional(pool)
    .await
}

/// Marks the dry run failed if no worker has claimed it yet (its deadline passed, the one who
/// asked stopped waiting), so none takes it later. Returns the row as it stands after.
pub async fn dry_run_abandon(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<DryRunState>, sqlx::Error> {
    sqlx::query!(
        r#"
        update dry_runs
        set status = 'failed', finished_at = now(), definition = null,
            error = 'no worker answered before the deadline'
        where id = $1 and tenant_id = $2 and status = 'queued'
        "#,
        id,
        tenant
    )
    .execute(pool)
    .await?;
    dry_run_get(pool, tenant, id).await
}

/// Dry runs of one tenant a claim leaves running across the fleet before it takes another of
/// that tenant's (claims racing each other may pass it by one or two): one tenant's burst
/// cannot hold every worker's dry-run slots while others wait.
pub const TENANT_RUNNING: i64 = 2;

/// Claims the oldest queued dry run of an ACTIVE tenant with fewer than [`TENANT_RUNNING`]
/// running, whose deadline is at least `margin` away (`for update skip locked`: two workers
/// never take one).
pub async fn dry_run_claim(
    pool: &PgPool,
    worker_id: &str,
    margin: Duration,
) -> Result<Option<ClaimedDryRun>, sqlx::Error> {
    sqlx::query_as!(
        ClaimedDryRun,
        r#"
        with next as (
            select d.id from dry_runs d
            join tenants t on t.id = d.tenant_id
            where d.status = 'queued' and d.deadline > now() + $2 and t.status = 'ACTIVE'
              and (select count(*) from dry_runs r
                   where r.tenant_id = d.tenant_id and r.status = 'running') < $3
            order by d.requested_at
            limit 1
            for update of d skip locked
        )
        update dry_runs d
        set status = 'running', claimed_by = $1, claimed_at = now()
        from next, tenants t
        where d.id = next.id and t.id = d.tenant_id
        returning d.id, d.tenant_id, d.ingestion_id, d.definition, d.deadline,
                  extract(epoch from d.deadline - now())::float8 as "remaining_secs!",
                  t.namespace as tenant_namespace, t.file_roots as tenant_file_roots
        "#,
        worker_id,
        interval(margin),
        TENANT_RUNNING
    )
    .fetch_optional(pool)
    .await
}

/// Writes the answer of a dry run this worker holds and drops its definition: `done` with
/// `result`, or `failed` with `error` (and the `result` so far). Returns whether it was still
/// this worker's.
pub async fn dry_run_finish(
    pool: &PgPool,
    id: Uuid,
    worker_id: &str,
    result: &Value,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let error: Option<String> = error.map(|e| {
        let e = e.replace('\0', "");
        match e.char_indices().nth(16_000) {
            Some((at, _)) => e[..at].to_owned(),
            None => e,
        }
    });
    let status = if error.is_some() { "failed" } else { "done" };
    let done = sqlx::query!(
        r#"
        update dry_runs
        set status = $3, result = $4, error = $5, finished_at = now(), definition = null
        where id = $1 and claimed_by = $2 and status = 'running'
        "#,
        id,
        worker_id,
        status,
        result,
        error
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes up to `limit` dry runs whose deadline is more than `age` ago; returns how many.
pub async fn dry_runs_prune(pool: &PgPool, age: Duration, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"
        with doomed as (
            select id from dry_runs where deadline < now() - $1::interval
            order by deadline limit $2
            for update skip locked
        )
        delete from dry_runs d using doomed where d.id = doomed.id
        "#,
        interval(age),
        limit
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
