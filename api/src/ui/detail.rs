//! `GET /ui/ingestions/{id}`: one ingestion: its definition, next runs with DST flags, run
//! history, files, table facts and audit trail, and the actions on it. `GET
//! /ui/ingestions/{id}/runs` is the run table alone, which the page fetches again on a live
//! update.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use uuid::Uuid;

use autoloader::ingestions::store::{self, IngestionRow};
use autoloader::ledger::{self, FileStatus};
use autoloader::paging::{KeysetRequest, PageRequest};
use autoloader::runs::history;
use autoloader::runs::RunRow;

use super::layout::{self, Nav};
use super::session::UiSession;
use super::Refusal;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::model::IngestionResponse;
use crate::AppState;

/// Runs the page shows (newest first).
pub const RUNS_SHOWN: i64 = 25;
/// Files of each status the page shows.
pub const FILES_SHOWN: i64 = 25;
/// Audit events the page shows (newest first).
pub const EVENTS_SHOWN: i64 = 25;
/// Upcoming runs the page shows.
pub const NEXT_RUNS: usize = 5;

/// The outcome of an action, shown in `#action-message`.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub error: bool,
    pub text: String,
}

impl Outcome {
    pub fn ok(text: impl Into<String>) -> Outcome {
        Outcome {
            error: false,
            text: text.into(),
        }
    }

    pub fn refused(r: &Refusal) -> Outcome {
        Outcome {
            error: true,
            text: format!("{} ({}): {}", r.title, r.status, r.detail),
        }
    }
}

/// The tenant's ingestion `id` (the admin: whoever's it is), or 404 as the API says it.
pub async fn ingestion_for(
    state: &AppState,
    session: &UiSession,
    id: Uuid,
) -> Result<IngestionRow, ApiError> {
    let tenant = match session.tenant() {
        Some(t) => t,
        None => {
            store::ingestion_schedule(&state.pool, id)
                .await?
                .ok_or(ApiError::NotFound("ingestion"))?
                .tenant_id
        }
    };
    store::ingestion_get(&state.pool, tenant, id)
        .await?
        .ok_or(ApiError::NotFound("ingestion"))
}

pub async fn page(
    State(state): State<AppState>,
    session: UiSession,
    ApiPath(id): ApiPath<Uuid>,
) -> Response {
    show(&state, &session, id, StatusCode::OK, None).await
}

/// The page of ingestion `id`, with the outcome of an action when there was one.
pub async fn show(
    state: &AppState,
    session: &UiSession,
    id: Uuid,
    status: StatusCode,
    outcome: Option<Outcome>,
) -> Response {
    match render(state, session, id, outcome).await {
        Ok(markup) => layout::respond(status, markup),
        Err(e) => {
            let r = Refusal::of(e).await;
            layout::error_page(Some(session), r.status_code(), &r.detail)
        }
    }
}

pub async fn runs_fragment(
    State(state): State<AppState>,
    session: UiSession,
    ApiPath(id): ApiPath<Uuid>,
) -> Response {
    let result = async {
        let row = ingestion_for(&state, &session, id).await?;
        let runs = runs_region(&state, &session, &row).await?;
        Ok::<_, ApiError>(runs)
    }
    .await;
    match result {
        Ok(markup) => layout::respond(StatusCode::OK, markup),
        Err(e) => {
            let r = Refusal::of(e).await;
            layout::error_page(Some(&session), r.status_code(), &r.detail)
        }
    }
}

async fn runs_region(
    state: &AppState,
    session: &UiSession,
    row: &IngestionRow,
) -> Result<Markup, ApiError> {
    let request = PageRequest {
        page: 1,
        size: RUNS_SHOWN,
    };
    let (runs, total) =
        history::run_history(&state.pool, row.tenant_id, row.id, None, request).await?;
    Ok(runs_table(
        row.id,
        &runs,
        total,
        !session.is_admin(),
        &session.csrf,
    ))
}

