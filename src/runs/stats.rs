//! Statistics of an ingestion's loads over a window (`1h`, `24h`, `7d`, `30d`): the one home of
//! the `run_stats` table's reads (the run retention, [`crate::runs::retention`], writes it).
//!
//! Nothing is written when a run finishes: the engine's statements and the `runs` table carry no
//! trigger and no index for the statistics but the partial index `runs_late_ticks`, which holds
//! only the rows written over a day after their tick. A read sums
//! - the live loads of the window, unfolded: those whose tick or trigger time is at or after the
//!   ingestion's fold watermark (`run_stats_folds.folded_before`, about a day before now), found
//!   through the indexes the run history already has: `runs_one_per_tick (ingestion_id,
//!   scheduled_for)` for runs of a tick (and SKIPPED and MISSED rows), `runs_manual_history`
//!   for finished manual runs, and `runs_one_active_per_ingestion` for the one load queued or
//!   running; and below the watermark the late rows (written over a day after their tick: a
//!   catch-up run, a dropped backlog's MISSED row, a psql INSERT), through `runs_late_ticks`;
//! - the `run_stats` hour buckets starting in the window: the loads below the watermark that
//!   are not late, folded by [`crate::runs::fold`], and those the retention deleted unfolded,
//!   folded in the statement that deleted them. A load is unfolded in `runs` or in a bucket,
//!   never both, never neither (migration 20261130000023 states the rule the fold, the
//!   retention and this read share).
//!
//! Invariants of what is read here:
//! - a load counts in a window when its tick (`scheduled_for`), or the instant a manual run was
//!   asked for (`queued_at`), is in it, whatever instant it finished: "runs for the ticks in the
//!   window". A catch-up run for an old tick counts in its tick's window;
//! - the window is `[now - window, now]`; when its start lies before the ingestion's fold
//!   watermark (7d and 30d, once the fold has run) it starts at the UTC hour of that instant
//!   instead, so that every folded hour in it is whole, and `from` says so. Otherwise folded
//!   buckets count when their hour starts in the window, so the first, partial hour of loads the
//!   retention folded is left out (only possible when the retention is shorter than the window);
//! - percentiles come from fixed log-scale histograms ([`BOUNDS_MS`]), live loads put in the
//!   same buckets as folded ones: the value reported is the upper bound of the bucket holding
//!   the percentile (nearest rank), never above the window's exact maximum; so it is never below
//!   the true value and at most 25 % (from 4 ms on) or 1 ms above it. Counts, sums, means and
//!   maxima are exact.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// How many histogram buckets there are: bucket 0 is `[0, BOUNDS_MS[0])`, bucket `i` is
/// `[BOUNDS_MS[i - 1], BOUNDS_MS[i])`, the last is `[BOUNDS_MS[118], ∞)`.
pub const BUCKETS: usize = BOUNDS_MS.len() + 1;

/// The histograms' bucket bounds in milliseconds: 1, 2, 3, then 2^k × (1, 1.25, 1.5, 1.75) for
/// k = 2..=30. The same list is `run_stats_bounds()` in PostgreSQL (migration 0021).
pub const BOUNDS_MS: [f64; 119] = bounds();

const fn bounds() -> [f64; 119] {
    let mut out = [0.0; 119];
    out[0] = 1.0;
    out[1] = 2.0;
    out[2] = 3.0;
    let mut k = 2;
    let mut i = 3;
    while k <= 30 {
        let base: u64 = 1 << k;
        let steps = [4, 5, 6, 7];
        let mut s = 0;
        while s < 4 {
            out[i] = (base * steps[s] / 4) as f64;
            i += 1;
            s += 1;
        }
        k += 1;
    }
    out
}

/// The histogram bucket of a value in milliseconds, as PostgreSQL's `width_bucket(v, bounds)`
/// counts it: how many bounds are at or below it.
pub fn bucket_of(ms: f64) -> usize {
    BOUNDS_MS.partition_point(|b| *b <= ms)
}

/// The window a statistics request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    Hour,
    #[default]
    Day,
    Week,
    Month,
}

