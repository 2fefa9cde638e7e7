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
//! * late by more than the grace time, or fallen while the schedule was paused: as the
//!   ingestion's catch-up policy says ([`crate::catchup`]): one MISSED row counting them
//!   (`skip`), one run for all (`once`), or one run each, one at a time (`all`, the tick row's
//!   backlog, whose head is queued here whenever the ingestion has no active load);
//! * a run of the ingestion already QUEUED or RUNNING: a SKIPPED row, reason
//!   `previous run still active`. The partial unique index `runs_one_active_per_ingestion` decides
//!   this (the insert is `on conflict do nothing`); the code only records what it decided.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use autoloader::ingestions::catchup::CatchupPolicy;
use autoloader::ingestions::store::{ingestion_schedule_switch_off, stored_schedule};
use autoloader::runs::scheduled::{
    runs_insert_missed, runs_insert_queued, runs_insert_skipped, runs_ticks_taken, TickRun,
};
use autoloader::schedule::span::span;
use autoloader::schedule::Schedule;
use autoloader::ticks::{self, Advance, Backlog, TickRow};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catchup::{self, Planned};
use crate::wake::Waker;

/// How soon a ticker looks again at a backlog whose head could not be queued (a load of the
/// ingestion was active).
const BACKLOG_RECHECK: chrono::Duration = chrono::Duration::seconds(1);

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
    /// Of `queued`, catch-up runs taken from backlogs (`catchup = all`).
    pub backlog_queued: usize,
}

#[derive(Default)]
struct Plan {
    runs: Vec<TickRun>,
    missed: Vec<TickRun>,
    missed_ticks: u64,
    advance: Vec<Advance>,
    invalid: Vec<(Uuid, Uuid, DateTime<Utc>, String)>,
    recomputed: usize,
    /// For each row with a backlog: its tenant and the tick after the backlog's head.
    heads: HashMap<Uuid, (Uuid, Option<DateTime<Utc>>)>,
}

/// Materialises the runs of up to one batch of due ticks, in one transaction.
pub async fn tick_once<'a>(
    db: impl sqlx::Acquire<'a, Database = Postgres>,
    config: &TickerConfig,
) -> Result<TickReport> {
    let started = std::time::Instant::now();
    let mut tx = db.begin().await?;
    let now = ticks::tick_begin(&mut tx).await?;
    let mut rows = ticks::tick_lock_due(&mut tx, config.batch_size).await?;
    let edited = ticks::tick_lock_edited(&mut tx, config.batch_size).await?;
    let owing = ticks::tick_lock_backlog(&mut tx, config.batch_size).await?;
    // A row both due and edited (or owing) comes back from several statements (our own lock
    // does not make the next skip it): keep it once.
    let mut seen: HashSet<Uuid> = rows.iter().map(|r| r.ingestion_id).collect();
    for r in edited.into_iter().chain(owing) {
        if seen.insert(r.ingestion_id) {
            rows.push(r);
        }
    }
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
        plan_row(&mut plan, row, &schedule, now, grace, config.coalesce);
    }

    let mut report = write_plan(&mut tx, plan, now).await?;
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

/// Works out what one locked tick row calls for: its due ticks, the ticks it missed while
/// paused, what it still owes, and its next fire instant.
fn plan_row(
    plan: &mut Plan,
    row: &TickRow,
    schedule: &Schedule,
    now: DateTime<Utc>,
    grace: chrono::Duration,
    coalesce: bool,
) {
    let policy = CatchupPolicy::stored(&row.catchup, row.max_catchup_runs);
    let mut next_fire_at = row.next_fire_at;
    let first_due = if row.recompute {
        // An edited (or re-enabled, or resumed) schedule starts afresh from the edit: the
        // edit never fires a run, and a tick that was due under the old definition is
        // dropped. Its first fire is the first after the edit, which is what the API has
        // shown since the edit; if that has passed by now, it is due in this very pass.
        plan.recomputed += 1;
        match schedule.next_after(row.edited_at) {
            Some(next) if next > now => {
                next_fire_at = next;
                None
            }
            Some(next) => Some(next),
            None => return,
        }
    } else {
        // A row locked for its backlog alone is not due.
        (row.next_fire_at <= now).then_some(row.next_fire_at)
    };
    // Ticks that fell while the schedule was paused (only a resume sets `catchup_after`).
    let paused = row
        .catchup_after
        .filter(|_| row.recompute)
        .and_then(|after| catchup::paused_span(schedule, policy, after, row.edited_at));
    let mut last_fire_at = row.last_fire_at;
    let due = first_due.map(|first| {
        let s = span(
            schedule,
            Some(first),
            row.last_fire_at,
            now,
            catchup::keep(policy, false),
        );
        last_fire_at = s.whole().map(|w| w.last).or(last_fire_at);
        s
    });
    if first_due.is_some() {
        match schedule.next_after(now) {
            Some(next) => next_fire_at = next,
            None => return,
        }
    }
    let settled = catchup::settle(
        schedule,
        policy,
        row.backlog(),
        paused,
        due,
        now,
        grace,
        coalesce,
    );
    let (ingestion_id, tenant_id) = (row.ingestion_id, row.tenant_id);
    let tick_run = |p: Planned| TickRun {
        id: Uuid::now_v7(),
        ingestion_id,
        tenant_id,
        scheduled_for: p.tick,
        data_interval_start: p.interval_start,
        reason: p.reason,
    };
    for m in settled.missed {
        plan.missed_ticks += m.ticks;
        plan.missed.push(tick_run(m));
    }
    plan.runs.extend(settled.runs.into_iter().map(tick_run));
    let backlog = settled.backlog.map(|(b, after_head)| {
        plan.heads.insert(ingestion_id, (tenant_id, after_head));
        (b, now)
    });
    plan.advance.push(Advance {
        ingestion_id,
        next_fire_at,
        last_fire_at,
        last_queued: None,
        backlog,
    });
}

