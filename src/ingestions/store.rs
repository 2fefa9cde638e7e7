//! Every statement on the `ingestions` table. Each one a tenant makes is scoped to that tenant:
//! another tenant's ingestion is as absent as one that does not exist.
//!
//! One writer per fact: the trigger `ingestions_sync_tick` keeps the schedule's tick row in step
//! with the definition (created, marked `recompute` with the edit's instant, or removed), and
//! only a ticker works out fire instants and writes them (`schedule_ticks.next_fire_at`, mirrored
//! into `ingestions.next_run_time` for people at psql). Until a ticker has recomputed an edited
//! schedule, a read answers what the ticker will store: the first fire after the edit
//! ([`IngestionRow::next_run_time`]).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::draft::Valid;
use crate::audit::{audit_actor_set, Actor};
use crate::paging::PageRequest;
use crate::schedule::{Schedule, ScheduleError, ScheduleInput};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("an ingestion named '{0}' already exists")]
    NameTaken(String),
    #[error("the tenant has {limit} ingestions, its quota (max_ingestions); delete one or ask an admin to raise it")]
    Quota { limit: i32 },
    #[error("no such ingestion")]
    NotFound,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An ingestion as stored, with its schedule's next fire instant.
#[derive(Debug, Clone)]
pub struct IngestionRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub status: String,
    pub source_type: String,
    pub source_path: String,
    pub format_type: String,
    pub destination_table: String,
    /// The tenant's Iceberg namespace root: the table is `<tenant_namespace>.<destination_table>`.
    pub tenant_namespace: String,
    pub options: Value,
    pub schedule_frequency: Option<String>,
    pub schedule_time: Option<String>,
    pub schedule_timezone: String,
    pub schedule_cron: Option<String>,
    pub schedule_enabled: bool,
    /// When the next scheduled run is due; `None` while the schedule is off.
    pub next_run_time: Option<DateTime<Utc>>,
    pub last_scheduled_run: Option<DateTime<Utc>>,
    /// Why, since when and by whom the schedule is paused; null while it is enabled.
    pub paused_reason: Option<String>,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_by: Option<String>,
    /// The catch-up policy: `skip`, `once` or `all`, and the most runs `all` owes.
    pub catchup: String,
    pub max_catchup_runs: i32,
    /// Under `all`, the missed ticks still to run.
    pub catchup_backlog: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The schedule columns of an ingestion (any tenant's: the caller checks), for the schedule view.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    pub tenant_id: Uuid,
    pub schedule_frequency: Option<String>,
    pub schedule_time: Option<String>,
    pub schedule_timezone: String,
    pub schedule_cron: Option<String>,
    pub schedule_enabled: bool,
    pub next_run_time: Option<DateTime<Utc>>,
}

impl ScheduleRow {
    /// The stored schedule, parsed as a ticker parses it; `None` when the fields hold none.
    pub fn schedule(&self) -> Option<Schedule> {
        stored_schedule(
            self.schedule_frequency.as_deref(),
            self.schedule_time.as_deref(),
            &self.schedule_timezone,
            self.schedule_cron.as_deref(),
        )
        .ok()
    }
}

/// A stored schedule's fields, parsed: the one parse the ticker and the reads of the API share.
pub fn stored_schedule(
    frequency: Option<&str>,
    time: Option<&str>,
    timezone: &str,
    cron: Option<&str>,
) -> Result<Schedule, ScheduleError> {
    Schedule::parse(&ScheduleInput {
        frequency,
        time,
        timezone: Some(timezone),
        cron,
    })
}

/// The tick row as a read finds it: (next fire, recompute pending, edited at).
struct Tick {
    next_fire_at: Option<DateTime<Utc>>,
    recompute: Option<bool>,
    edited_at: Option<DateTime<Utc>>,
}

/// The next fire instant a read shows: the tick row's, or, while an edit waits for a ticker,
/// the one the ticker will store (the first fire after the edit; see the module docs).
fn next_fire(tick: Tick, schedule: impl FnOnce() -> Option<Schedule>) -> Option<DateTime<Utc>> {
    match tick {
        Tick {
            recompute: Some(true),
            edited_at: Some(edited),
            ..
        } => schedule().and_then(|s| s.next_after(edited)),
        t => t.next_fire_at,
    }
}

