//! Statistics of an ingestion's loads over a window (`1h`, `24h`, `7d`, `30d`): the one home of
//! the `run_stats` table.
//!
//! PostgreSQL writes the table, not this module: the trigger `runs_stats_count` (migration 0021)
//! counts every load that reaches a terminal status, in the transaction that makes it terminal,
//! into a minute, an hour and a day bucket of its ingestion (kept 2 hours, 32 and 32 days).
//! Whoever finishes a run (the worker's outcome, the rescue of a lost lease, a cancel, the
//! ticker's SKIPPED and MISSED rows, a person at psql) passes through that trigger. The statistics are never recomputed from
//! `runs`, so the run retention deleting runs changes none of them.
//!
//! Invariants of what is read here:
//! - a run counts in the bucket of the instant it finished, whatever tick it was for;
//! - a window is whole minutes (`1h`) or hours (the others): it starts at the start of the
//!   minute or hour holding `now - window` and ends now (so `24h` covers 24 to 25 hours, `1h` 60
//!   to 61 minutes); `7d` and `30d` read that first day's hours up to midnight (UTC) and day
//!   buckets after it, which sum to the same;
//! - percentiles come from fixed log-scale histograms ([`BOUNDS_MS`]): the value reported is the
//!   upper bound of the bucket holding the percentile (nearest rank), never above the window's
//!   exact maximum; so it is never below the true value and at most 25 % (from 4 ms on) or 1 ms
//!   above it.

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

    /// The width of the buckets the window starts with: minutes for `1h`, hours otherwise. The
    /// window starts at the start of the bucket holding `now - window`.
    pub fn bucket_seconds(self) -> i32 {
        match self {
            Window::Hour => 60,
            _ => 3_600,
        }
    }

    /// Whether the window reads day buckets after its first midnight (`7d`, `30d`).
    pub fn reads_days(self) -> bool {
        matches!(self, Window::Week | Window::Month)
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

/// An ingestion's loads that finished in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStats {
    pub window: Window,
    /// The start of the window's first bucket.
    pub from: DateTime<Utc>,
    /// The database's `now()`.
    pub to: DateTime<Utc>,
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

/// One bucket as stored.
struct Bucket {
    from_at: DateTime<Utc>,
    to_at: DateTime<Utc>,
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

/// The statistics of `ingestion_id` (of `tenant_id`) over `window`: its buckets from the start
/// of the minute or hour holding `now - window` to now, summed. An ingestion with no finished
/// load in the window has zero counts and no summaries.
pub async fn run_stats_read(
    pool: &PgPool,
    tenant_id: Uuid,
    ingestion_id: Uuid,
    window: Window,
) -> Result<RunStats, sqlx::Error> {
    // One row per bucket of the window, or one row of nulls beside the window's bounds. Windows
    // past a day read hour buckets up to the window's first midnight (UTC) and day buckets from
    // there: the same whole hours, from at most 24 + 31 rows. Each part is a range of the
    // primary key.
    let rows = sqlx::query_as!(
        Bucket,
        r#"
        with w as (
            select now() as to_at,
                   to_timestamp(floor(extract(epoch from now() - make_interval(secs => $4::bigint))
                                      / $3::integer) * $3::integer) as from_at
        ), e as (
            select w.*, case when $5::boolean
                             then to_timestamp(ceil(extract(epoch from w.from_at) / 86400) * 86400)
                             else 'infinity'::timestamptz end as days_at
            from w
        )
        select e.from_at as "from_at!", e.to_at as "to_at!",
               s.succeeded as "succeeded?", s.failed as "failed?", s.cancelled as "cancelled?",
               s.skipped as "skipped?", s.missed as "missed?",
               s.files_loaded as "files_loaded?", s.rows_loaded as "rows_loaded?",
               s.bytes_loaded as "bytes_loaded?",
               s.duration_count as "duration_count?", s.duration_sum_ms as "duration_sum_ms?",
               s.duration_max_ms as "duration_max_ms?", s.duration_hist as "duration_hist?",
               s.lateness_count as "lateness_count?", s.lateness_sum_ms as "lateness_sum_ms?",
               s.lateness_max_ms as "lateness_max_ms?", s.lateness_hist as "lateness_hist?",
               s.last_success_at as "last_success_at?", s.last_success_run as "last_success_run?",
               s.last_failure_at as "last_failure_at?", s.last_failure_run as "last_failure_run?"
        from e
        left join run_stats s
               on s.ingestion_id = $2 and s.tenant_id = $1
              and ((s.bucket_seconds = $3 and s.bucket_start >= e.from_at
                    and s.bucket_start < e.days_at and s.bucket_start <= e.to_at)
                   or (s.bucket_seconds = 86400 and s.bucket_start >= e.days_at
                       and s.bucket_start <= e.to_at))
        "#,
        tenant_id,
        ingestion_id,
        window.bucket_seconds(),
        window.seconds(),
        window.reads_days(),
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
