//! The ticker: turns due schedule ticks into run rows.
//!
//! One call of [`tick_once`] is one transaction: it locks up to `batch_size` tick rows that are due
//! (or whose schedule changed) with `FOR UPDATE SKIP LOCKED`, inserts the runs their ticks call for,
//! and advances each row to its next fire instant after the database's `now()`. A ticker killed
//! mid-batch rolls back and leaves the rows due for the next ticker, so any number of tickers can
//! run side by side without a leader, and a tick is never lost nor materialised twice.
//!
//! What a due tick becomes (the product spec's section 10):
//! * late by at most the misfire grace time: a QUEUED run; with coalescing, one run for all such
//!   ticks of a schedule, for the latest tick;
//! * late by more than the grace time: one MISSED row per schedule whose `reason` gives the count
//!   and window;
//! * a run of the ingestion already QUEUED or RUNNING: a SKIPPED row, reason
//!   `previous run still active`. The partial unique index `runs_one_active_per_ingestion` decides
//!   this (the insert is `on conflict do nothing`); the code only records what it decided.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::schedule::{Schedule, ScheduleInput};
use crate::wake::Waker;

/// The most ticks of one schedule worked out in one pass; past that the schedule jumps to now.
const MAX_TICKS_PER_SCHEDULE: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error while ticking: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct TickerConfig {
    /// Most tick rows one transaction locks.
    pub batch_size: i64,
    pub misfire_grace: Duration,
    pub coalesce: bool,
    /// Longest sleep between looks at the tick table, whatever the notifications say.
    pub safety_poll: Duration,
}

/// What one [`tick_once`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Tick rows locked and processed (due or recomputed).
    pub rows: usize,
    pub queued: usize,
    pub skipped: usize,
    /// MISSED rows written (one per schedule per pass).
    pub missed_rows: usize,
    /// Ticks those MISSED rows stand for.
    pub missed_ticks: u64,
    /// Schedules whose next fire instant was recomputed after an edit.
    pub recomputed: usize,
    /// Schedules switched off because their stored definition does not parse.
    pub invalid: usize,
}

/// One run (or SKIPPED / MISSED record) the pass wants to write.
struct Planned {
    id: Uuid,
    ingestion_id: Uuid,
    tenant_id: Uuid,
    scheduled_for: DateTime<Utc>,
    data_interval_start: Option<DateTime<Utc>>,
    reason: Option<String>,
}

#[derive(Default)]
struct Plan {
    runs: Vec<Planned>,
    missed: Vec<Planned>,
    missed_ticks: u64,
    /// (ingestion, next fire, last fire)
    advance: Vec<(Uuid, DateTime<Utc>, Option<DateTime<Utc>>)>,
    invalid: Vec<(Uuid, Uuid, DateTime<Utc>, String)>,
    recomputed: usize,
}

/// A locked tick row with its ingestion's schedule fields.
struct TickRow {
    ingestion_id: Uuid,
    tenant_id: Uuid,
    next_fire_at: DateTime<Utc>,
    last_fire_at: Option<DateTime<Utc>>,
    recompute: bool,
    schedule_frequency: Option<String>,
    schedule_time: Option<String>,
    schedule_timezone: String,
    schedule_cron: Option<String>,
}