/// An [`IngestionRow`] from a row of `get` or `select`, its next fire instant worked out.
macro_rules! ingestion_row {
    ($r:expr) => {{
        let r = $r;
        let tick = Tick {
            next_fire_at: r.tick_next_fire_at,
            recompute: r.tick_recompute,
            edited_at: r.tick_edited_at,
        };
        let next_run_time = next_fire(tick, || {
            stored_schedule(
                r.schedule_frequency.as_deref(),
                r.schedule_time.as_deref(),
                &r.schedule_timezone,
                r.schedule_cron.as_deref(),
            )
            .ok()
        });
        IngestionRow {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            description: r.description,
            status: r.status,
            source_type: r.source_type,
            source_path: r.source_path,
            format_type: r.format_type,
            destination_table: r.destination_table,
            tenant_namespace: r.tenant_namespace,
            options: r.options,
            schedule_frequency: r.schedule_frequency,
            schedule_time: r.schedule_time,
            schedule_timezone: r.schedule_timezone,
            schedule_cron: r.schedule_cron,
            schedule_enabled: r.schedule_enabled,
            next_run_time,
            last_scheduled_run: r.last_scheduled_run,
            paused_reason: r.paused_reason,
            paused_at: r.paused_at,
            paused_by: r.paused_by,
            catchup: r.catchup,
            max_catchup_runs: r.max_catchup_runs,
            catchup_backlog: r.tick_backlog_count.unwrap_or(0),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }};
}

fn name_taken(e: sqlx::Error, name: &str) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("ingestions_name_unique_per_tenant") => {
            Error::NameTaken(name.to_owned())
        }
        _ => Error::Db(e),
    }
}

/// Stores a new ingestion for `actor`; its tick row follows (trigger), and so does its audit
/// row (`ingestions_audit`). Returns it as stored.
///
/// Refused with [`Error::Quota`] when the tenant already has its quota of ingestions (its own
/// `max_ingestions`, else `default_max`). Creations of one tenant take its row lock in turn, so
/// two cannot both take the last place.
pub async fn ingestion_insert(
    pool: &PgPool,
    tenant_id: Uuid,
    v: &Valid,
    default_max: i32,
    actor: &Actor,
) -> Result<IngestionRow> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    audit_actor_set(&mut tx, actor).await?;
    let limit = sqlx::query_scalar!(
        r#"select coalesce(max_ingestions, $2) as "limit!" from tenants where id = $1
           for no key update"#,
        tenant_id,
        default_max
    )
    .fetch_one(&mut *tx)
    .await?;
    // After the lock, in a statement of its own: its snapshot sees every earlier creation.
    let count = sqlx::query_scalar!(
        r#"select count(*) as "n!" from ingestions where tenant_id = $1"#,
        tenant_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if count >= i64::from(limit) {
        return Err(Error::Quota { limit });
    }
    sqlx::query!(
        "insert into ingestions (id, tenant_id, name, description, status, source_type, source_path,
                                 format_type, destination_table, options, schedule_frequency,
                                 schedule_time, schedule_timezone, schedule_cron, schedule_enabled,
                                 catchup, max_catchup_runs)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        id,
        tenant_id,
        v.name,
        v.description,
        v.status.as_str(),
        v.source_type.as_str(),
        v.source_path.as_str(),
        v.format_type.as_str(),
        v.destination_table.to_string(),
        v.options,
        v.fields.frequency,
        v.fields.time,
        v.fields.timezone,
        v.fields.cron,
        v.fields.enabled,
        v.catchup.as_str(),
        v.max_catchup_runs,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| name_taken(e, &v.name))?;
    let row = get(&mut tx, tenant_id, id).await?.ok_or(Error::NotFound)?;
    tx.commit().await?;
    Ok(row)
}

/// Writes a whole definition over the tenant's ingestion `id`; its tick row follows (trigger).
/// Returns it as stored.
///
/// `actor` names who asked: the audit row of the change records them (trigger
/// `ingestions_audit`), and so does a pause the change makes (trigger `ingestions_stamp_pause`,
/// through the transaction's `autoloader.actor`: the token's name).
pub async fn ingestion_update(
    pool: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
    v: &Valid,
    actor: &Actor,
) -> Result<IngestionRow> {
    let mut tx = pool.begin().await?;
    audit_actor_set(&mut tx, actor).await?;
    // The insert's values in its order, written again: an upsert would create the row a
    // PUT to a missing (or another tenant's) id must answer 404 for.
    let updated = sqlx::query!(
        "update ingestions set name = $3, description = $4, status = $5, source_type = $6,
                source_path = $7, format_type = $8, destination_table = $9, options = $10,
                schedule_frequency = $11, schedule_time = $12, schedule_timezone = $13,
                schedule_cron = $14, schedule_enabled = $15, catchup = $16,
                max_catchup_runs = $17, updated_at = now()
         where id = $1 and tenant_id = $2",
        id,
        tenant_id,
        v.name,
        v.description,
        v.status.as_str(),
        v.source_type.as_str(),
        v.source_path.as_str(),
        v.format_type.as_str(),
        v.destination_table.to_string(),
        v.options,
        v.fields.frequency,
        v.fields.time,
        v.fields.timezone,
        v.fields.cron,
        v.fields.enabled,
        v.catchup.as_str(),
        v.max_catchup_runs,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| name_taken(e, &v.name))?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    let row = get(&mut tx, tenant_id, id).await?.ok_or(Error::NotFound)?;
    tx.commit().await?;
    Ok(row)
}

