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

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use autoloader::ingestions::store::{ingestion_schedule_switch_off, stored_schedule};
use autoloader::runs::scheduled::{
    runs_insert_missed, runs_insert_queued, runs_insert_skipped, TickRun,
};
use autoloader::schedule::Schedule;
use autoloader::ticks::{self, Advance, TickRow};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

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

impl TickerConfig {
    pub fn from_settings(s: &autoloader::config::SchedulerConfig) -> TickerConfig {
        TickerConfig {
            batch_size: s.tick_batch_size,
            misfire_grace: s.misfire_grace_time,
            coalesce: s.coalesce,
            safety_poll: s.poll_interval,
        }
    }
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

#[derive(Default)]
struct Plan {
    runs: Vec<TickRun>,
    missed: Vec<TickRun>,
    missed_ticks: u64,
    advance: Vec<Advance>,
    invalid: Vec<(Uuid, Uuid, DateTime<Utc>, String)>,
    recomputed: usize,
}

/// Materialises the runs of up to one batch of due ticks, in one transaction.
pub async fn tick_once(pool: &PgPool, config: &TickerConfig) -> Result<TickReport> {
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    let now = ticks::tick_begin(&mut tx).await?;
    let mut rows = ticks::tick_lock_due(&mut tx, config.batch_size).await?;
    let edited = ticks::tick_lock_edited(&mut tx, config.batch_size).await?;
    // A row both due and edited comes back from both statements (our own lock does not make the
    // second skip it): keep it once.
    let seen: HashSet<Uuid> = rows.iter().map(|r| r.ingestion_id).collect();
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
        let schedule = match parse(row) {
            Ok(s) => s,
            Err(e) => {
                plan.invalid
                    .push((row.ingestion_id, row.tenant_id, row.next_fire_at, e));
                continue;
            }
        };
        let first_due = if row.recompute {
            // An edited (or re-enabled, or resumed) schedule starts afresh from the edit: the
            // edit never fires a run, and a tick that was due under the old definition is
            // dropped. Its first fire is the first after the edit, which is what the API has
            // shown since the edit; if that has passed by now, it is due in this very pass.
            plan.recomputed += 1;
            match schedule.next_after(row.edited_at) {
                Some(next) if next > now => {
                    plan.advance.push(Advance {
                        ingestion_id: row.ingestion_id,
                        next_fire_at: next,
                        last_fire_at: row.last_fire_at,
                        last_queued: None,
                    });
                    continue;
                }
                Some(next) => next,
                None => continue,
            }
        } else {
            row.next_fire_at
        };
        let due = DueSchedule {
            ingestion_id: row.ingestion_id,
            tenant_id: row.tenant_id,
            first_due,
            last_fire: row.last_fire_at,
            schedule: &schedule,
        };
        plan_due_ticks(&mut plan, &due, now, grace, config.coalesce);
    }

    let mut report = write_plan(&mut tx, plan).await?;
    report.rows = rows.len();
    tx.commit().await?;
    record_metrics(&report);
    if report.rows > 0 {
        metrics::histogram!("autoloader_ticker_batch_size").record(report.rows as f64);
        metrics::histogram!("autoloader_ticker_batch_seconds")
            .record(started.elapsed().as_secs_f64());
    }
    Ok(report)
}

/// The stored schedule of a tick row, parsed as the API parses it.
fn parse(row: &TickRow) -> std::result::Result<Schedule, String> {
    stored_schedule(
        row.schedule_frequency.as_deref(),
        row.schedule_time.as_deref(),
        &row.schedule_timezone,
        row.schedule_cron.as_deref(),
    )
    .map_err(|e| e.to_string())
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
        plan.missed.push(TickRun {
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
        plan.runs.push(TickRun {
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
            plan.runs.push(TickRun {
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
        plan.advance.push(Advance {
            ingestion_id,
            next_fire_at: next,
            last_fire_at,
            last_queued: None,
        });
    }
}

async fn write_plan(tx: &mut Transaction<'_, Postgres>, mut plan: Plan) -> Result<TickReport> {
    let mut report = TickReport {
        missed_ticks: plan.missed_ticks,
        recomputed: plan.recomputed,
        invalid: plan.invalid.len(),
        ..TickReport::default()
    };

    // Runs first: at most one active run per ingestion goes in; the others are SKIPPED.
    let inserted: HashSet<Uuid> = runs_insert_queued(tx, &plan.runs)
        .await?
        .into_iter()
        .collect();
    report.queued = inserted.len();
    // The tick of each ingestion's newest queued run, for `ingestions.last_scheduled_run`.
    let mut last_queued: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    for p in plan.runs.iter().filter(|p| inserted.contains(&p.id)) {
        let e = last_queued.entry(p.ingestion_id).or_insert(p.scheduled_for);
        *e = (*e).max(p.scheduled_for);
    }

    // What did not go in collided with an active run (or its tick already has a row, which the
    // insert below also leaves alone): record the tick as SKIPPED, naming the run in the way.
    let refused: Vec<TickRun> = plan
        .runs
        .into_iter()
        .filter(|p| !inserted.contains(&p.id))
        .collect();
    if !refused.is_empty() {
        let skipped = runs_insert_skipped(tx, &refused).await?;
        report.skipped = skipped.len();
        for (run_id, ingestion_id) in &skipped {
            tracing::warn!(%ingestion_id, %run_id, "tick skipped: previous run still active");
        }
    }

    if !plan.missed.is_empty() {
        let missed = runs_insert_missed(tx, &plan.missed).await?;
        report.missed_rows = missed.len();
        for (ingestion_id, reason) in &missed {
            tracing::warn!(%ingestion_id, reason = reason.as_deref().unwrap_or(""), "ticks missed");
        }
    }

    for a in &mut plan.advance {
        a.last_queued = last_queued.get(&a.ingestion_id).copied();
    }
    ticks::tick_advance(tx, &plan.advance).await?;

    for (ingestion_id, tenant_id, at, problem) in &plan.invalid {
        tracing::error!(%ingestion_id, %tenant_id, problem, "stored schedule is invalid; switching it off");
        let record = TickRun {
            id: Uuid::now_v7(),
            ingestion_id: *ingestion_id,
            tenant_id: *tenant_id,
            scheduled_for: *at,
            data_interval_start: None,
            reason: Some(format!(
                "schedule switched off: its stored definition is invalid ({problem})"
            )),
        };
        runs_insert_missed(tx, std::slice::from_ref(&record)).await?;
        ingestion_schedule_switch_off(tx, *ingestion_id).await?;
    }
    Ok(report)
}

fn record_metrics(report: &TickReport) {
    metrics::counter!("autoloader_runs_materialised_total").increment(report.queued as u64);
    metrics::counter!("autoloader_scheduled_executions_total", "status" => "skipped")
        .increment(report.skipped as u64);
    metrics::counter!("autoloader_scheduled_executions_total", "status" => "missed")
        .increment(report.missed_ticks);
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
            Ok(locked) => match ticks::tick_wait(&pool).await {
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
