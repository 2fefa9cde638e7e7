//! `GET /ui/ingestions`: the ingestions of the signed-in tenant (the admin: of every tenant, with
//! a tenant column), filtered, sorted and paged; late and failing ones stand out.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use autoloader::ingestions::store::{self, IngestionRow, ListFilter, ListOrder};
use autoloader::paging::PageRequest;
use autoloader::runs::dashboard::{runs_latest_load, LatestLoad};
use autoloader::runs::stats::{run_stats_read, RunStats, Window};

use super::layout::{self, Nav};
use super::session::UiSession;
use crate::AppState;

/// Rows per page.
pub const PAGE_SIZE: i64 = 25;
/// An enabled schedule whose next run is this far past is late (the ticker has not fired it).
const LATE_AFTER_SECS: i64 = 120;
/// A load queued this long ago and not started is late.
const QUEUED_LATE_AFTER_SECS: i64 = 300;
/// Longest name filter.
const MAX_NAME_FILTER: usize = 200;

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    name: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    page: Option<String>,
}

/// One row as the table shows it.
struct Row {
    ingestion: IngestionRow,
    tenant_name: Option<String>,
    latest: Option<LatestLoad>,
    stats: Option<RunStats>,
}

pub async fn page(
    State(state): State<AppState>,
    session: UiSession,
    Query(params): Query<ListParams>,
) -> Response {
    match render(&state, &session, params).await {
        Ok(markup) => layout::respond(StatusCode::OK, markup),
        Err(e) => {
            let r = super::Refusal::of(e).await;
            layout::error_page(Some(&session), r.status_code(), &r.detail)
        }
    }
}

async fn render(
    state: &AppState,
    session: &UiSession,
    params: ListParams,
) -> Result<Markup, crate::error::ApiError> {
    let name = params
        .name
        .map(|n| {
            n.trim()
                .chars()
                .filter(|c| *c != '\0')
                .take(MAX_NAME_FILTER)
                .collect::<String>()
        })
        .filter(|n| !n.is_empty());
    let status = params.status.unwrap_or_default();
    let schedule_enabled = match status.as_str() {
        "enabled" => Some(true),
        "disabled" => Some(false),
        _ => None,
    };
    let order = match params.sort.as_deref() {
        Some("name") => ListOrder::Name,
        Some("next_run") => ListOrder::NextRun,
        _ => ListOrder::Created,
    };
    let page_no = params
        .page
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1);
    let request = PageRequest {
        page: page_no,
        size: PAGE_SIZE,
    };
    let filter = ListFilter {
        status: None,
        schedule_enabled,
        name: name.clone(),
    };
    let (rows, total) = store::ingestion_list_ordered(
        &state.pool,
        session.tenant(),
        &filter,
        status == "failing",
        order,
        request,
    )
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut latest: HashMap<Uuid, LatestLoad> = runs_latest_load(&state.pool, &ids)
        .await?
        .into_iter()
        .map(|l| (l.ingestion_id, l))
        .collect();
    let tenant_names: HashMap<Uuid, String> = if session.is_admin() {
        autoloader::tenants::tenant_list(&state.pool)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect()
    } else {
        HashMap::new()
    };
    let mut table = Vec::with_capacity(rows.len());
    for ingestion in rows {
        let stats = run_stats_read(
            &state.pool,
            ingestion.tenant_id,
            ingestion.id,
            Window::default(),
        )
        .await
        // The row is still worth showing without its statistics.
        .inspect_err(|e| tracing::warn!(ingestion_id = %ingestion.id, error = %e, "dashboard: cannot read statistics"))
        .ok();
        table.push(Row {
            tenant_name: tenant_names.get(&ingestion.tenant_id).cloned(),
            latest: latest.remove(&ingestion.id),
            stats,
            ingestion,
        });
    }
    let now = Utc::now();
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let link = |p: i64| {
        let mut q = vec![format!("page={p}")];
        if let Some(n) = &name {
            q.push(format!("name={}", encode(n)));
        }
        if !status.is_empty() {
            q.push(format!("status={}", encode(&status)));
        }
        if order != ListOrder::Created {
            q.push(format!("sort={}", order.as_str()));
        }
        format!("/ui/ingestions?{}", q.join("&"))
    };
    let main = html! {
        div.toolbar {
            form #filters method="get" action="/ui/ingestions" role="search" {
                div.field {
                    label for="filter-name" { "Name contains" }
                    input #filter-name type="search" name="name" value=[name.as_deref()] maxlength=(MAX_NAME_FILTER);
                }
                div.field {
                    label for="filter-status" { "Status" }
                    select #filter-status name="status" {
                        option value="" selected[status.is_empty()] { "All" }
                        option value="enabled" selected[status == "enabled"] { "Enabled" }
                        option value="disabled" selected[status == "disabled"] { "Disabled (paused)" }
                        option value="failing" selected[status == "failing"] { "Failing (last load failed)" }
                    }
                }
                div.field {
                    label for="filter-sort" { "Sort by" }
                    select #filter-sort name="sort" {
                        option value="created" selected[order == ListOrder::Created] { "Created" }
                        option value="name" selected[order == ListOrder::Name] { "Name" }
                        option value="next_run" selected[order == ListOrder::NextRun] { "Next run" }
                    }
                }
                button type="submit" { "Filter" }
            }
            @if !session.is_admin() {
                a #new-ingestion.button href="/ui/ingestions/new" { "New ingestion" }
            }
        }
        div #ingestions-region data-live="list" {
            @if table.is_empty() {
                p #no-ingestions { "No ingestions" @if name.is_some() || !status.is_empty() { " match these filters" } "." }
            } @else {
                div.scroll tabindex="0" role="region" aria-label="Ingestions, scrollable" {
                    table #ingestions {
                        caption { (total) " ingestion" @if total != 1 { "s" } ", page " (page_no) " of " (pages) }
                        thead { tr {
                            @if session.is_admin() { th scope="col" { "Tenant" } }
                            th scope="col" { "Name" }
                            th scope="col" { "Source" }
                            th scope="col" { "Format" }
                            th scope="col" { "Destination" }
                            th scope="col" { "Schedule" }
                            th scope="col" { "Next run" }
                            th scope="col" { "Last run" }
                            th scope="col" { "Success 24 h" }
                            th scope="col" { "p50 24 h" }
                            th scope="col" { "Paused because" }
                        } }
                        tbody {
                            @for r in &table { (row(r, now, session.is_admin())) }
                        }
                    }
                }
                @if pages > 1 {
                    nav.pager aria-label="Pages" {
                        @if page_no > 1 { a rel="prev" href=(link(page_no - 1)) { "Previous page" } }
                        span { "Page " (page_no) " of " (pages) }
                        @if page_no < pages { a rel="next" href=(link(page_no + 1)) { "Next page" } }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        "Ingestions",
        Some(session),
        Nav::Ingestions,
        main,
    ))
}

