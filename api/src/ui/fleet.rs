//! `GET /ui/fleet`: the workers seen lately (from their leases and the runs they started or
//! finished in the last hour), the runs running now with their lease time left, the queue depth,
//! and the lateness of the last hour's scheduled runs as a chart drawn here, in SVG.
//! A tenant sees its own runs only (and the workers that ran them); the admin sees all.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};
use uuid::Uuid;

use autoloader::ingestions::store::{self, ListFilter, ListOrder};
use autoloader::paging::PageRequest;
use autoloader::runs::dashboard::{
    runs_active, runs_lateness_last_hour, runs_workers_seen, LatenessPoint,
};

use super::layout::{self, Nav};
use super::session::UiSession;
use super::Refusal;
use crate::error::ApiError;
use crate::AppState;

/// A worker whose latest sign of life is this recent, or that holds a lease, is alive.
const ALIVE_SECS: i64 = 120;
/// The chart's buckets over the hour.
const BUCKETS: usize = 12;

pub async fn page(State(state): State<AppState>, session: UiSession) -> Response {
    match render(&state, &session).await {
        Ok(m) => layout::respond(StatusCode::OK, m),
        Err(e) => {
            let r = Refusal::of(e).await;
            layout::error_page(Some(&session), r.status_code(), &r.detail)
        }
    }
}

async fn render(state: &AppState, session: &UiSession) -> Result<Markup, ApiError> {
    let tenants: Vec<Uuid> = match session.tenant() {
        Some(t) => vec![t],
        None => autoloader::tenants::tenant_list(&state.pool)
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect(),
    };
    let active = runs_active(&state.pool, session.tenant()).await?;
    let workers = runs_workers_seen(&state.pool, &tenants).await?;
    let lateness = runs_lateness_last_hour(&state.pool, &tenants).await?;
    let (ingestions, _) = store::ingestion_list_ordered(
        &state.pool,
        session.tenant(),
        &ListFilter::default(),
        false,
        ListOrder::Created,
        PageRequest { page: 1, size: 200 },
    )
    .await?;
    let names: HashMap<Uuid, String> = ingestions.into_iter().map(|i| (i.id, i.name)).collect();
    let now = Utc::now();
    let queued = active.iter().filter(|r| r.status == "QUEUED").count();
    let running: Vec<_> = active.iter().filter(|r| r.status == "RUNNING").collect();
    let main = html! {
        div #fleet-region {
            div.grid {
                section aria-labelledby="h-queue" {
                    h2 #h-queue { "Queue" }
                    p { span #queue-depth.big { (queued) } " runs queued, " (running.len()) " running." }
                }
                section aria-labelledby="h-workers" {
                    h2 #h-workers { "Workers" }
                    @if workers.is_empty() { p #no-workers { "No worker has run anything in the last hour." } }
                    ul #workers {
                        @for w in &workers {
                            @let alive = w.running > 0 || (now - w.last_seen).num_seconds() <= ALIVE_SECS;
                            li data-worker=(w.worker_id) data-alive=(alive) {
                                strong { (w.worker_id) } ": "
                                @if alive { "alive" } @else { "quiet" }
                                ", " (w.running) " running, last seen " (layout::age(w.last_seen, now))
                            }
                        }
                    }
                }
            }
            section aria-labelledby="h-running" {
                h2 #h-running { "Running now" }
                div.scroll tabindex="0" role="region" aria-label="Runs running now, scrollable" {
                    table #running {
                        thead { tr { th scope="col" { "Ingestion" } th scope="col" { "Run" } th scope="col" { "Worker" } th scope="col" { "Started" } th scope="col" { "Lease left" } } }
                        tbody {
                            @for r in &running {
                                tr data-run-id=(r.id) {
                                    td { a href={"/ui/ingestions/" (r.ingestion_id)} { (names.get(&r.ingestion_id).map(String::as_str).unwrap_or("ingestion")) } }
                                    td { code { (r.id) } }
                                    td { (r.worker_id.as_deref().unwrap_or("")) }
                                    td { (r.started_at.map(|s| layout::age(s, now)).unwrap_or_default()) }
                                    td { (r.lease_expires_at.map(|l| lease_left(l, now)).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
                @if running.is_empty() { p #none-running { "Nothing is running." } }
            }
            section aria-labelledby="h-lateness" {
                h2 #h-lateness { "Lateness, last hour" }
                (chart(&lateness, now))
            }
        }
    };
    Ok(layout::page("Fleet", Some(session), Nav::Fleet, main))
}

fn lease_left(until: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let ms = (until - now).num_milliseconds();
    if ms <= 0 {
        "expired".to_owned()
    } else {
        layout::duration_ms(ms as f64)
    }
}

/// Bars of the largest lateness of each five minutes of the last hour.
fn chart(points: &[LatenessPoint], now: DateTime<Utc>) -> Markup {
    let start = now - Duration::hours(1);
    let bucket_ms = 3_600_000 / BUCKETS as i64;
    let mut max = [0f64; BUCKETS];
    let mut count = [0usize; BUCKETS];
    for p in points {
        let i = ((p.started_at - start).num_milliseconds() / bucket_ms).clamp(0, BUCKETS as i64 - 1)
            as usize;
        max[i] = max[i].max(p.lateness_ms);
        count[i] += 1;
    }
    let top = max.iter().copied().fold(1000.0f64, f64::max);
    let (w, h, left, bottom) = (600.0, 160.0, 56.0, 24.0);
    let bar_w = (w - left) / BUCKETS as f64;
    let total: usize = count.iter().sum();
    let worst = max.iter().copied().fold(0.0f64, f64::max);
    let summary = if total == 0 {
        "No scheduled run started in the last hour.".to_owned()
    } else {
        format!(
            "{total} scheduled runs started in the last hour; the latest start was {} late.",
            layout::duration_ms(worst)
        )
    };
    html! {
        svg #lateness-chart viewBox={"0 0 " (w) " " (h)} width=(w) height=(h) role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg" {
            title #chart-title { "Largest lateness per five minutes, last hour" }
            desc #chart-desc { (summary) }
            line x1=(left) y1=(h - bottom) x2=(w) y2=(h - bottom) stroke="#4a5360" {}
            line x1=(left) y1="4" x2=(left) y2=(h - bottom) stroke="#4a5360" {}
            text x=(left - 4.0) y="14" text-anchor="end" font-size="11" fill="#1b1f24" { (layout::duration_ms(top)) }
            text x=(left - 4.0) y=(h - bottom) text-anchor="end" font-size="11" fill="#1b1f24" { "0" }
            text x=(left) y=(h - 6.0) font-size="11" fill="#1b1f24" { "−60 min" }
            text x=(w) y=(h - 6.0) text-anchor="end" font-size="11" fill="#1b1f24" { "now" }
            @for (i, m) in max.iter().enumerate() {
                @if count[i] > 0 {
                    @let bh = ((h - bottom - 8.0) * m / top).max(1.0);
                    rect x=(format!("{:.1}", left + i as f64 * bar_w + 2.0)) y=(format!("{:.1}", h - bottom - bh))
                        width=(format!("{:.1}", bar_w - 4.0)) height=(format!("{:.1}", bh)) fill="#0b57a4" {
                        title { (count[i]) " runs, up to " (layout::duration_ms(*m)) " late" }
                    }
                }
            }
        }
        p.hint { (summary) }
    }
}