/// Materialises the runs of up to one batch of due ticks, in one transaction.
pub async fn tick_once(pool: &PgPool, config: &TickerConfig) -> Result<TickReport> {
    let mut tx = pool.begin().await?;
    // The batch need not wait for its WAL flush: a crash before it undoes the runs and the tick
    // advance together, and the next ticker materialises the same ticks again (one run per tick
    // still holds: `runs_one_per_tick`).
    //
    // Every statement of the batch looks rows up by key, up to `batch_size` of them: nested loops
    // over the primary keys. Left to its costs, PostgreSQL hashes the whole tick and ingestion
    // tables instead once a batch is a few per cent of them (2,000 of 100,000 schedules: 190 ms
    // per batch instead of 50), which made a burst's materialising grow with the square of its
    // size.
    let now = sqlx::query!(
        r#"select now() as "now!",
                  set_config('synchronous_commit', 'off', true) as "sync!",
                  set_config('enable_hashjoin', 'off', true) as "hash!",
                  set_config('enable_mergejoin', 'off', true) as "merge!""#
    )
    .fetch_one(&mut *tx)
    .await?
    .now;
    // Due rows and edited (recompute) rows are locked by two statements, each through its own
    // index and limited before the join: one `where due or recompute` lets the planner scan and
    // sort every due row to return a batch (hundreds of ms per batch under a burst).
    let mut rows = sqlx::query_as!(
        TickRow,
        r#"
        with locked as (
            select ingestion_id, tenant_id, next_fire_at, last_fire_at, recompute
            from schedule_ticks
            where next_fire_at <= now()
            order by next_fire_at
            limit $1
            for update skip locked
        )
        select s.ingestion_id, s.tenant_id, s.next_fire_at, s.last_fire_at, s.recompute,
               i.schedule_frequency, i.schedule_time, i.schedule_timezone, i.schedule_cron
        from locked s
        join ingestions i on i.id = s.ingestion_id
        "#,
        config.batch_size
    )
    .fetch_all(&mut *tx)
    .await?;
    let edited = sqlx::query_as!(
        TickRow,
        r#"
        with locked as (
            select ingestion_id, tenant_id, next_fire_at, last_fire_at, recompute
            from schedule_ticks
            where recompute
            limit $1
            for update skip locked
        )
        select s.ingestion_id, s.tenant_id, s.next_fire_at, s.last_fire_at, s.recompute,
               i.schedule_frequency, i.schedule_time, i.schedule_timezone, i.schedule_cron
        from locked s
        join ingestions i on i.id = s.ingestion_id
        "#,
        config.batch_size
    )
    .fetch_all(&mut *tx)
    .await?;
    // A row both due and edited comes back from both statements (our own lock does not make the
    // second skip it): keep it once.
    let seen: std::collections::HashSet<Uuid> = rows.iter().map(|r| r.ingestion_id).collect();
    rows.extend(
        edited
            .into_iter()
            .filter(|r| !seen.contains(&r.ingestion_id)),
    );
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(TickReport::default());
    }

    let grace = chrono::Duration::from_std(config.misfire_grace).unwrap_or(chrono::Duration::MAX);
    let mut plan = Plan::default();
    for row in &rows {
        let parsed = Schedule::parse(&ScheduleInput {
            frequency: row.schedule_frequency.as_deref(),
            time: row.schedule_time.as_deref(),
            timezone: Some(row.schedule_timezone.as_str()),
            cron: row.schedule_cron.as_deref(),
        });
        let schedule = match parsed {
            Ok(s) => s,
            Err(e) => {
                plan.invalid.push((
                    row.ingestion_id,
                    row.tenant_id,
                    row.next_fire_at,
                    e.to_string(),
                ));
                continue;
            }
        };
        if row.recompute {
            // An edited (or re-enabled, or resumed) schedule starts afresh from now: the edit
            // never fires a run, and a tick that was due under the old definition is dropped.
            if let Some(next) = schedule.next_after(now) {
                plan.advance
                    .push((row.ingestion_id, next, row.last_fire_at));
            }
            plan.recomputed += 1;
            continue;
        }
        let due = DueSchedule {
            ingestion_id: row.ingestion_id,
            tenant_id: row.tenant_id,
            first_due: row.next_fire_at,
            last_fire: row.last_fire_at,
            schedule: &schedule,
        };
        plan_due_ticks(&mut plan, &due, now, grace, config.coalesce);
    }

    let mut report = write_plan(&mut tx, plan).await?;
    report.rows = rows.len();
    tx.commit().await?;
    record_metrics(&report);
    Ok(report)
}

/// A locked tick row that is due, with its parsed schedule.
struct DueSchedule<'a> {
    ingestion_id: Uuid,
    tenant_id: Uuid,
    first_due: DateTime<Utc>,
    last_fire: Option<DateTime<Utc>>,
    schedule: &'a Schedule,
}

/// Consecutive ticks of one schedule that were too late to run.
struct MissedWindow {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    count: u64,
    interval_start: Option<DateTime<Utc>>,
}