fn row(r: &Row, now: DateTime<Utc>, admin: bool) -> Markup {
    let i = &r.ingestion;
    let failing = r.latest.as_ref().is_some_and(|l| l.status == "FAILED");
    let overdue = i.schedule_enabled
        && i.next_run_time
            .is_some_and(|t| (now - t).num_seconds() > LATE_AFTER_SECS);
    let stuck = r.latest.as_ref().is_some_and(|l| {
        l.status == "QUEUED" && (now - l.queued_at).num_seconds() > QUEUED_LATE_AFTER_SECS
    });
    let late = overdue || stuck;
    let class = match (failing, late) {
        (true, true) => Some("failing late"),
        (true, false) => Some("failing"),
        (false, true) => Some("late"),
        _ => None,
    };
    let success = r.stats.as_ref().and_then(|s| {
        let ran = s.succeeded + s.failed;
        (ran > 0).then(|| format!("{:.0} % of {ran}", 100.0 * s.succeeded as f64 / ran as f64))
    });
    let p50 = r
        .stats
        .as_ref()
        .and_then(|s| s.duration.p50_ms)
        .map(layout::duration_ms);
    html! {
        tr data-ingestion-id=(i.id) class=[class] {
            @if admin { td data-col="tenant" { (r.tenant_name.as_deref().unwrap_or("?")) } }
            td data-col="name" { a href={"/ui/ingestions/" (i.id)} { (i.name) } }
            td data-col="source" { code { (i.source_path) } }
            td data-col="format" { (i.format_type) }
            td data-col="destination" { code { (i.tenant_namespace) "." (i.destination_table) } }
            td data-col="schedule" {
                (layout::schedule_words(i.schedule_frequency.as_deref(), i.schedule_time.as_deref(), i.schedule_cron.as_deref(), &i.schedule_timezone))
            }
            td data-col="next-run" {
                @match (i.schedule_enabled, i.next_run_time) {
                    (true, Some(t)) => {
                        (layout::local_and_utc(t, &i.schedule_timezone))
                        @if late { " " span.badge.late-badge { "late" } }
                        @if layout::crosses_dst(now, t, &i.schedule_timezone) {
                            " " span.badge.dst title="The clocks change before this run" { "DST change" }
                        }
                    }
                    (true, None) => { "being scheduled" }
                    (false, _) => { "paused" }
                }
            }
            td data-col="last-run" {
                @if let Some(l) = &r.latest {
                    span class={"status status-" (l.status.to_lowercase())} { (l.status) }
                    " " (layout::age(l.finished_at.unwrap_or(l.queued_at), now))
                } @else { "never" }
            }
            td data-col="success-rate" { (success.as_deref().unwrap_or("–")) }
            td data-col="p50" { (p50.as_deref().unwrap_or("–")) }
            td data-col="paused-reason" { (i.paused_reason.as_deref().unwrap_or("")) }
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
