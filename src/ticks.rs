//! Every statement on `schedule_ticks`: the one row per live schedule (enabled, ingestion
//! ACTIVE) that holds its next fire instant, and that tickers lock with `FOR UPDATE SKIP LOCKED`.
//!
//! Writers, one per fact: the trigger `ingestions_sync_tick` creates and removes the row as the
//! ingestion's schedule goes live or off, and marks it `recompute` (with the edit's instant in
//! `updated_at`) when the schedule changes, whoever changed it (the API or a person at psql); a
//! ticker is the only writer of fire instants ([`tick_advance`]), which it mirrors into
//! `ingestions.next_run_time` and `last_scheduled_run` in the same statement.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A locked tick row with its ingestion's schedule fields.
#[derive(Debug, Clone)]
pub struct TickRow {
    pub ingestion_id: Uuid,
    pub tenant_id: Uuid,
    pub next_fire_at: DateTime<Utc>,
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The schedule changed at `edited_at`: the next fire is worked out afresh from then.
    pub recompute: bool,
    pub edited_at: DateTime<Utc>,
    pub schedule_frequency: Option<String>,
    pub schedule_time: Option<String>,
    pub schedule_timezone: String,
    pub schedule_cron: Option<String>,
    /// The ingestion's catch-up policy (`ingestions.catchup`, `max_catchup_runs`).
    pub catchup: String,
    pub max_catchup_runs: i32,
    /// Set on a resumed schedule: it was paused from this instant until `edited_at`.
    pub catchup_after: Option<DateTime<Utc>>,
    pub backlog_next: Option<DateTime<Utc>>,
    pub backlog_start: Option<DateTime<Utc>>,
    pub backlog_last: Option<DateTime<Utc>>,
    pub backlog_count: Option<i32>,
}

impl TickRow {
    /// The missed ticks still to run, when any.
    pub fn backlog(&self) -> Option<Backlog> {
        Some(Backlog {
            next: self.backlog_next?,
            start: self.backlog_start,
            last: self.backlog_last?,
            count: self.backlog_count?,
        })
    }
}

/// Under `catchup = all`, the missed ticks a schedule still owes: `next` (the oldest, whose data
/// interval starts at `start`) up to `last`, `count` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub next: DateTime<Utc>,
    pub start: Option<DateTime<Utc>>,
    pub last: DateTime<Utc>,
    pub count: i32,
}

