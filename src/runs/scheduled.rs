//! The runs a ticker writes for due ticks: QUEUED runs, SKIPPED ticks (a run of the ingestion
//! was still active) and MISSED ticks (too late to run, or a stored schedule that no longer
//! parses). Each statement writes a whole batch and is called inside the ticker's transaction.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

/// One run (or SKIPPED / MISSED record) of a tick.
#[derive(Debug, Clone)]
pub struct TickRun {
    pub id: Uuid,
    pub ingestion_id: Uuid,
    pub tenant_id: Uuid,
    pub scheduled_for: DateTime<Utc>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

struct Columns {
    ids: Vec<Uuid>,
    ingestion_ids: Vec<Uuid>,
    tenant_ids: Vec<Uuid>,
    scheduled_fors: Vec<DateTime<Utc>>,
    starts: Vec<Option<DateTime<Utc>>>,
    reasons: Vec<Option<String>>,
}

fn columns(runs: &[TickRun]) -> Columns {
    Columns {
        ids: runs.iter().map(|p| p.id).collect(),
        ingestion_ids: runs.iter().map(|p| p.ingestion_id).collect(),
        tenant_ids: runs.iter().map(|p| p.tenant_id).collect(),
        scheduled_fors: runs.iter().map(|p| p.scheduled_for).collect(),
        starts: runs.iter().map(|p| p.data_interval_start).collect(),
        reasons: runs.iter().map(|p| p.reason.clone()).collect(),
    }
}

/// (new) → QUEUED for each tick, unless the ingestion has a run QUEUED or RUNNING (the partial
/// unique index `runs_one_active_per_ingestion` lets at most one through and `on conflict do
/// nothing` turns the rest into "not inserted") or the tick has a row already. Returns the ids
/// inserted.
pub async fn runs_insert_queued(
    tx: &mut Transaction<'_, Postgres>,
    runs: &[TickRun],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let cols = columns(runs);
    let inserted = sqlx::query_scalar!(
        r#"
        insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for,
                          data_interval_start, reason)
        select id, ingestion_id, tenant_id, 'scheduler', scheduled_for, data_interval_start, reason
        from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[], $6::text[])
            as p(id, ingestion_id, tenant_id, scheduled_for, data_interval_start, reason)
        on conflict do nothing
        returning id
        "#,
        &cols.ids,
        &cols.ingestion_ids,
        &cols.tenant_ids,
        &cols.scheduled_fors,
        &cols.starts as &[Option<DateTime<Utc>>],
        &cols.reasons as &[Option<String>],
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(inserted)
}

/// (new) → SKIPPED for ticks refused because a run was active, naming the run in the way.
/// Returns (run id, ingestion id) of the rows written.
pub async fn runs_insert_skipped(
    tx: &mut Transaction<'_, Postgres>,
    runs: &[TickRun],
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    let cols = columns(runs);
    let skipped = sqlx::query!(
        r#"
        insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for,
                          data_interval_start, status, finished_at, reason)
        select p.id, p.ingestion_id, p.tenant_id, 'scheduler', p.scheduled_for,
               p.data_interval_start, 'SKIPPED', now(),
               'previous run still active' || coalesce(' (run ' || a.id || ', ' || a.status || ')', '')
        from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[])
            as p(id, ingestion_id, tenant_id, scheduled_for, data_interval_start)
        left join lateral (
            select r.id, r.status from runs r
            where r.ingestion_id = p.ingestion_id and r.status in ('QUEUED', 'RUNNING')
              and r.kind = 'load'
        ) a on true
        on conflict (ingestion_id, scheduled_for) do nothing
        returning id, ingestion_id
        "#,
        &cols.ids,
        &cols.ingestion_ids,
        &cols.tenant_ids,
        &cols.scheduled_fors,
        &cols.starts as &[Option<DateTime<Utc>>],
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(skipped
        .into_iter()
        .map(|r| (r.id, r.ingestion_id))
        .collect())
}

/// (new) → MISSED, each with its reason. Returns (ingestion id, reason) of the rows written.
/// Shaped as [`runs_insert_queued`], but born finished, and yielding only to a row of the same
/// tick (a MISSED tick is recorded even while a run of the ingestion is active).
pub async fn runs_insert_missed(
    tx: &mut Transaction<'_, Postgres>,
    runs: &[TickRun],
) -> Result<Vec<(Uuid, Option<String>)>, sqlx::Error> {
    let cols = columns(runs);
    let missed = sqlx::query!(
        r#"
        insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for,
                          data_interval_start, status, finished_at, reason)
        select id, ingestion_id, tenant_id, 'scheduler', scheduled_for, data_interval_start,
               'MISSED', now(), reason
        from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[], $6::text[])
            as p(id, ingestion_id, tenant_id, scheduled_for, data_interval_start, reason)
        on conflict (ingestion_id, scheduled_for) do nothing
        returning ingestion_id, reason
        "#,
        &cols.ids,
        &cols.ingestion_ids,
        &cols.tenant_ids,
        &cols.scheduled_fors,
        &cols.starts as &[Option<DateTime<Utc>>],
        &cols.reasons as &[Option<String>],
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(missed
        .into_iter()
        .map(|r| (r.ingestion_id, r.reason))
        .collect())
}

/// Which of `ticks` (ingestion, tick) already have a row: a backlog's head that does is passed
/// over. Returns their ingestion ids.
pub async fn runs_ticks_taken(
    tx: &mut Transaction<'_, Postgres>,
    ticks: &[(Uuid, DateTime<Utc>)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ingestion_ids: Vec<Uuid> = ticks.iter().map(|t| t.0).collect();
    let scheduled_fors: Vec<DateTime<Utc>> = ticks.iter().map(|t| t.1).collect();
    sqlx::query_scalar!(
        r#"
        select p.ingestion_id as "ingestion_id!"
        from unnest($1::uuid[], $2::timestamptz[]) as p(ingestion_id, scheduled_for)
        where exists (select 1 from runs r
                      where r.ingestion_id = p.ingestion_id and r.scheduled_for = p.scheduled_for)
        "#,
        &ingestion_ids,
        &scheduled_fors,
    )
    .fetch_all(&mut **tx)
    .await
}