impl Window {
    pub const NAMES: [&'static str; 4] = ["1h", "24h", "7d", "30d"];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Window::Hour => 3_600,
            Window::Day => 86_400,
            Window::Week => 7 * 86_400,
            Window::Month => 30 * 86_400,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("window must be one of 1h, 24h, 7d, 30d")]
pub struct BadWindow;

impl FromStr for Window {
    type Err = BadWindow;

    fn from_str(s: &str) -> Result<Window, BadWindow> {
        match s {
            "1h" => Ok(Window::Hour),
            "24h" => Ok(Window::Day),
            "7d" => Ok(Window::Week),
            "30d" => Ok(Window::Month),
            _ => Err(BadWindow),
        }
    }
}

/// Durations or latenesses of a window's runs, in milliseconds; every field but `count` is
/// `None` when there are none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub count: i64,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Summary {
    fn new(hist: &[i64; BUCKETS], count: i64, sum_ms: f64, max_ms: Option<f64>) -> Summary {
        if count == 0 {
            return Summary::default();
        }
        Summary {
            count,
            mean_ms: Some(sum_ms / count as f64),
            p50_ms: percentile(hist, 0.50, max_ms),
            p95_ms: percentile(hist, 0.95, max_ms),
            max_ms,
        }
    }
}

/// The `p` percentile (nearest rank: the smallest value at or above `ceil(p × n)` of the `n`
/// values) read from a histogram: the upper bound of the bucket holding it, or the maximum when
/// that is lower (always so in the last bucket, which has no upper bound).
pub fn percentile(hist: &[i64; BUCKETS], p: f64, max_ms: Option<f64>) -> Option<f64> {
    let n: i64 = hist.iter().sum();
    if n == 0 {
        return None;
    }
    let rank = ((p * n as f64).ceil() as i64).clamp(1, n);
    let mut seen = 0;
    for (i, c) in hist.iter().enumerate() {
        seen += c;
        if seen >= rank {
            let upper = BOUNDS_MS.get(i).copied();
            return match (upper, max_ms) {
                (Some(u), Some(m)) => Some(u.min(m)),
                (Some(u), None) => Some(u),
                (None, m) => m,
            };
        }
    }
    max_ms
}

/// A run named by the statistics: the latest success or failure of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub run_id: Uuid,
    pub finished_at: DateTime<Utc>,
}

/// An ingestion's loads for the ticks (or manual triggers) in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStats {
    pub window: Window,
    /// `to - window`, or the UTC hour of that instant when the window reaches folded hours.
    pub from: DateTime<Utc>,
    /// The database's `now()`.
    pub to: DateTime<Utc>,
    /// Loads of the window queued or running now (at most one).
    pub active: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub skipped: i64,
    pub missed: i64,
    /// Of SUCCESS runs.
    pub files_loaded: i64,
    pub rows_loaded: i64,
    pub bytes_loaded: i64,
    /// `finished_at - started_at` of SUCCESS and FAILED runs.
    pub duration: Summary,
    /// `started_at - scheduled_for` (at least 0) of SUCCESS and FAILED runs for a tick.
    pub lateness: Summary,
    pub last_success: Option<LastRun>,
    pub last_failure: Option<LastRun>,
}

/// One row of the read: a folded hour bucket, or the window's live loads summed.
struct Bucket {
    from_at: DateTime<Utc>,
    to_at: DateTime<Utc>,
    active: Option<i64>,
    succeeded: Option<i64>,
    failed: Option<i64>,
    cancelled: Option<i64>,
    skipped: Option<i64>,
    missed: Option<i64>,
    files_loaded: Option<i64>,
    rows_loaded: Option<i64>,
    bytes_loaded: Option<i64>,
    duration_count: Option<i64>,
    duration_sum_ms: Option<f64>,
    duration_max_ms: Option<f64>,
    duration_hist: Option<Vec<i32>>,
    lateness_count: Option<i64>,
    lateness_sum_ms: Option<f64>,
    lateness_max_ms: Option<f64>,
    lateness_hist: Option<Vec<i32>>,
    last_success_at: Option<DateTime<Utc>>,
    last_success_run: Option<Uuid>,
    last_failure_at: Option<DateTime<Utc>>,
    last_failure_run: Option<Uuid>,
}

