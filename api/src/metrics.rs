//! `GET /metrics`: Prometheus text, computed from the database.
//!
//! Several worker processes share the work, so the numbers that matter live in PostgreSQL, not in
//! any one process: every API replica reports the whole fleet, whichever one is scraped. Metric
//! names are the product spec's (section 12.3) where it names them.
//!
//! Run totals are kept by a fold ([`RunTotals`]) so that a scrape does not read the whole run
//! history: it reads the runs made in the last minute, the runs still queued or running, and the
//! runs that settled since the last scrape. Replicas agree except on deleted runs: a process
//! keeps counting the finished runs it read before they were deleted (with their ingestion, or
//! by the run retention), and one started later never saw them.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use autoloader::runs::totals::{runs_gauges, runs_totals_read, Gauges, Group};
use autoloader::ticks::tick_count;
use uuid::Uuid;

use crate::auth::MetricsReader;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Upper bounds (seconds) of the lateness histogram's buckets.
const LATENESS_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// How old a run's id must be before the fold takes the run in for good. Run ids are UUIDv7:
/// their first 48 bits are the creating process's clock in milliseconds, taken just before the
/// insert, in the transaction that commits it (a tick batch or a manual trigger: milliseconds).
/// A run committed more than this after its id was made (or made on a clock this far behind the
/// database's) lands below the fold's watermark unseen and is not counted until the API restarts.
const SETTLE: Duration = Duration::from_secs(60);

/// The lateness histogram: cumulative counts per bucket of [`LATENESS_BUCKETS`], their sum and count.
#[derive(Debug, Clone)]
struct Lateness {
    cumulative: [i64; LATENESS_BUCKETS.len()],
    sum: f64,
    count: i64,
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            cumulative: [0; LATENESS_BUCKETS.len()],
            sum: 0.0,
            count: 0,
        }
    }
}

/// Runs by (trigger, status) and the lateness of the scheduled ones that started.
#[derive(Debug, Clone, Default)]
struct Totals {
    by_status: BTreeMap<(String, String), i64>,
    lateness: Lateness,
}

impl Totals {
    fn add(&mut self, g: &Group) {
        *self
            .by_status
            .entry((g.by.clone(), g.status.clone()))
            .or_default() += g.n;
        let Some(k) = g.buckets_at_or_above else {
            return; // not a scheduled run, or never started
        };
        let k = usize::try_from(k).unwrap_or(0).min(LATENESS_BUCKETS.len());
        for c in &mut self.lateness.cumulative[LATENESS_BUCKETS.len() - k..] {
            *c += g.n;
        }
        self.lateness.count += g.n;
        self.lateness.sum += g.secs.unwrap_or(0.0);
    }

    fn plus(&self, other: &Totals) -> Totals {
        let mut sum = self.clone();
        for (key, n) in &other.by_status {
            *sum.by_status.entry(key.clone()).or_default() += n;
        }
        for (c, n) in sum
            .lateness
            .cumulative
            .iter_mut()
            .zip(other.lateness.cumulative)
        {
            *c += n;
        }
        sum.lateness.sum += other.lateness.sum;
        sum.lateness.count += other.lateness.count;
        sum
    }
}

/// The run totals of one API process, kept up to date by folding in what changed.
///
/// Runs whose id is below the watermark and that had finished when the fold read them are in
/// `settled`; those that were still queued or running are in `open` and read again at every
/// scrape until they finish. Runs above the watermark (made in the last [`SETTLE`]) are read
/// whole at every scrape. Each scrape reads the open runs, the runs that crossed the watermark
/// since the last scrape, and the recent ones; only the first scrape of a process reads the
/// whole table.
///
/// A finished run stays counted after its ingestion is deleted once the fold has settled it. Not
/// counted: a run deleted while still recent, and an open run that finished and was deleted
/// between two scrapes (its outcome was never read). A restarted process counts what the table
/// holds, as any process's counters restart.
#[derive(Debug, Default)]
pub struct RunTotals {
    fold: tokio::sync::Mutex<Fold>,
}

#[derive(Debug, Default)]
struct Fold {
    /// Every run with a smaller id has been read (`None`: nothing has).
    watermark: Option<Uuid>,
    settled: Totals,
    open: HashSet<Uuid>,
}