/// Works out what the due ticks of one schedule become.
fn plan_due_ticks(
    plan: &mut Plan,
    due: &DueSchedule<'_>,
    now: DateTime<Utc>,
    grace: chrono::Duration,
    coalesce: bool,
) {
    let DueSchedule {
        ingestion_id,
        tenant_id,
        schedule,
        ..
    } = *due;
    let mut previous = due.last_fire;
    let mut missed: Option<MissedWindow> = None;
    // (tick, start of its data interval)
    let mut runnable: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    let mut tick = Some(due.first_due);
    let mut seen = 0;
    while let Some(t) = tick.filter(|t| *t <= now && seen < MAX_TICKS_PER_SCHEDULE) {
        if now - t > grace {
            let window = missed.get_or_insert(MissedWindow {
                first: t,
                last: t,
                count: 0,
                interval_start: previous,
            });
            window.last = t;
            window.count += 1;
        } else {
            runnable.push((t, previous));
        }
        previous = Some(t);
        seen += 1;
        tick = schedule.next_after(t);
    }
    let last_fire_at = previous;

    if let Some(MissedWindow {
        first,
        last,
        count: n,
        interval_start: start,
    }) = missed
    {
        plan.missed_ticks += n;
        plan.missed.push(Planned {
            id: Uuid::now_v7(),
            ingestion_id,
            tenant_id,
            scheduled_for: last,
            data_interval_start: start,
            reason: Some(format!(
                "{n} tick(s) from {} to {} were more than {}s late (no worker was ticking); not run",
                first.to_rfc3339(),
                last.to_rfc3339(),
                grace.num_seconds()
            )),
        });
    }
    if coalesce && runnable.len() > 1 {
        let (first, start) = runnable[0];
        let count = runnable.len();
        let (last, _) = runnable[count - 1];
        plan.runs.push(Planned {
            id: Uuid::now_v7(),
            ingestion_id,
            tenant_id,
            scheduled_for: last,
            data_interval_start: start,
            reason: Some(format!(
                "coalesced {count} late ticks from {} to {}",
                first.to_rfc3339(),
                last.to_rfc3339()
            )),
        });
    } else {
        for (t, start) in runnable {
            plan.runs.push(Planned {
                id: Uuid::now_v7(),
                ingestion_id,
                tenant_id,
                scheduled_for: t,
                data_interval_start: start,
                reason: None,
            });
        }
    }
    // Past the cap, skip ahead rather than grind through years of an every-minute schedule.
    let next = tick
        .filter(|t| *t > now)
        .or_else(|| schedule.next_after(now));
    if let Some(next) = next {
        plan.advance.push((ingestion_id, next, last_fire_at));
    }
}

async fn write_plan(tx: &mut Transaction<'_, Postgres>, plan: Plan) -> Result<TickReport> {
    let mut report = TickReport {
        missed_ticks: plan.missed_ticks,
        recomputed: plan.recomputed,
        invalid: plan.invalid.len(),
        ..TickReport::default()
    };

    // Runs first: the partial unique index lets at most one active run per ingestion through, and
    // `on conflict do nothing` turns the rest into "not inserted" rather than an error.
    let cols = columns(&plan.runs);
    let inserted = sqlx::query!(
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
    report.queued = inserted.len();
    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().map(|r| r.id).collect();
    // The tick of each ingestion's newest queued run, for `ingestions.last_scheduled_run`.
    let mut last_queued: std::collections::HashMap<Uuid, DateTime<Utc>> = Default::default();
    for p in plan.runs.iter().filter(|p| inserted.contains(&p.id)) {
        let e = last_queued.entry(p.ingestion_id).or_insert(p.scheduled_for);
        *e = (*e).max(p.scheduled_for);
    }

    // What did not go in collided with an active run (or its tick already has a row, which the
    // insert below also leaves alone): record the tick as SKIPPED, naming the run in the way.
    let refused: Vec<Planned> = plan
        .runs
        .into_iter()
        .filter(|p| !inserted.contains(&p.id))
        .collect();
    if !refused.is_empty() {
        let cols = columns(&refused);
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
        report.skipped = skipped.len();
        for s in &skipped {
            tracing::info!(ingestion_id = %s.ingestion_id, run_id = %s.id,
                           "tick skipped: previous run still active");
        }
    }

    if !plan.missed.is_empty() {
        let cols = columns(&plan.missed);
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
        report.missed_rows = missed.len();
        for m in &missed {
            tracing::warn!(ingestion_id = %m.ingestion_id, reason = m.reason.as_deref().unwrap_or(""),
                           "ticks missed");
        }
    }

    if !plan.advance.is_empty() {
        let ids: Vec<Uuid> = plan.advance.iter().map(|a| a.0).collect();
        let next: Vec<DateTime<Utc>> = plan.advance.iter().map(|a| a.1).collect();
        let last: Vec<Option<DateTime<Utc>>> = plan.advance.iter().map(|a| a.2).collect();
        let queued: Vec<Option<DateTime<Utc>>> = plan
            .advance
            .iter()
            .map(|a| last_queued.get(&a.0).copied())
            .collect();
        sqlx::query!(
            r#"
            with a as (
                select * from unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[])
                    as a(ingestion_id, next_fire_at, last_fire_at, last_queued)
            ), t as (
                update schedule_ticks s
                set next_fire_at = a.next_fire_at, last_fire_at = a.last_fire_at,
                    recompute = false, updated_at = now()
                from a where s.ingestion_id = a.ingestion_id
            )
            update ingestions i
            set next_run_time = a.next_fire_at,
                last_scheduled_run = coalesce(a.last_queued, i.last_scheduled_run)
            from a where i.id = a.ingestion_id
            "#,
            &ids,
            &next,
            &last as &[Option<DateTime<Utc>>],
            &queued as &[Option<DateTime<Utc>>],
        )
        .execute(&mut **tx)
        .await?;
    }

    for (ingestion_id, tenant_id, at, problem) in &plan.invalid {
        tracing::error!(%ingestion_id, %tenant_id, problem, "stored schedule is invalid; switching it off");
        let reason = format!("schedule switched off: its stored definition is invalid ({problem})");
        sqlx::query!(
            r#"
            insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status,
                              finished_at, reason)
            values ($1, $2, $3, 'scheduler', $4, 'MISSED', now(), $5)
            on conflict (ingestion_id, scheduled_for) do nothing
            "#,
            Uuid::now_v7(),
            ingestion_id,
            tenant_id,
            at,
            reason
        )
        .execute(&mut **tx)
        .await?;
        sqlx::query!(
            "update ingestions set schedule_enabled = false, next_run_time = null where id = $1",
            ingestion_id
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(report)
}

struct Columns {
    ids: Vec<Uuid>,
    ingestion_ids: Vec<Uuid>,
    tenant_ids: Vec<Uuid>,
    scheduled_fors: Vec<DateTime<Utc>>,
    starts: Vec<Option<DateTime<Utc>>>,
    reasons: Vec<Option<String>>,
}

fn columns(planned: &[Planned]) -> Columns {
    Columns {
        ids: planned.iter().map(|p| p.id).collect(),
        ingestion_ids: planned.iter().map(|p| p.ingestion_id).collect(),
        tenant_ids: planned.iter().map(|p| p.tenant_id).collect(),
        scheduled_fors: planned.iter().map(|p| p.scheduled_for).collect(),
        starts: planned.iter().map(|p| p.data_interval_start).collect(),
        reasons: planned.iter().map(|p| p.reason.clone()).collect(),
    }
}

fn record_metrics(report: &TickReport) {
    metrics::counter!("autoloader_runs_materialised_total").increment(report.queued as u64);
    metrics::counter!("autoloader_scheduled_executions_total", "status" => "skipped")
        .increment(report.skipped as u64);
    metrics::counter!("autoloader_scheduled_executions_total", "status" => "missed")
        .increment(report.missed_ticks);
}

/// How long until the earliest tick row wants attention, by the database's clock.
async fn time_to_next_tick(pool: &PgPool) -> Result<Option<Duration>> {
    let secs = sqlx::query_scalar!(
        r#"
        select extract(epoch from least(
                   (select min(next_fire_at) from schedule_ticks),
                   (select now() from schedule_ticks where recompute limit 1)) - now())::float8
        "#
    )
    .fetch_one(pool)
    .await?;
    Ok(secs.map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e9))))
}