/// The statistics of `ingestion_id` (of `tenant_id`) over `window`: its unfolded loads whose
/// tick (or manual trigger) is in `[from, now]` and its folded hour buckets starting in it,
/// summed (`from` as [`RunStats::from`] says). An ingestion with no load in the window has zero counts and no summaries.
pub async fn run_stats_read(
    pool: &PgPool,
    tenant_id: Uuid,
    ingestion_id: Uuid,
    window: Window,
) -> Result<RunStats, sqlx::Error> {
    // `fw` is the fold watermark (-infinity before the first fold), `win` the window's start.
    // Each branch of `live` matches the predicate of the index it is meant to read (EXPLAIN in
    // BENCHMARKS.md): runs of a tick at or after the watermark by runs_one_per_tick, the late
    // ones below it by runs_late_ticks, finished manual runs at or after it by
    // runs_manual_history, a queued or running manual run (never folded) by
    // runs_one_active_per_ingestion.
    // The window's rows are aggregated once, in `g`, grouped by status and histogram buckets
    // (a few hundred groups at most in practice); everything else reads those groups. Durations
    // and lateness stay intervals per row (integer microseconds: exact sums, compared with the
    // bounds as intervals, which puts a value in the bucket its milliseconds fall in) and become
    // milliseconds once per window, as `extract(epoch ...)::float8 * 1000`: the maxima are the
    // values the folded buckets store. The latest run is the maximum of (finished_at, id) as
    // their binary forms: big-endian, so ordered as the timestamps for instants after 2000, and
    // an instant's ties go to the greatest id.
    let rows = sqlx::query_as!(
        Bucket,
        r#"
        with fw as (
            select coalesce((select f.folded_before from run_stats_folds f
                             where f.ingestion_id = $2), '-infinity') as fb
        ), win as (
            select fw.fb,
                   case when fw.fb > now() - make_interval(secs => $3::bigint)
                        then to_timestamp(floor(extract(epoch from now() - make_interval(secs => $3::bigint))
                                                / 3600) * 3600)
                        else now() - make_interval(secs => $3::bigint) end as from_at
            from fw
        ), days as (
            -- The window's folded buckets: the hours from its start to the first UTC midnight in
            -- it (d1), the whole days from d1 to the last midnight (d2) from run_stats_days, and
            -- the hours from d2 on. When no midnight falls in the window, d1 > now and the hours
            -- from its start are all of it.
            select win.from_at,
                   case when win.from_at = date_trunc('day', win.from_at, 'UTC') then win.from_at
                        else date_trunc('day', win.from_at, 'UTC') + interval '1 day' end as d1,
                   date_trunc('day', now(), 'UTC') as d2
            from win
        ), buckets as (
            -- run_stats_days is `like run_stats`: the same columns in the same order.
            select s.* from run_stats s, days
            where s.ingestion_id = $2 and s.tenant_id = $1
              and s.hour_start >= days.from_at and s.hour_start < days.d1 and s.hour_start <= now()
            union all
            select s.* from run_stats_days s, days
            where s.ingestion_id = $2 and s.tenant_id = $1
              and s.day_start >= days.d1 and s.day_start < days.d2
            union all
            select s.* from run_stats s, days
            where s.ingestion_id = $2 and s.tenant_id = $1
              and s.hour_start >= greatest(days.d1, days.d2) and s.hour_start <= now()
        ), live as (
            select r.id, r.status, r.finished_at, r.files_processed, r.rows_ingested,
                   r.bytes_read, r.started_at, r.scheduled_for
            from runs r
            where r.ingestion_id = $2 and r.kind = 'load' and r.tenant_id = $1
              and r.scheduled_for >= (select greatest(win.from_at, win.fb) from win)
              and r.scheduled_for <= now()
            union all
            select r.id, r.status, r.finished_at, r.files_processed, r.rows_ingested,
                   r.bytes_read, r.started_at, r.scheduled_for
            from runs r
            where r.ingestion_id = $2 and r.kind = 'load' and r.tenant_id = $1
              and r.scheduled_for >= (select win.from_at from win)
              and r.scheduled_for < (select win.fb from win)
              and r.queued_at - r.scheduled_for > interval '1 day'
            union all
            select r.id, r.status, r.finished_at, r.files_processed, r.rows_ingested,
                   r.bytes_read, r.started_at, r.scheduled_for
            from runs r
            where r.ingestion_id = $2 and r.kind = 'load' and r.tenant_id = $1
              and r.scheduled_for is null and r.status not in ('QUEUED', 'RUNNING')
              and r.queued_at >= (select greatest(win.from_at, win.fb) from win)
              and r.queued_at <= now()
            union all
            select r.id, r.status, r.finished_at, r.files_processed, r.rows_ingested,
                   r.bytes_read, r.started_at, r.scheduled_for
            from runs r
            where r.ingestion_id = $2 and r.kind = 'load' and r.tenant_id = $1
              and r.status in ('QUEUED', 'RUNNING') and r.scheduled_for is null
              and r.queued_at >= (select win.from_at from win)
              and r.queued_at <= now()
        ), bounds as (
            select array_agg(make_interval(secs => b / 1000) order by b) as b
            from unnest(run_stats_bounds()) b
        ), g as (
            select t.status, width_bucket(t.d, (select b from bounds)) as db,
                   width_bucket(t.la, (select b from bounds)) as lb, count(*) as n,
                   sum(t.files_processed) as files, sum(t.rows_ingested) as rows_in,
                   sum(t.bytes_read) as bytes, count(t.d) as dn, sum(t.d) as ds, max(t.d) as dm,
                   count(t.la) as ln, sum(t.la) as ls, max(t.la) as lm,
                   max(t.finished_at) as last_at,
                   max(array[timestamptz_send(t.finished_at), uuid_send(t.id)]) as last
            from (
                select l.id, l.status, l.finished_at, l.files_processed, l.rows_ingested, l.bytes_read,
                       case when l.finished_at < l.started_at then interval '0'
                            else l.finished_at - l.started_at end as d,
                       case when l.started_at < l.scheduled_for then interval '0'
                            else l.started_at - l.scheduled_for end as la
                from live l
                offset 0
            ) t
            group by 1, 2, 3
        ), w as (
            select sum(g.n) filter (where g.status in ('QUEUED', 'RUNNING')) as active,
                   sum(g.n) filter (where g.status = 'SUCCESS') as succeeded,
                   sum(g.n) filter (where g.status = 'FAILED') as failed,
                   sum(g.n) filter (where g.status = 'CANCELLED') as cancelled,
                   sum(g.n) filter (where g.status = 'SKIPPED') as skipped,
                   sum(g.n) filter (where g.status = 'MISSED') as missed,
                   sum(g.files) filter (where g.status = 'SUCCESS') as files_loaded,
                   sum(g.rows_in) filter (where g.status = 'SUCCESS') as rows_loaded,
                   sum(g.bytes) filter (where g.status = 'SUCCESS') as bytes_loaded,
                   sum(g.dn) filter (where g.status in ('SUCCESS', 'FAILED')) as dn,
                   sum(g.ds) filter (where g.status in ('SUCCESS', 'FAILED')) as ds,
                   max(g.dm) filter (where g.status in ('SUCCESS', 'FAILED')) as dm,
                   sum(g.ln) filter (where g.status in ('SUCCESS', 'FAILED')) as ln,
                   sum(g.ls) filter (where g.status in ('SUCCESS', 'FAILED')) as ls,
                   max(g.lm) filter (where g.status in ('SUCCESS', 'FAILED')) as lm,
                   max(g.last_at) filter (where g.status = 'SUCCESS') as last_success_at,
                   max(g.last_at) filter (where g.status = 'FAILED') as last_failure_at,
                   max(g.last) filter (where g.status = 'SUCCESS') as last_success,
                   max(g.last) filter (where g.status = 'FAILED') as last_failure
            from g
        )
        select (select win.from_at from win) as "from_at!", now() as "to_at!",
               coalesce(w.active, 0)::bigint as "active?", coalesce(w.succeeded, 0)::bigint as "succeeded?",
               coalesce(w.failed, 0)::bigint as "failed?", coalesce(w.cancelled, 0)::bigint as "cancelled?",
               coalesce(w.skipped, 0)::bigint as "skipped?", coalesce(w.missed, 0)::bigint as "missed?",
               w.files_loaded::bigint as "files_loaded?", w.rows_loaded::bigint as "rows_loaded?",
               w.bytes_loaded::bigint as "bytes_loaded?",
               coalesce(w.dn, 0)::bigint as "duration_count?", extract(epoch from w.ds)::float8 * 1000 as "duration_sum_ms?",
               extract(epoch from w.dm)::float8 * 1000 as "duration_max_ms?",
               array(select coalesce(sum(g.n), 0)::integer from generate_series(0, 119) k
                     left join g on g.db = k and g.status in ('SUCCESS', 'FAILED')
                     group by k order by k) as "duration_hist?",
               coalesce(w.ln, 0)::bigint as "lateness_count?", extract(epoch from w.ls)::float8 * 1000 as "lateness_sum_ms?",
               extract(epoch from w.lm)::float8 * 1000 as "lateness_max_ms?",
               array(select coalesce(sum(g.n), 0)::integer from generate_series(0, 119) k
                     left join g on g.lb = k and g.status in ('SUCCESS', 'FAILED')
                     group by k order by k) as "lateness_hist?",
               w.last_success_at as "last_success_at?",
               encode(w.last_success[2], 'hex')::uuid as "last_success_run?",
               w.last_failure_at as "last_failure_at?",
               encode(w.last_failure[2], 'hex')::uuid as "last_failure_run?"
        from w
        union all
        select (select win.from_at from win), now(), 0,
               s.succeeded, s.failed, s.cancelled, s.skipped, s.missed,
               s.files_loaded, s.rows_loaded, s.bytes_loaded,
               s.duration_count, s.duration_sum_ms, s.duration_max_ms, s.duration_hist,
               s.lateness_count, s.lateness_sum_ms, s.lateness_max_ms, s.lateness_hist,
               s.last_success_at, s.last_success_run, s.last_failure_at, s.last_failure_run
        from buckets s
        "#,
        tenant_id,
        ingestion_id,
        window.seconds(),
    )
    .fetch_all(pool)
    .await?;
    Ok(fold(window, &rows))
}