async fn get(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Option<IngestionRow>, sqlx::Error> {
    // The columns of `select`, read by primary key. One statement for both would let a cached
    // generic plan read the tenant's whole index for `($2 is null or id = $2)`.
    let r = sqlx::query!(
        r#"select i.id, i.tenant_id, i.name, i.description, i.status, i.source_type, i.source_path,
                  i.format_type, i.destination_table, i.options, i.schedule_frequency,
                  i.schedule_time, i.schedule_timezone, i.schedule_cron, i.schedule_enabled,
                  i.last_scheduled_run, i.paused_reason, i.paused_at, i.paused_by,
                  i.catchup, i.max_catchup_runs, i.created_at, i.updated_at,
                  t.backlog_count as "tick_backlog_count?",
                  t.next_fire_at as "tick_next_fire_at?", t.recompute as "tick_recompute?",
                  t.updated_at as "tick_edited_at?", n.namespace as tenant_namespace
           from ingestions i join tenants n on n.id = i.tenant_id
           left join schedule_ticks t on t.ingestion_id = i.id
           where i.id = $1 and i.tenant_id = $2"#,
        id,
        tenant_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(r.map(|r| ingestion_row!(r)))
}

/// A filtered page of the tenant's ingestion rows, oldest first, each with its tick row.
async fn select(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    filter: &ListFilter,
    page: PageRequest,
) -> Result<Vec<IngestionRow>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select i.id, i.tenant_id, i.name, i.description, i.status, i.source_type, i.source_path,
                  i.format_type, i.destination_table, i.options, i.schedule_frequency,
                  i.schedule_time, i.schedule_timezone, i.schedule_cron, i.schedule_enabled,
                  i.last_scheduled_run, i.paused_reason, i.paused_at, i.paused_by,
                  i.catchup, i.max_catchup_runs, i.created_at, i.updated_at,
                  t.backlog_count as "tick_backlog_count?",
                  t.next_fire_at as "tick_next_fire_at?", t.recompute as "tick_recompute?",
                  t.updated_at as "tick_edited_at?", n.namespace as tenant_namespace
           from ingestions i join tenants n on n.id = i.tenant_id
           left join schedule_ticks t on t.ingestion_id = i.id
           where i.tenant_id = $1
             and ($2::text is null or i.status = $2)
             and ($3::bool is null or i.schedule_enabled = $3)
             and ($4::text is null or strpos(lower(i.name), lower($4)) > 0)
           order by i.created_at, i.id
           limit $5 offset $6"#,
        tenant_id,
        filter.status,
        filter.schedule_enabled,
        filter.name,
        page.size,
        page.offset(),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| ingestion_row!(r)).collect())
}

/// The tenant's ingestion `id`.
pub async fn ingestion_get(
    pool: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Option<IngestionRow>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    get(&mut conn, tenant_id, id).await
}

/// Whether the tenant has an ingestion `id`.
pub async fn ingestion_exists(
    pool: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let found = sqlx::query_scalar!(
        r#"select exists (select 1 from ingestions where id = $1 and tenant_id = $2) as "found!""#,
        id,
        tenant_id
    )
    .fetch_one(pool)
    .await?;
    Ok(found)
}

/// Which of the tenant's ingestions a list shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// `ACTIVE` or `PAUSED`.
    pub status: Option<&'static str>,
    pub schedule_enabled: Option<bool>,
    /// A substring of the name, any case.
    pub name: Option<String>,
}

