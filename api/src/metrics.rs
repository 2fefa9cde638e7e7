//! `GET /metrics`: Prometheus text, computed from the database at scrape time.
//!
//! Several worker processes share the work, so the numbers that matter live in PostgreSQL, not in
//! any one process: every API replica reports the same totals, whichever one is scraped. Metric
//! names are the product spec's (section 12.3) where it names them.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::error::ApiResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Upper bounds (seconds) of the lateness histogram's buckets.
const LATENESS_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// The lateness histogram: cumulative counts per bucket of [`LATENESS_BUCKETS`], their sum and count.
#[derive(Debug, Default)]
struct Lateness {
    cumulative: Vec<i64>,
    sum: f64,
    count: i64,
}

/// One group of the run table's single pass.
#[derive(sqlx::FromRow)]
struct Group {
    by: String,
    status: String,
    buckets_at_or_above: Option<i32>,
    n: i64,
    secs: Option<f64>,
}

/// Runs by trigger and status, and the lateness histogram of scheduled runs that started, in one
/// pass over the run table: every scrape reads the whole table once, so its cost grows with the
/// run history (about 0.4 s per million runs on the development machine).
async fn runs_by_status_and_lateness(
    pool: &sqlx::PgPool,
) -> Result<(Vec<(String, String, i64)>, Lateness), sqlx::Error> {
    // `width_bucket(x, thresholds)` counts the thresholds <= x. With x = -lateness and the
    // thresholds the negated bucket bounds in ascending order, that is the number of buckets
    // whose bound is >= the lateness: the buckets (`le`, cumulative) the run counts in.
    let negated: Vec<f64> = LATENESS_BUCKETS.iter().rev().map(|b| -b).collect();
    let groups: Vec<Group> = sqlx::query_as(
        "select triggered_by as by, status,
                width_bucket(date_part('epoch', scheduled_for - started_at), $1::float8[])
                    as buckets_at_or_above,
                count(*) as n, sum(date_part('epoch', started_at - scheduled_for)) as secs
         from runs group by 1, 2, 3",
    )
    .bind(&negated)
    .fetch_all(pool)
    .await?;
    let mut by_status: Vec<(String, String, i64)> = Vec::new();
    let mut lateness = Lateness {
        cumulative: vec![0; LATENESS_BUCKETS.len()],
        ..Lateness::default()
    };
    for Group {
        by,
        status,
        buckets_at_or_above,
        n,
        secs,
    } in groups
    {
        match by_status
            .iter_mut()
            .find(|(b, s, _)| *b == by && *s == status)
        {
            Some((_, _, total)) => *total += n,
            None => by_status.push((by, status, n)),
        }
        let Some(k) = buckets_at_or_above else {
            continue; // not a scheduled run, or never started
        };
        let k = usize::try_from(k).unwrap_or(0).min(LATENESS_BUCKETS.len());
        for c in &mut lateness.cumulative[LATENESS_BUCKETS.len() - k..] {
            *c += n;
        }
        lateness.count += n;
        lateness.sum += secs.unwrap_or(0.0);
    }
    by_status.sort();
    Ok((by_status, lateness))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let pool = &state.pool;
    let scheduled: i64 = sqlx::query_scalar("select count(*) from schedule_ticks")
        .fetch_one(pool)
        .await?;
    let (active_leases, expired_leases): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where lease_expires_at >= now()), count(*) filter (where lease_expires_at < now())
         from runs where status = 'RUNNING'",
    )
    .fetch_one(pool)
    .await?;
    let (queue_depth, oldest_queued): (i64, Option<f64>) = sqlx::query_as(
        "select count(*), extract(epoch from now() - min(coalesce(scheduled_for, queued_at)))::float8
         from runs where status = 'QUEUED'",
    )
    .fetch_one(pool)
    .await?;
    let (by_status, lateness) = runs_by_status_and_lateness(pool).await?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP autoloader_scheduled_jobs_total Ingestions whose schedule is enabled and active."
    );
    let _ = writeln!(out, "# TYPE autoloader_scheduled_jobs_total gauge");
    let _ = writeln!(out, "autoloader_scheduled_jobs_total {scheduled}");

    let _ = writeln!(
        out,
        "# HELP autoloader_scheduled_executions_total Scheduled runs by outcome."
    );
    let _ = writeln!(out, "# TYPE autoloader_scheduled_executions_total counter");
    for (_, status, n) in by_status.iter().filter(|(by, ..)| by == "scheduler") {
        let _ = writeln!(
            out,
            "autoloader_scheduled_executions_total{{status=\"{}\"}} {n}",
            status.to_lowercase()
        );
    }
    let _ = writeln!(
        out,
        "# HELP autoloader_runs Runs by trigger and status, as stored now."
    );
    let _ = writeln!(out, "# TYPE autoloader_runs gauge");
    for (by, status, n) in &by_status {
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
        "# HELP autoloader_run_lateness_seconds started_at - scheduled_for of scheduled runs."
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