/// Ticks until `shutdown` fires: drains every due batch, then sleeps until the earliest next
/// tick, a notification that tick rows changed, or the safety poll, whichever comes first.
pub async fn run(pool: PgPool, config: TickerConfig, shutdown: CancellationToken) {
    tracing::info!(
        batch_size = config.batch_size,
        coalesce = config.coalesce,
        misfire_grace_s = config.misfire_grace.as_secs_f64(),
        "ticker started"
    );
    let mut waker = Waker::new(pool.clone(), crate::wake::TICKS_CHANNEL);
    while !shutdown.is_cancelled() {
        waker.listen().await;
        let sleep = match drain(&pool, &config, &shutdown).await {
            Ok(locked) => match time_to_next_tick(&pool).await {
                // Due right now after a drain that did work: new ticks came due, go again.
                Ok(Some(d)) if d.is_zero() && locked > 0 => continue,
                // Due but nothing could be locked: another ticker holds those rows. Its commit
                // notifies us; look again soon in case it dies instead.
                Ok(Some(d)) if d.is_zero() => Duration::from_millis(200),
                Ok(Some(d)) => d.min(config.safety_poll),
                Ok(None) => config.safety_poll,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the next tick; retrying in 1s");
                    Duration::from_secs(1)
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "tick failed; retrying in 1s");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = waker.wait() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
    tracing::info!("ticker stopped");
}

/// Runs batches until one comes back short of full. Returns how many rows it processed.
async fn drain(
    pool: &PgPool,
    config: &TickerConfig,
    shutdown: &CancellationToken,
) -> Result<usize> {
    let mut total = 0;
    loop {
        let report = tick_once(pool, config).await?;
        total += report.rows;
        if report.rows > 0 {
            tracing::debug!(?report, "tick batch committed");
        }
        if (report.rows as i64) < config.batch_size || shutdown.is_cancelled() {
            return Ok(total);
        }
    }
}