/// One page of the tenant's ingestions, oldest first, and how many match in all.
pub async fn ingestion_list(
    pool: &PgPool,
    tenant_id: Uuid,
    filter: &ListFilter,
    page: PageRequest,
) -> Result<(Vec<IngestionRow>, i64), sqlx::Error> {
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from ingestions
           where tenant_id = $1 and ($2::text is null or status = $2)
             and ($3::bool is null or schedule_enabled = $3)
             and ($4::text is null or strpos(lower(name), lower($4)) > 0)"#,
        tenant_id,
        filter.status,
        filter.schedule_enabled,
        filter.name,
    )
    .fetch_one(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let rows = select(&mut conn, tenant_id, filter, page).await?;
    Ok((rows, total))
}

/// Deletes the tenant's ingestion with its tick, its runs and its ledger (cascades), for
/// `actor`; its audit rows stay. `false`: there was none.
pub async fn ingestion_delete(
    pool: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
    actor: &Actor,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    audit_actor_set(&mut tx, actor).await?;
    let deleted = sqlx::query!(
        "delete from ingestions where id = $1 and tenant_id = $2",
        id,
        tenant_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected() > 0)
}

/// The schedule of ingestion `id`, whichever tenant's it is (the schedule view checks).
pub async fn ingestion_schedule(
    pool: &PgPool,
    id: Uuid,
) -> Result<Option<ScheduleRow>, sqlx::Error> {
    let r = sqlx::query!(
        r#"select i.tenant_id, i.schedule_frequency, i.schedule_time, i.schedule_timezone,
                  i.schedule_cron, i.schedule_enabled,
                  t.next_fire_at as "tick_next_fire_at?", t.recompute as "tick_recompute?",
                  t.updated_at as "tick_edited_at?"
           from ingestions i left join schedule_ticks t on t.ingestion_id = i.id
           where i.id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?;
    Ok(r.map(|r| {
        let mut row = ScheduleRow {
            tenant_id: r.tenant_id,
            schedule_frequency: r.schedule_frequency,
            schedule_time: r.schedule_time,
            schedule_timezone: r.schedule_timezone,
            schedule_cron: r.schedule_cron,
            schedule_enabled: r.schedule_enabled,
            next_run_time: None,
        };
        let tick = Tick {
            next_fire_at: r.tick_next_fire_at,
            recompute: r.tick_recompute,
            edited_at: r.tick_edited_at,
        };
        row.next_run_time = next_fire(tick, || row.schedule());
        row
    }))
}

/// Switches the tenant's schedule off, whatever the rest of the definition holds (the product
/// spec's `disable_schedule` checks nothing: a definition that today's rules refuse, or a local
/// source whose root was removed since, can still be stopped). The trigger removes the tick.
/// Returns the ingestion as stored; `None`: no such ingestion.
///
/// The pause records `reason`, the time and who asked (`actor`'s name); disabling a paused
/// schedule again keeps the first pause. The audit row follows (trigger `ingestions_audit`).
pub async fn ingestion_schedule_disable(
    pool: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
    reason: Option<&str>,
    actor: &Actor,
) -> Result<Option<IngestionRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    audit_actor_set(&mut tx, actor).await?;
    sqlx::query!(
        "update ingestions set schedule_enabled = false, updated_at = now(),
                paused_reason = $3, paused_at = now(), paused_by = $4
         where id = $1 and tenant_id = $2 and schedule_enabled",
        id,
        tenant_id,
        reason,
        actor.name
    )
    .execute(&mut *tx)
    .await?;
    let row = get(&mut tx, tenant_id, id).await?;
    tx.commit().await?;
    Ok(row)
}