fn runs_table(id: Uuid, runs: &[RunRow], total: i64, can_act: bool, csrf: &str) -> Markup {
    let now = Utc::now();
    html! {
        div #runs-region data-ingestion-id=(id) data-src={"/ui/ingestions/" (id) "/runs"} {
            @if runs.is_empty() {
                p #no-runs { "No runs yet." }
            }
            div.scroll tabindex="0" role="region" aria-label="Runs, scrollable" {
                table #runs {
                    caption { "Latest " (runs.len()) " of " (total) " runs, newest first" }
                    thead { tr {
                        th scope="col" { "Status" } th scope="col" { "Trigger" } th scope="col" { "Queued" }
                        th scope="col" { "Lateness" } th scope="col" { "Duration" } th scope="col" { "Files" }
                        th scope="col" { "Rows" } th scope="col" { "Bytes" } th scope="col" { "Snapshot" }
                        th scope="col" { "Worker" } th scope="col" { "Error" } th scope="col" { "Action" }
                    } }
                    tbody {
                        @for r in runs {
                            tr data-run-id=(r.id) {
                                td data-col="status" class={"status status-" (r.status.to_lowercase())} { (r.status) }
                                td data-col="trigger" { (r.triggered_by) @if r.kind != "load" { " (" (r.kind) ")" } }
                                td data-col="queued" { time datetime=(r.queued_at.to_rfc3339()) { (layout::age(r.queued_at, now)) } }
                                td data-col="lateness" { (ms_between(r.scheduled_for, r.started_at).map(|m| layout::duration_ms(m.max(0.0))).unwrap_or_default()) }
                                td data-col="duration" { (ms_between(r.started_at, r.finished_at).map(layout::duration_ms).unwrap_or_default()) }
                                td data-col="files" { (r.files_processed) @if r.files_rejected > 0 { " (" (r.files_rejected) " rejected)" } }
                                td data-col="rows" { (r.rows_ingested) }
                                td data-col="bytes" { (layout::bytes(r.bytes_read)) }
                                td data-col="snapshot" { (r.snapshot_id.map(|s| s.to_string()).unwrap_or_default()) }
                                td data-col="worker" { (r.worker_id.as_deref().unwrap_or("")) }
                                td data-col="error" { (r.error.as_deref().or(r.reason.as_deref()).unwrap_or("")) }
                                td data-col="action" {
                                    @if can_act && r.status == "QUEUED" {
                                        form method="post" action={"/ui/runs/" (r.id) "/cancel"}
                                            data-confirm="Cancel this queued run?" {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button type="submit" data-action="cancel" data-run-id=(r.id)
                                                aria-label={"Cancel run " (r.id)} { "Cancel" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn ms_between(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<f64> {
    Some((to? - from?).num_milliseconds() as f64)
}

async fn render(
    state: &AppState,
    session: &UiSession,
    id: Uuid,
    outcome: Option<Outcome>,
) -> Result<Markup, ApiError> {
    let row = ingestion_for(state, session, id).await?;
    let tenant = row.tenant_id;
    let runs = runs_region(state, session, &row).await?;
    let first = |limit| KeysetRequest { after: None, limit };
    let (rejected, more_rejected) = ledger::ledger_files(
        &state.pool,
        tenant,
        id,
        Some(FileStatus::Rejected),
        &first(FILES_SHOWN),
    )
    .await?;
    let (loaded, more_loaded) = ledger::ledger_files(
        &state.pool,
        tenant,
        id,
        Some(FileStatus::Loaded),
        &first(FILES_SHOWN),
    )
    .await?;
    let (events, events_total) = autoloader::audit::audit_ingestion_events(
        &state.pool,
        tenant,
        id,
        PageRequest {
            page: 1,
            size: EVENTS_SHOWN,
        },
    )
    .await?;
    let schedule = row.schedule_enabled.then(|| {
        store::stored_schedule(
            row.schedule_frequency.as_deref(),
            row.schedule_time.as_deref(),
            &row.schedule_timezone,
            row.schedule_cron.as_deref(),
        )
        .ok()
    });
    let now = Utc::now();
    let next_runs = match schedule.flatten() {
        Some(s) => crate::schedules::upcoming(&s, now, NEXT_RUNS).1,
        None => Vec::new(),
    };
    let view = IngestionResponse::from(row);
    let facts =
        autoloader::tables::table_facts_get(&state.pool, tenant, &view.iceberg_table).await?;
    let can_act = !session.is_admin();
    let zone = view.schedule_timezone.clone();
    let main = html! {
        div #action-message role=(if outcome.as_ref().is_some_and(|o| o.error) { "alert" } else { "status" })
            class=[outcome.as_ref().filter(|o| o.error).map(|_| "error")] {
            @if let Some(o) = &outcome { (o.text) }
        }
        @if let Some(reason) = &view.paused_reason {
            p #paused-reason.error { "Paused: " (reason)
                @if let Some(by) = &view.paused_by { " (by " (by) ")" } }
        } @else if !view.schedule_enabled {
            p #paused-reason { "The schedule is disabled." }
        }
        @if can_act {
            div.actions {
                form #run-now-form method="post" action={"/ui/ingestions/" (id) "/run"}
                    data-confirm={"Run " (view.name) " now?"} {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button #run-now type="submit" { "Run now" }
                }
                @if view.schedule_enabled {
                    form #disable-form method="post" action={"/ui/ingestions/" (id) "/disable"}
                        data-confirm={"Disable the schedule of " (view.name) "? Say why, for whoever looks next."} data-reason {
                        input type="hidden" name="csrf" value=(session.csrf);
                        input type="hidden" name="reason" value="";
                        button #disable.danger type="submit" { "Disable" }
                    }
                } @else {
                    form #enable-form method="post" action={"/ui/ingestions/" (id) "/enable"}
                        data-confirm={"Enable the schedule of " (view.name) "?"} {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button #enable type="submit" { "Enable" }
                    }
                }
                form #retry-form method="post" action={"/ui/ingestions/" (id) "/retry"}
                    data-confirm="Retry every rejected file at the next run?" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button #retry-rejected type="submit" { "Retry rejected files" }
                }
                a #edit.button href={"/ui/ingestions/" (id) "/edit"} { "Edit" }
            }
        }
        div.grid {
            section aria-labelledby="h-definition" {
                h2 #h-definition { "Definition" }
                dl #definition.definition {
                    dt { "Name" } dd { (view.name) }
                    @if let Some(d) = &view.description { dt { "Description" } dd { (d) } }
                    dt { "Source" } dd { (view.source_type) " " code { (view.source_path) } }
                    dt { "Format" } dd { (view.format_type) }
                    dt { "Destination" } dd { code { (view.iceberg_table) } }
                    dt { "Schedule" } dd { (layout::schedule_words(view.schedule_frequency.as_deref(), view.schedule_time.as_deref(), view.schedule_cron.as_deref(), &zone))
                        @if !view.schedule_enabled { " (disabled)" } }
                    dt { "Catch-up" } dd { (view.catchup) " (at most " (view.max_catchup_runs) ")" }
                    dt { "Options" } dd { pre { (serde_json::to_string_pretty(&view.options).unwrap_or_default()) } }
                    dt { "Created" } dd { (view.created_at.format("%Y-%m-%d %H:%M UTC")) }
                }
            }
            section aria-labelledby="h-next" {
                h2 #h-next { "Next runs" }
                @if next_runs.is_empty() {
                    p { "None scheduled." }
                }
                ul #next-runs {
                    @for r in &next_runs {
                        @let dst = r.shifted_by_dst_gap || r.repeated_in_dst_overlap || layout::crosses_dst(now, r.at, &zone);
                        li class=[dst.then_some("dst")] {
                            (layout::local_and_utc(r.at, &zone))
                            @if r.shifted_by_dst_gap { " " span.badge { "moved by the DST gap" } }
                            @else if r.repeated_in_dst_overlap { " " span.badge { "repeated hour (DST)" } }
                            @else if dst { " " span.badge { "after a DST change" } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-runs" {
            h2 #h-runs { "Runs" }
            (runs)
        }
        section #files aria-labelledby="h-files" {
            h2 #h-files { "Files" }
            h3 { "Rejected" }
            @if rejected.is_empty() { p { "No rejected files." } } @else {
                div.scroll tabindex="0" role="region" aria-label="Rejected files, scrollable" { table #rejected-files {
                    thead { tr { th scope="col" { "Path" } th scope="col" { "Size" } th scope="col" { "Error" } th scope="col" { "When" } } }
                    tbody { @for f in &rejected { tr { td { code { (f.path) } } td { (layout::bytes(f.size_bytes)) } td { (f.error.as_deref().unwrap_or("")) } td { (layout::age(f.loaded_at, now)) } } } }
                } }
                @if more_rejected.is_some() { p.hint { "More in the API: GET /api/v1/ingestions/" (id) "/files?status=rejected" } }
            }
            h3 { "Loaded" }
            @if loaded.is_empty() { p { "No files loaded yet." } } @else {
                div.scroll tabindex="0" role="region" aria-label="Loaded files, scrollable" { table #loaded-files {
                    thead { tr { th scope="col" { "Path" } th scope="col" { "Size" } th scope="col" { "Rows" } th scope="col" { "Snapshot" } th scope="col" { "When" } } }
                    tbody { @for f in &loaded { tr { td { code { (f.path) } } td { (layout::bytes(f.size_bytes)) } td { (f.rows_loaded) } td { (f.snapshot_id.map(|s| s.to_string()).unwrap_or_default()) } td { (layout::age(f.loaded_at, now)) } } } }
                } }
                @if more_loaded.is_some() { p.hint { "The first " (FILES_SHOWN) " in path order; all in the API: GET /api/v1/ingestions/" (id) "/files" } }
            }
        }
        section #table-facts aria-labelledby="h-table" {
            h2 #h-table { "Table " code { (view.iceberg_table) } }
            @if let Some(f) = &facts {
                dl.definition {
                    dt { "Data files" } dd { (f.data_files) " (" (f.small_files) " small)" }
                    dt { "Size" } dd { (layout::bytes(f.total_bytes)) ", " (f.total_records) " rows" }
                    dt { "Snapshots" } dd { (f.snapshots) @if let Some(s) = f.current_snapshot_id { ", current " (s) } }
                    dt { "Format version" } dd { (f.format_version) }
                    dt { "Location" } dd { code { (f.location) } }
                    dt { "Partitions" } dd { pre { (serde_json::to_string_pretty(&f.partition_spec).unwrap_or_default()) } }
                    dt { "Schema" } dd { pre { (serde_json::to_string_pretty(&f.schema).unwrap_or_default()) } }
                }
            } @else {
                p { "No run has committed to this table yet." }
            }
        }
        section #audit aria-labelledby="h-audit" {
            h2 #h-audit { "Audit trail" }
            @if events.is_empty() { p { "No changes recorded." } } @else {
                div.scroll tabindex="0" role="region" aria-label="Audit trail, scrollable" { table {
                    caption { "Latest " (events.len()) " of " (events_total) " changes, newest first" }
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Detail" } } }
                    tbody { @for e in &events { tr data-event-id=(e.id) {
                        td { time datetime=(e.at.to_rfc3339()) { (e.at.format("%Y-%m-%d %H:%M:%S UTC")) } }
                        td { (e.actor) " (" (e.actor_kind) ")" }
                        td { (e.action) }
                        td { code { (short_json(&e.detail)) } }
                    } } }
                } }
            }
        }
    };
    let mut title = view.name.clone();
    if session.is_admin() {
        title.push_str(" (admin view)");
    }
    Ok(layout::page(&title, Some(session), Nav::Ingestions, main))
}

/// A JSON value on one line, cut at 300 characters.
fn short_json(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 300 {
        let cut: String = s.chars().take(300).collect();
        format!("{cut}…")
    } else {
        s
    }
}
