//! An ingestion's statistics over a window: its loads by status, success rate, duration and
//! lateness percentiles, what they loaded, and the latest success and failure. Read at request
//! time from the ingestion's live runs of about the last day (through the run history's indexes)
//! and the hour buckets the workers' sweep folds older loads into (`autoloader::runs::stats`,
//! `autoloader::runs::fold`), so neither the fold nor the retention changes a number and
//! finishing a run writes nothing more.
//! Scoped to the caller's tenant like every per-ingestion endpoint: another tenant's ingestion
//! is 404.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use autoloader::ingestions::store::ingestion_exists;
use autoloader::runs::stats::{run_stats_read, LastRun, RunStats, Summary, Window};

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/ingestions/{id}/stats", get(stats))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// `1h`, `24h`, `7d` or `30d`: the loads whose tick (or manual trigger) is in the last hour,
    /// day, 7 or 30 days.
    #[param(value_type = Option<StatsWindow>, default = "24h")]
    window: Option<String>,
}

/// The windows statistics are kept for.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub enum StatsWindow {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
}

/// Loads of the window, by status. Maintenance runs are not counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunCounts {
    /// Every finished load: the sum of the five below (not `active`).
    pub total: i64,
    /// A load of the window queued or running now (0 or 1); not in `total`.
    pub active: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
    /// Ticks refused because a load was still active.
    pub skipped: i64,
    /// Ticks not run: later than the misfire grace time, or missed while paused or during an
    /// outage and not caught up (one row may stand for several ticks).
    pub missed: i64,
}

/// Milliseconds. `p50` and `p95` are read from log-scale histogram buckets: each is the upper
/// bound of the bucket holding the percentile (nearest rank), never above `max`: never below
/// the true value, and at most 25 % above it (1 ms below 4 ms). `mean` and `max` are exact.
/// Every field but `count` is null when `count` is 0.
#[derive(Debug, Serialize, ToSchema)]
pub struct Distribution {
    pub count: i64,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

impl From<Summary> for Distribution {
    fn from(s: Summary) -> Self {
        Distribution {
            count: s.count,
            mean: s.mean_ms,
            p50: s.p50_ms,
            p95: s.p95_ms,
            max: s.max_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LastRunRef {
    pub run_id: Uuid,
    pub finished_at: DateTime<Utc>,
}

impl From<LastRun> for LastRunRef {
    fn from(r: LastRun) -> Self {
        LastRunRef {
            run_id: r.run_id,
            finished_at: r.finished_at,
        }
    }
}

/// An ingestion's loads for the ticks in the window: a load counts when its tick
/// (`scheduled_for`), or for a manual run the instant it was asked for, is in `[from, to]`,
/// whatever instant it finished (a catch-up run for an old tick counts in its tick's window).
/// Loads more than a day old are kept as hour buckets by tick (folded by the workers' sweep, or
/// by the run retention as it deletes them) and count when their hour starts in the window;
/// a window reaching folded hours (`7d`, `30d`) starts on the hour, so they are whole. When the
/// retention is shorter than a window starting at an instant, the deleted runs of the window's
/// first, partial hour are left out.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    pub ingestion_id: Uuid,
    /// `1h`, `24h`, `7d` or `30d`.
    pub window: String,
    /// `to` less the window; for a window reaching folded hours (`7d`, `30d`), the start of the
    /// UTC hour of that instant.
    pub from: DateTime<Utc>,
    /// Now, by the database's clock.
    pub to: DateTime<Utc>,
    pub runs: RunCounts,
    /// succeeded / (succeeded + failed); null when neither. Skipped, missed and cancelled ticks
    /// are counted in `runs`, not here.
    pub success_rate: Option<f64>,
    /// `finished_at - started_at` of succeeded and failed loads (the attempt that finished).
    pub duration_ms: Distribution,
    /// `started_at - scheduled_for` (0 when early) of succeeded and failed loads for a tick;
    /// manual runs have no tick and are left out.
    pub lateness_ms: Distribution,
    /// Of succeeded loads.
    pub files_loaded: i64,
    pub rows_loaded: i64,
    pub bytes_loaded: i64,
    /// The latest load of the window that succeeded; null when none did.
    pub last_success: Option<LastRunRef>,
    /// The latest load of the window that failed; null when none did.
    pub last_failure: Option<LastRunRef>,
}

impl StatsResponse {
    fn new(ingestion_id: Uuid, s: RunStats) -> StatsResponse {
        let ran = s.succeeded + s.failed;
        StatsResponse {
            ingestion_id,
            window: s.window.as_str().to_owned(),
            from: s.from,
            to: s.to,
            runs: RunCounts {
                total: s.succeeded + s.failed + s.cancelled + s.skipped + s.missed,
                active: s.active,
                succeeded: s.succeeded,
                failed: s.failed,
                cancelled: s.cancelled,
                skipped: s.skipped,
                missed: s.missed,
            },
            success_rate: (ran > 0).then(|| s.succeeded as f64 / ran as f64),
            duration_ms: s.duration.into(),
            lateness_ms: s.lateness.into(),
            files_loaded: s.files_loaded,
            rows_loaded: s.rows_loaded,
            bytes_loaded: s.bytes_loaded,
            last_success: s.last_success.map(Into::into),
            last_failure: s.last_failure.map(Into::into),
        }
    }
}

/// Statistics of the ingestion's loads for the ticks (or manual triggers) in a window (default
/// `24h`). Loads more than a day old are folded into hour buckets, and runs deleted by the run
/// retention as they go, so neither changes the statistics.
#[utoipa::path(get, path = "/api/v1/ingestions/{id}/stats", tag = "runs",
    params(("id" = Uuid, Path), StatsQuery),
    responses((status = 200, body = StatsResponse),
              (status = 400, body = Problem, description = "a `window` other than 1h, 24h, 7d, 30d"),
              (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn stats(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<StatsResponse>> {
    let window = match q.window.as_deref() {
        None => Window::default(),
        Some(w) => w.parse::<Window>().map_err(|e| ApiError::BadRequest {
            detail: e.to_string(),
            field: Some("window".to_owned()),
        })?,
    };
    if !ingestion_exists(&state.pool, tenant, id).await? {
        return Err(ApiError::NotFound("ingestion"));
    }
    let stats = run_stats_read(&state.pool, tenant, id, window).await?;
    Ok(Json(StatsResponse::new(id, stats)))
}