/// Starts a tick batch's transaction: returns the database's `now()`, which the whole batch
/// works from.
///
/// The batch need not wait for its WAL flush: a crash before it undoes the runs and the tick
/// advance together, and the next ticker materialises the same ticks again (one run per tick
/// still holds: `runs_one_per_tick`).
///
/// Every statement of the batch looks rows up by key, up to a batch of them: nested loops over
/// the primary keys. Left to its costs, PostgreSQL hashes the whole tick and ingestion tables
/// instead once a batch is a few per cent of them (2,000 of 100,000 schedules: 190 ms per batch
/// instead of 50), which made a burst's materialising grow with the square of its size.
pub async fn tick_begin(tx: &mut Transaction<'_, Postgres>) -> Result<DateTime<Utc>, sqlx::Error> {
    let r = sqlx::query!(
        r#"select now() as "now!",
                  set_config('synchronous_commit', 'off', true) as "sync!",
                  set_config('enable_hashjoin', 'off', true) as "hash!",
                  set_config('enable_mergejoin', 'off', true) as "merge!""#
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(r.now)
}

/// Locks up to `limit` due tick rows (`next_fire_at <= now()`), earliest first, skipping rows
/// another ticker holds.
pub async fn tick_lock_due(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<TickRow>, sqlx::Error> {
    // Due rows and edited (recompute) rows are locked by two statements, each through its own
    // index and limited before the join: one `where due or recompute` lets the planner scan and
    // sort every due row to return a batch (hundreds of ms per batch under a burst).
    sqlx::query_as!(
        TickRow,
        r#"
        with locked as (
            select ingestion_id, tenant_id, next_fire_at, last_fire_at, recompute, updated_at,
                   catchup_after, backlog_next, backlog_start, backlog_last, backlog_count
            from schedule_ticks
            where next_fire_at <= now()
            order by next_fire_at
            limit $1
            for update skip locked
        )
        select s.ingestion_id, s.tenant_id, s.next_fire_at, s.last_fire_at, s.recompute,
               s.updated_at as edited_at,
               i.schedule_frequency, i.schedule_time, i.schedule_timezone, i.schedule_cron,
               i.catchup, i.max_catchup_runs, s.catchup_after, s.backlog_next, s.backlog_start,
               s.backlog_last, s.backlog_count
        from locked s
        join ingestions i on i.id = s.ingestion_id
        "#,
        limit
    )
    .fetch_all(&mut **tx)
    .await
}

/// Locks up to `limit` tick rows whose schedule was edited (`recompute`), due or not. The same
/// statement as [`tick_lock_due`] with another `where`: see there why they are two.
pub async fn tick_lock_edited(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<TickRow>, sqlx::Error> {
    sqlx::query_as!(
        TickRow,
        r#"
        with locked as (
            select ingestion_id, tenant_id, next_fire_at, last_fire_at, recompute, updated_at,
                   catchup_after, backlog_next, backlog_start, backlog_last, backlog_count
            from schedule_ticks
            where recompute
            limit $1
            for update skip locked
        )
        select s.ingestion_id, s.tenant_id, s.next_fire_at, s.last_fire_at, s.recompute,
               s.updated_at as edited_at,
               i.schedule_frequency, i.schedule_time, i.schedule_timezone, i.schedule_cron,
               i.catchup, i.max_catchup_runs, s.catchup_after, s.backlog_next, s.backlog_start,
               s.backlog_last, s.backlog_count
        from locked s
        join ingestions i on i.id = s.ingestion_id
        "#,
        limit
    )
    .fetch_all(&mut **tx)
    .await
}

/// Locks up to `limit` tick rows that owe missed ticks and are due a look
/// (`backlog_check_at <= now()`), through their partial index. The same statement as
/// [`tick_lock_due`] with another `where`.
pub async fn tick_lock_backlog(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<TickRow>, sqlx::Error> {
    sqlx::query_as!(
        TickRow,
        r#"
        with locked as (
            select ingestion_id, tenant_id, next_fire_at, last_fire_at, recompute, updated_at,
                   catchup_after, backlog_next, backlog_start, backlog_last, backlog_count
            from schedule_ticks
            where backlog_check_at <= now()
            order by backlog_check_at
            limit $1
            for update skip locked
        )
        select s.ingestion_id, s.tenant_id, s.next_fire_at, s.last_fire_at, s.recompute,
               s.updated_at as edited_at,
               i.schedule_frequency, i.schedule_time, i.schedule_timezone, i.schedule_cron,
               i.catchup, i.max_catchup_runs, s.catchup_after, s.backlog_next, s.backlog_start,
               s.backlog_last, s.backlog_count
        from locked s
        join ingestions i on i.id = s.ingestion_id
        "#,
        limit
    )
    .fetch_all(&mut **tx)
    .await
}

/// A locked tick row's new state.
#[derive(Debug, Clone)]
pub struct Advance {
    pub ingestion_id: Uuid,
    pub next_fire_at: DateTime<Utc>,
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The tick of the newest run this batch queued for the schedule, if any.
    pub last_queued: Option<DateTime<Utc>>,
    /// The missed ticks still owed, and when a ticker looks at them next.
    pub backlog: Option<(Backlog, DateTime<Utc>)>,
}

/// Moves locked tick rows to their next fire instant (clearing `recompute` and `catchup_after`,
/// writing what they still owe) and mirrors it into
/// `ingestions.next_run_time` (and `last_scheduled_run` when a run was queued), in one
/// statement.
pub async fn tick_advance(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[Advance],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|a| a.ingestion_id).collect();
    let next: Vec<DateTime<Utc>> = rows.iter().map(|a| a.next_fire_at).collect();
    let last: Vec<Option<DateTime<Utc>>> = rows.iter().map(|a| a.last_fire_at).collect();
    let queued: Vec<Option<DateTime<Utc>>> = rows.iter().map(|a| a.last_queued).collect();
    let owed = |f: fn(&(Backlog, DateTime<Utc>)) -> DateTime<Utc>| -> Vec<Option<DateTime<Utc>>> {
        rows.iter().map(|a| a.backlog.as_ref().map(f)).collect()
    };
    let b_next = owed(|b| b.0.next);
    let b_last = owed(|b| b.0.last);
    let b_check = owed(|b| b.1);
    let b_start: Vec<Option<DateTime<Utc>>> = rows
        .iter()
        .map(|a| a.backlog.and_then(|b| b.0.start))
        .collect();
    let b_count: Vec<Option<i32>> = rows.iter().map(|a| a.backlog.map(|b| b.0.count)).collect();
    sqlx::query!(
        r#"
        with a as (
            select * from unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[],
                                 $5::timestamptz[], $6::timestamptz[], $7::timestamptz[],
                                 $8::int4[], $9::timestamptz[])
                as a(ingestion_id, next_fire_at, last_fire_at, last_queued, backlog_next,
                     backlog_start, backlog_last, backlog_count, backlog_check_at)
        ), t as (
            update schedule_ticks s
            set next_fire_at = a.next_fire_at, last_fire_at = a.last_fire_at,
                recompute = false, updated_at = now(), catchup_after = null,
                backlog_next = a.backlog_next, backlog_start = a.backlog_start,
                backlog_last = a.backlog_last, backlog_count = a.backlog_count,
                backlog_check_at = a.backlog_check_at
            from a where s.ingestion_id = a.ingestion_id
        )
        update ingestions i
        set next_run_time = a.next_fire_at,
            last_scheduled_run = greatest(a.last_queued, i.last_scheduled_run)
        from a where i.id = a.ingestion_id
        "#,
        &ids,
        &next,
        &last as &[Option<DateTime<Utc>>],
        &queued as &[Option<DateTime<Utc>>],
        &b_next as &[Option<DateTime<Utc>>],
        &b_start as &[Option<DateTime<Utc>>],
        &b_last as &[Option<DateTime<Utc>>],
        &b_count as &[Option<i32>],
        &b_check as &[Option<DateTime<Utc>>],
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How long until the earliest tick row wants attention, by the database's clock; `None` when
/// no schedule is live.
pub async fn tick_wait(db: impl sqlx::PgExecutor<'_>) -> Result<Option<Duration>, sqlx::Error> {
    let secs = sqlx::query_scalar!(
        r#"
        select extract(epoch from least(
                   (select min(next_fire_at) from schedule_ticks),
                   (select now() from schedule_ticks where recompute limit 1),
                   (select min(backlog_check_at) from schedule_ticks
                    where backlog_check_at is not null)) - now())::float8
        "#
    )
    .fetch_one(db)
    .await?;
    Ok(secs.map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e9))))
}

/// How many schedules are live (enabled, ingestion ACTIVE).
pub async fn tick_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"select count(*) as "n!" from schedule_ticks"#)
        .fetch_one(pool)
        .await
}