fn fold(window: Window, rows: &[Bucket]) -> RunStats {
    let (from, to) = rows
        .first()
        .map_or((Utc::now(), Utc::now()), |r| (r.from_at, r.to_at));
    let mut duration_hist = [0i64; BUCKETS];
    let mut lateness_hist = [0i64; BUCKETS];
    let sum = |f: fn(&Bucket) -> Option<i64>| rows.iter().filter_map(f).sum::<i64>();
    let sum_f = |f: fn(&Bucket) -> Option<f64>| rows.iter().filter_map(f).sum::<f64>();
    let max_f = |f: fn(&Bucket) -> Option<f64>| rows.iter().filter_map(f).reduce(f64::max);
    for r in rows {
        for (hist, stored) in [
            (&mut duration_hist, &r.duration_hist),
            (&mut lateness_hist, &r.lateness_hist),
        ] {
            for (slot, c) in hist.iter_mut().zip(stored.iter().flatten()) {
                *slot += i64::from(*c);
            }
        }
    }
    let latest = |at: fn(&Bucket) -> Option<DateTime<Utc>>, id: fn(&Bucket) -> Option<Uuid>| {
        rows.iter()
            .filter_map(|r| Some((at(r)?, id(r)?)))
            .max_by_key(|(at, _)| *at)
            .map(|(finished_at, run_id)| LastRun {
                run_id,
                finished_at,
            })
    };
    RunStats {
        window,
        from,
        to,
        active: sum(|r| r.active),
        succeeded: sum(|r| r.succeeded),
        failed: sum(|r| r.failed),
        cancelled: sum(|r| r.cancelled),
        skipped: sum(|r| r.skipped),
        missed: sum(|r| r.missed),
        files_loaded: sum(|r| r.files_loaded),
        rows_loaded: sum(|r| r.rows_loaded),
        bytes_loaded: sum(|r| r.bytes_loaded),
        duration: Summary::new(
            &duration_hist,
            sum(|r| r.duration_count),
            sum_f(|r| r.duration_sum_ms),
            max_f(|r| r.duration_max_ms),
        ),
        lateness: Summary::new(
            &lateness_hist,
            sum(|r| r.lateness_count),
            sum_f(|r| r.lateness_sum_ms),
            max_f(|r| r.lateness_max_ms),
        ),
        last_success: latest(|r| r.last_success_at, |r| r.last_success_run),
        last_failure: latest(|r| r.last_failure_at, |r| r.last_failure_run),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values_ms: &[f64]) -> [i64; BUCKETS] {
        let mut h = [0; BUCKETS];
        for v in values_ms {
            h[bucket_of(*v)] += 1;
        }
        h
    }

    #[test]
    fn the_bounds_grow_by_at_most_a_quarter_from_4_ms_on() {
        assert_eq!(BOUNDS_MS[..8], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(BOUNDS_MS[118], 1_879_048_192.0);
        for w in BOUNDS_MS.windows(2) {
            assert!(w[1] > w[0]);
            if w[0] >= 4.0 {
                assert!(w[1] <= w[0] * 1.25, "{} -> {}", w[0], w[1]);
            }
        }
    }

    #[test]
    fn a_value_falls_in_the_bucket_whose_lower_bound_it_reaches() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(0.99), 0);
        assert_eq!(bucket_of(1.0), 1);
        assert_eq!(bucket_of(4.0), 4);
        assert_eq!(bucket_of(9.9), 8); // [8, 10)
        assert_eq!(bucket_of(1_000.0), 35); // [896, 1024)
        assert_eq!(bucket_of(1e12), 119);
    }

    #[test]
    fn percentiles_are_the_upper_bound_of_the_nearest_rank_bucket() {
        // 20 values: 1..=20 seconds. p50 is the 10th (10 s, in [8192, 10240)), p95 the 19th
        // (19 s, in [16384, 20480)), capped by the maximum 20 s.
        let values: Vec<f64> = (1..=20).map(|s| f64::from(s) * 1000.0).collect();
        let h = hist(&values);
        assert_eq!(percentile(&h, 0.5, Some(20_000.0)), Some(10_240.0));
        assert_eq!(percentile(&h, 0.95, Some(20_000.0)), Some(20_000.0));
        assert_eq!(percentile(&h, 0.95, Some(30_000.0)), Some(20_480.0));
        // Never below the true value, at most a quarter above it.
        for v in &values {
            let p = percentile(&hist(&[*v]), 0.5, None).expect("one value");
            assert!(p > *v && p <= v * 1.25, "{v} -> {p}");
        }
    }

    #[test]
    fn the_last_bucket_answers_with_the_maximum_and_an_empty_one_with_nothing() {
        let h = hist(&[3e9]);
        assert_eq!(percentile(&h, 0.5, Some(3e9)), Some(3e9));
        assert_eq!(percentile(&[0; BUCKETS], 0.5, None), None);
        assert_eq!(
            Summary::new(&[0; BUCKETS], 0, 0.0, None),
            Summary::default()
        );
    }

    #[test]
    fn windows_parse_from_their_names_only() {
        for name in Window::NAMES {
            assert_eq!(name.parse::<Window>().map(Window::as_str).ok(), Some(name));
        }
        for bad in ["", "1H", "2h", "24 h", "1d", "30d ", "7D"] {
            assert!(bad.parse::<Window>().is_err(), "{bad:?}");
        }
        assert_eq!(Window::default(), Window::Day);
    }
}