/// Switches off a schedule whose stored definition no longer parses (a ticker found it); the
/// trigger removes its tick row, and the audit row says the scheduler did it (this names it for
/// the rest of the ticker's transaction, which writes nothing else of an ingestion's definition).
pub async fn ingestion_schedule_switch_off(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
) -> Result<(), sqlx::Error> {
    audit_actor_set(tx, &Actor::scheduler()).await?;
    sqlx::query!(
        "update ingestions set schedule_enabled = false, next_run_time = null,
                paused_reason = 'the stored schedule no longer parses (see its MISSED run)',
                paused_at = now(), paused_by = 'scheduler'
         where id = $1",
        id
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One ingestion's options, for re-sealing its secrets: (id, tenant, options).
#[derive(Debug, Clone)]
pub struct StoredOptions {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub options: Value,
}

/// Up to `limit` ingestions with an id after `after`, in id order, whose options hold anything
/// (a secret needs a key). For walking every ingestion in pages.
pub async fn ingestion_options_after(
    pool: &PgPool,
    after: Uuid,
    limit: i64,
) -> Result<Vec<StoredOptions>, sqlx::Error> {
    sqlx::query_as!(
        StoredOptions,
        "select id, tenant_id, options from ingestions
         where id > $1 and options <> '{}'::jsonb
         order by id limit $2",
        after,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Replaces ingestion `id`'s options with `new` if they are still `old` (an edit in between
/// wins; the caller reads them again), for `actor`. Returns whether it replaced them.
/// `updated_at` stays: the definition did not change, only how its secrets are stored (the audit
/// row shows each secret resealed as changed, masked).
pub async fn ingestion_options_swap(
    pool: &PgPool,
    id: Uuid,
    old: &Value,
    new: &Value,
    actor: &Actor,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    audit_actor_set(&mut tx, actor).await?;
    let done = sqlx::query!(
        "update ingestions set options = $3 where id = $1 and options = $2",
        id,
        old,
        new
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Ingestion `id`'s options, whichever tenant's it is (for re-sealing).
pub async fn ingestion_options_get(
    pool: &PgPool,
    id: Uuid,
) -> Result<Option<StoredOptions>, sqlx::Error> {
    sqlx::query_as!(
        StoredOptions,
        "select id, tenant_id, options from ingestions where id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

/// The orders the dashboard's list offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// Oldest first, as the API lists them.
    #[default]
    Created,
    /// By name, any case.
    Name,
    /// The soonest next run first; schedules that are off last.
    NextRun,
}

impl ListOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            ListOrder::Created => "created",
            ListOrder::Name => "name",
            ListOrder::NextRun => "next_run",
        }
    }
}

/// One page of the ingestions of `tenant_id` (`None`: of every tenant, for the admin's
/// dashboard) in `order`, and how many match in all; `failing_only`: those whose latest load
/// (SKIPPED and MISSED ticks are not loads) FAILED.
pub async fn ingestion_list_ordered(
    pool: &PgPool,
    tenant_id: Option<Uuid>,
    filter: &ListFilter,
    failing_only: bool,
    order: ListOrder,
    page: PageRequest,
) -> Result<(Vec<IngestionRow>, i64), sqlx::Error> {
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from ingestions
           where ($1::uuid is null or tenant_id = $1) and ($2::text is null or status = $2)
             and ($3::bool is null or schedule_enabled = $3)
             and ($4::text is null or strpos(lower(name), lower($4)) > 0)
             and (not $5 or (select r.status from runs r
                             where r.ingestion_id = ingestions.id and r.kind = 'load'
                               and r.status not in ('SKIPPED', 'MISSED')
                             order by r.queued_at desc limit 1) = 'FAILED')"#,
        tenant_id,
        filter.status,
        filter.schedule_enabled,
        filter.name,
        failing_only,
    )
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query!(
        r#"select i.id, i.tenant_id, i.name, i.description, i.status, i.source_type, i.source_path,
                  i.format_type, i.destination_table, i.options, i.schedule_frequency,
                  i.schedule_time, i.schedule_timezone, i.schedule_cron, i.schedule_enabled,
                  i.last_scheduled_run, i.paused_reason, i.paused_at, i.paused_by,
                  i.catchup, i.max_catchup_runs, i.created_at, i.updated_at,
                  t.backlog_count as "tick_backlog_count?",
                  t.next_fire_at as "tick_next_fire_at?", t.recompute as "tick_recompute?",
                  t.updated_at as "tick_edited_at?", n.namespace as tenant_namespace
           from ingestions i join tenants n on n.id = i.tenant_id
           left join schedule_ticks t on t.ingestion_id = i.id
           where ($1::uuid is null or i.tenant_id = $1)
             and ($2::text is null or i.status = $2)
             and ($3::bool is null or i.schedule_enabled = $3)
             and ($4::text is null or strpos(lower(i.name), lower($4)) > 0)
             and (not $8 or (select r.status from runs r
                             where r.ingestion_id = i.id and r.kind = 'load'
                               and r.status not in ('SKIPPED', 'MISSED')
                             order by r.queued_at desc limit 1) = 'FAILED')
           order by case when $7 = 'name' then lower(i.name) end,
                    case when $7 = 'next_run' then
                        case when i.schedule_enabled then t.next_fire_at end end nulls last,
                    i.created_at, i.id
           limit $5 offset $6"#,
        tenant_id,
        filter.status,
        filter.schedule_enabled,
        filter.name,
        page.size,
        page.offset(),
        order.as_str(),
        failing_only,
    )
    .fetch_all(pool)
    .await?;
    Ok((rows.into_iter().map(|r| ingestion_row!(r)).collect(), total))
}