impl RunTotals {
    /// The totals as of now: the settled ones plus the open and recent runs read now.
    async fn read(&self, pool: &sqlx::PgPool) -> Result<Totals, sqlx::Error> {
        let mut fold = self.fold.lock().await;
        let open: Vec<Uuid> = fold.open.iter().copied().collect();
        let read = runs_totals_read(pool, &LATENESS_BUCKETS, fold.watermark, &open, SETTLE).await?;

        // Every read succeeded: only now change the fold.
        let mut current = Totals::default();
        fold.open.clear();
        for g in read.rechecked.iter().chain(&read.crossed) {
            match g.open_id {
                Some(id) => {
                    fold.open.insert(id);
                    current.add(g);
                }
                None => fold.settled.add(g),
            }
        }
        for g in &read.recent {
            current.add(g);
        }
        fold.watermark = Some(read.watermark);
        Ok(fold.settled.plus(&current))
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
              (status = 401, body = crate::error::Problem, description = "AUTOLOADER_METRICS_TOKEN is set and the request does not carry it")),
    security((), ("metrics" = [])))]
pub async fn metrics(
    State(state): State<AppState>,
    _: MetricsReader,
) -> ApiResult<impl IntoResponse> {
    let pool = &state.pool;
    let scheduled = tick_count(pool).await?;
    let Gauges {
        queue_depth,
        oldest_queued_seconds: oldest_queued,
        active_leases,
        expired_leases,
    } = runs_gauges(pool).await?;
    // Read in a task of its own: a scrape given up by its client still completes the fold,
    // and the next scrape starts from it (the first one of a process reads the whole table).
    let totals = state.runs.clone();
    let reader = pool.clone();
    let Totals {
        by_status,
        lateness,
    } = tokio::spawn(async move { totals.read(&reader).await })
        .await
        .map_err(ApiError::internal)??;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP autoloader_scheduled_jobs_total Ingestions whose schedule is enabled and active."
    );
    let _ = writeln!(out, "# TYPE autoloader_scheduled_jobs_total gauge");
    let _ = writeln!(out, "autoloader_scheduled_jobs_total {scheduled}");

    let _ = writeln!(
        out,
        "# HELP autoloader_scheduled_executions_total Scheduled runs by outcome (finished runs)."
    );
    let _ = writeln!(out, "# TYPE autoloader_scheduled_executions_total counter");
    // A counter only counts outcomes: queued and running runs are in `autoloader_runs`.
    for ((_, status), n) in by_status.iter().filter(|((by, status), _)| {
        by == "scheduler" && !matches!(status.as_str(), "QUEUED" | "RUNNING")
    }) {
        let _ = writeln!(
            out,
            "autoloader_scheduled_executions_total{{status=\"{}\"}} {n}",
            status.to_lowercase()
        );
    }
    let _ = writeln!(
        out,
        "# HELP autoloader_runs Runs by trigger and status: queued and running ones as stored now, finished ones as first read (deleted runs stay counted)."
    );
    let _ = writeln!(out, "# TYPE autoloader_runs gauge");
    for ((by, status), n) in &by_status {
        let _ = writeln!(
            out,
            "autoloader_runs{{triggered_by=\"{by}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP autoloader_queue_depth Runs waiting for a worker."
    );
    let _ = writeln!(out, "# TYPE autoloader_queue_depth gauge");
    let _ = writeln!(out, "autoloader_queue_depth {queue_depth}");
    let _ = writeln!(
        out,
        "# HELP autoloader_oldest_queued_seconds Age of the oldest queued run (since its tick)."
    );
    let _ = writeln!(out, "# TYPE autoloader_oldest_queued_seconds gauge");
    let _ = writeln!(
        out,
        "autoloader_oldest_queued_seconds {}",
        oldest_queued.unwrap_or(0.0).max(0.0)
    );
    let _ = writeln!(
        out,
        "# HELP autoloader_active_leases RUNNING runs whose lease is live."
    );
    let _ = writeln!(out, "# TYPE autoloader_active_leases gauge");
    let _ = writeln!(out, "autoloader_active_leases {active_leases}");
    let _ = writeln!(
        out,
        "# HELP autoloader_expired_leases RUNNING runs whose lease expired, awaiting recovery."
    );
    let _ = writeln!(out, "# TYPE autoloader_expired_leases gauge");
    let _ = writeln!(out, "autoloader_expired_leases {expired_leases}");

    let _ = writeln!(
        out,
        "# HELP autoloader_run_lateness_seconds started_at - scheduled_for of scheduled runs that started."
    );
    let _ = writeln!(out, "# TYPE autoloader_run_lateness_seconds histogram");
    for (b, n) in LATENESS_BUCKETS.iter().zip(&lateness.cumulative) {
        let _ = writeln!(
            out,
            "autoloader_run_lateness_seconds_bucket{{le=\"{b}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "autoloader_run_lateness_seconds_bucket{{le=\"+Inf\"}} {}",
        lateness.count
    );
    let _ = writeln!(out, "autoloader_run_lateness_seconds_sum {}", lateness.sum);
    let _ = writeln!(
        out,
        "autoloader_run_lateness_seconds_count {}",
        lateness.count
    );

    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}