async fn write_plan(
    tx: &mut Transaction<'_, Postgres>,
    mut plan: Plan,
    now: DateTime<Utc>,
) -> Result<TickReport> {
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
    let refused: Vec<TickRun> = std::mem::take(&mut plan.runs)
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

    report.backlog_queued = queue_backlog_heads(tx, &mut plan, now, &mut last_queued).await?;
    report.queued += report.backlog_queued;

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

/// Queues the head of every backlog whose look is due: the oldest missed tick still owed. The
/// insert is refused while a load of the ingestion is active (`runs_one_active_per_ingestion`):
/// the backlog then waits [`BACKLOG_RECHECK`] for the next look. A head whose tick already has a
/// row (written at psql) is passed over.
async fn queue_backlog_heads(
    tx: &mut Transaction<'_, Postgres>,
    plan: &mut Plan,
    now: DateTime<Utc>,
    last_queued: &mut HashMap<Uuid, DateTime<Utc>>,
) -> Result<usize> {
    let heads: Vec<TickRun> = plan
        .advance
        .iter()
        .filter_map(|a| {
            let (b, check_at) = a.backlog?;
            let (tenant_id, _) = plan.heads.get(&a.ingestion_id)?;
            (check_at <= now).then(|| TickRun {
                id: Uuid::now_v7(),
                ingestion_id: a.ingestion_id,
                tenant_id: *tenant_id,
                scheduled_for: b.next,
                data_interval_start: b.start,
                reason: Some(format!(
                    "catch-up of a missed tick, oldest first ({} owed with this one, until {})",
                    b.count,
                    b.last.to_rfc3339()
                )),
            })
        })
        .collect();
    if heads.is_empty() {
        return Ok(0);
    }
    let inserted: HashSet<Uuid> = runs_insert_queued(tx, &heads).await?.into_iter().collect();
    let refused: Vec<&TickRun> = heads.iter().filter(|h| !inserted.contains(&h.id)).collect();
    let taken: HashSet<Uuid> = if refused.is_empty() {
        HashSet::new()
    } else {
        let pairs: Vec<(Uuid, DateTime<Utc>)> = refused
            .iter()
            .map(|h| (h.ingestion_id, h.scheduled_for))
            .collect();
        runs_ticks_taken(tx, &pairs).await?.into_iter().collect()
    };
    let by_ingestion: HashMap<Uuid, &TickRun> = heads.iter().map(|h| (h.ingestion_id, h)).collect();
    for a in &mut plan.advance {
        let (Some((b, _)), Some(head)) = (a.backlog, by_ingestion.get(&a.ingestion_id)) else {
            continue;
        };
        let after = plan.heads.get(&a.ingestion_id).and_then(|h| h.1);
        if inserted.contains(&head.id) {
            last_queued.insert(a.ingestion_id, head.scheduled_for);
            a.backlog = catchup::after_head(b, after).map(|rest| (rest, now + BACKLOG_RECHECK));
        } else if taken.contains(&a.ingestion_id) {
            a.backlog = catchup::after_head(b, after).map(|rest: Backlog| (rest, now));
        } else {
            a.backlog = Some((b, now + BACKLOG_RECHECK));
        }
    }
    Ok(inserted.len())
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
/// Ticks until `shutdown`. Each of its transactions waits at most `answer_bound` for the
/// database (then its connection is dropped and the batch rolls back on the server).
pub async fn run(
    pool: PgPool,
    config: TickerConfig,
    answer_bound: Duration,
    shutdown: CancellationToken,
) {
    tracing::info!(
        batch_size = config.batch_size,
        coalesce = config.coalesce,
        misfire_grace_s = config.misfire_grace.as_secs_f64(),
        "ticker started"
    );
    let mut waker = Waker::new(pool.clone(), crate::wake::TICKS_CHANNEL);
    while !shutdown.is_cancelled() {
        waker.listen().await;
        let sleep = match drain(&pool, &config, answer_bound, &shutdown).await {
            Ok(locked) => match autoloader::db::answered(&pool, answer_bound, |db| {
                Box::pin(ticks::tick_wait(db))
            })
            .await
            {
                // Due right now after a drain that did work: new ticks came due, go again.
                Ok(Some(d)) if d.is_zero() && locked > 0 => continue,
                // Due but nothing could be locked: another ticker holds those rows. Its commit
                // notifies us; look again soon in case it dies instead.
                Ok(Some(d)) if d.is_zero() => Duration::from_millis(200),
                Ok(Some(d)) => d.min(config.safety_poll),
                Ok(None) => config.safety_poll,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the next tick; retrying in 1s");
                    if autoloader::db::is_unanswered(&e) {
                        waker.reset();
                    }
                    Duration::from_secs(1)
                }
            },
            Err(Error::Db(e)) => {
                tracing::warn!(error = %e, "tick failed; retrying in 1s");
                if autoloader::db::is_unanswered(&e) {
                    waker.reset();
                }
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
    answer_bound: Duration,
    shutdown: &CancellationToken,
) -> Result<usize> {
    let mut total = 0;
    loop {
        let batch = config.clone();
        let report = autoloader::db::answered(pool, answer_bound, move |db| {
            Box::pin(async move { tick_once(db, &batch).await.map_err(|Error::Db(e)| e) })
        })
        .await?;
        total += report.rows;
        if report.rows > 0 {
            tracing::debug!(?report, "tick batch committed");
        }
        if (report.rows as i64) < config.batch_size || shutdown.is_cancelled() {
            return Ok(total);
        }
    }
}
