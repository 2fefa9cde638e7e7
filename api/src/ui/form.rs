//! Creating and editing an ingestion (`/ui/ingestions/new`, `/ui/ingestions/{id}/edit`), and
//! the live schedule preview the form asks for while typing (`GET /ui/schedule-preview`).
//!
//! The form's fields are the API's, named as in its JSON; a save goes through the API's own
//! create and replace handlers, so the checks and the messages are the API's, shown beside the
//! field they name.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::Form;
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{self, Nav};
use super::session::UiSession;
use super::Refusal;
use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiPath};
use crate::model::{IngestionCreate, IngestionResponse, SchedulePreviewRequest};
use crate::AppState;

/// The form's fields, as the browser sends them.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct IngestionForm {
    csrf: Option<String>,
    name: Option<String>,
    description: Option<String>,
    source_type: Option<String>,
    source_path: Option<String>,
    format_type: Option<String>,
    destination_table: Option<String>,
    schedule_frequency: Option<String>,
    schedule_time: Option<String>,
    schedule_cron: Option<String>,
    schedule_timezone: Option<String>,
    schedule_enabled: Option<String>,
    catchup: Option<String>,
    max_catchup_runs: Option<String>,
    options: Option<String>,
}

impl IngestionForm {
    fn from_view(v: &IngestionResponse) -> IngestionForm {
        IngestionForm {
            csrf: None,
            name: Some(v.name.clone()),
            description: v.description.clone(),
            source_type: Some(v.source_type.clone()),
            source_path: Some(v.source_path.clone()),
            format_type: Some(v.format_type.clone()),
            destination_table: Some(v.destination_table.clone()),
            schedule_frequency: v.schedule_frequency.clone(),
            schedule_time: v.schedule_time.clone(),
            schedule_cron: v.schedule_cron.clone(),
            schedule_timezone: Some(v.schedule_timezone.clone()),
            schedule_enabled: v.schedule_enabled.then(|| "on".to_owned()),
            catchup: Some(v.catchup.clone()),
            max_catchup_runs: Some(v.max_catchup_runs.to_string()),
            options: Some(serde_json::to_string_pretty(&v.options).unwrap_or_default()),
        }
    }

    /// The API's request body, or the fields the form itself could not read.
    fn to_create(&self) -> Result<IngestionCreate, Refusal> {
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let mut errors = Vec::new();
        let options = match text(&self.options) {
            None => None,
            Some(o) => match serde_json::from_str::<serde_json::Value>(&o) {
                Ok(v @ serde_json::Value::Object(_)) => Some(v),
                Ok(_) => {
                    errors.push((
                        "options".to_owned(),
                        "options must be a JSON object, such as {\"delimiter\": \";\"}".to_owned(),
                    ));
                    None
                }
                Err(e) => {
                    errors.push((
                        "options".to_owned(),
                        format!("options is not valid JSON: {e}"),
                    ));
                    None
                }
            },
        };
        let max_catchup_runs = match text(&self.max_catchup_runs) {
            None => None,
            Some(n) => match n.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.push((
                        "max_catchup_runs".to_owned(),
                        "max_catchup_runs must be a whole number from 1 to 1000".to_owned(),
                    ));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(Refusal {
                status: 422,
                title: "Invalid request".to_owned(),
                detail: errors
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                errors,
            });
        }
        Ok(IngestionCreate {
            name: text(&self.name),
            description: text(&self.description),
            source_type: text(&self.source_type),
            source_path: text(&self.source_path),
            format_type: text(&self.format_type),
            destination_table: text(&self.destination_table),
            options,
            schedule_frequency: text(&self.schedule_frequency),
            schedule_time: text(&self.schedule_time),
            schedule_timezone: text(&self.schedule_timezone),
            schedule_cron: text(&self.schedule_cron),
            schedule_enabled: Some(
                self.schedule_enabled.is_some() && text(&self.schedule_frequency).is_some(),
            ),
            status: None,
            catchup: text(&self.catchup),
            max_catchup_runs,
        })
    }
}

const FIELDS: [&str; 13] = [
    "name",
    "description",
    "source_type",
    "source_path",
    "format_type",
    "destination_table",
    "schedule_frequency",
    "schedule_time",
    "schedule_cron",
    "schedule_timezone",
    "catchup",
    "max_catchup_runs",
    "options",
];

fn form_page(
    session: &UiSession,
    title: &str,
    action: &str,
    values: &IngestionForm,
    refusal: Option<&Refusal>,
) -> Markup {
    let err = |f: &str| refusal.and_then(|r| r.for_field(f)).map(str::to_owned);
    // Problems the fields do not show (no field, or one the form has not) go on top.
    let general: Vec<String> = refusal
        .map(|r| {
            let mut g: Vec<String> = r
                .errors
                .iter()
                .filter(|(f, _)| {
                    !FIELDS
                        .iter()
                        .any(|k| f == k || f.starts_with(&format!("{k}.")))
                })
                .map(|(f, m)| {
                    if f.is_empty() {
                        m.clone()
                    } else {
                        format!("{f}: {m}")
                    }
                })
                .collect();
            if r.errors.is_empty() {
                g.push(format!("{}: {}", r.title, r.detail));
            }
            g
        })
        .unwrap_or_default();
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let text_field = |id: &'static str,
                      label: &'static str,
                      value: String,
                      hint: &'static str,
                      required: bool| {
        let e = err(id);
        html! {
            div.field {
                label for=(id) { (label) }
                input type="text" id=(id) name=(id) value=(value) required[required]
                    aria-invalid=[e.as_ref().map(|_| "true")]
                    aria-describedby={(id) "-hint " (id) "-error"};
                p.hint id={(id) "-hint"} { (hint) }
                p id={(id) "-error"} data-error-for=(id) { @if let Some(e) = &e { (e) } }
            }
        }
    };
    let select_field = |id: &'static str,
                        label: &'static str,
                        value: String,
                        options: &[(&str, &str)]| {
        let e = err(id);
        html! {
            div.field {
                label for=(id) { (label) }
                select id=(id) name=(id) aria-invalid=[e.as_ref().map(|_| "true")] aria-describedby={(id) "-error"} {
                    @for (val, text) in options {
                        option value=(val) selected[*val == value] { (text) }
                    }
                }
                p id={(id) "-error"} data-error-for=(id) { @if let Some(e) = &e { (e) } }
            }
        }
    };
    let options_error = err("options");
    let main = html! {
        form #ingestion-form method="post" action=(action) novalidate {
            input type="hidden" name="csrf" value=(session.csrf);
            div #form-error role="alert" {
                @if !general.is_empty() {
                    @if general.len() == 1 { (general[0]) } @else { ul { @for g in &general { li { (g) } } } }
                } @else if refusal.is_some() {
                    "The ingestion was not saved: see the fields marked below."
                }
            }
            (text_field("name", "Name", v(&values.name), "Unique among your ingestions.", true))
            (text_field("description", "Description", v(&values.description), "Optional.", false))
            (select_field("source_type", "Source type", v(&values.source_type), &[("s3", "S3"), ("local", "Local directory")]))
            (text_field("source_path", "Source path", v(&values.source_path), "s3://bucket/prefix/ or file:///dir/", true))
            (select_field("format_type", "Format", v(&values.format_type), &[("json", "JSON"), ("csv", "CSV"), ("parquet", "Parquet"), ("avro", "Avro")]))
            (text_field("destination_table", "Destination table", v(&values.destination_table), "namespace.table, inside your namespace.", true))
            fieldset {
                legend { "Schedule" }
                (select_field("schedule_frequency", "Frequency", v(&values.schedule_frequency), &[("", "None (manual runs only)"), ("hourly", "Hourly"), ("daily", "Daily"), ("weekly", "Weekly"), ("custom", "Custom (cron)")]))
                (text_field("schedule_time", "Time (HH:MM)", v(&values.schedule_time), "For daily and weekly schedules.", false))
                (text_field("schedule_cron", "Cron expression", v(&values.schedule_cron), "For custom schedules, e.g. */15 * * * *.", false))
                (text_field("schedule_timezone", "Time zone", values.schedule_timezone.clone().unwrap_or_else(|| "UTC".to_owned()), "IANA name, e.g. Europe/London.", false))
                div.field {
                    input #schedule_enabled type="checkbox" name="schedule_enabled" checked[values.schedule_enabled.is_some()];
                    " "
                    label for="schedule_enabled" .inline { "Schedule enabled" }
                }
                (select_field("catchup", "Catch-up of missed ticks", v(&values.catchup), &[("", "The operator's default"), ("skip", "Skip"), ("once", "Run once"), ("all", "Run all")]))
                (text_field("max_catchup_runs", "Most catch-up runs", v(&values.max_catchup_runs), "1 to 1000, under catch-up all.", false))
                div #schedule-preview aria-live="polite" {
                    h2 { "Next runs" }
                    p.hint { "Fill in the schedule to see its next runs." }
                    ul {}
                }
            }
            div.field {
                label for="options" { "Options (JSON)" }
                textarea #options name="options" rows="6"
                    aria-invalid=[options_error.as_ref().map(|_| "true")]
                    aria-describedby="options-hint options-error" { (v(&values.options)) }
                p.hint #options-hint { "Source and format options as a JSON object; secrets stay masked." }
                p #options-error data-error-for="options" { @if let Some(e) = &options_error { (e) } }
            }
            button #save type="submit" { "Save" }
        }
    };
    layout::page(title, Some(session), Nav::Ingestions, main)
}

fn admin_refusal(session: &UiSession) -> Option<Response> {
    session.is_admin().then(|| {
        layout::error_page(
            Some(session),
            StatusCode::FORBIDDEN,
            "the admin's dashboard changes no ingestion: sign in with the tenant's token",
        )
    })
}

pub async fn new_page(session: UiSession) -> Response {
    if let Some(r) = admin_refusal(&session) {
        return r;
    }
    let blank = IngestionForm {
        schedule_timezone: Some("UTC".to_owned()),
        source_type: Some("s3".to_owned()),
        format_type: Some("json".to_owned()),
        ..Default::default()
    };
    layout::respond(
        StatusCode::OK,
        form_page(&session, "New ingestion", "/ui/ingestions", &blank, None),
    )
}

pub async fn edit_page(
    State(state): State<AppState>,
    session: UiSession,
    ApiPath(id): ApiPath<Uuid>,
) -> Response {
    if let Some(r) = admin_refusal(&session) {
        return r;
    }
    match super::detail::ingestion_for(&state, &session, id).await {
        Ok(row) => {
            let view = IngestionResponse::from(row);
            let title = format!("Edit {}", view.name);
            layout::respond(
                StatusCode::OK,
                form_page(
                    &session,
                    &title,
                    &format!("/ui/ingestions/{id}"),
                    &IngestionForm::from_view(&view),
                    None,
                ),
            )
        }
        Err(e) => {
            let r = Refusal::of(e).await;
            layout::error_page(Some(&session), r.status_code(), &r.detail)
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    session: UiSession,
    headers: HeaderMap,
    Form(form): Form<IngestionForm>,
) -> Response {
    if let Some(refused) = session.csrf_refusal(&headers, form.csrf.as_deref()) {
        return refused;
    }
    let caller = match session.caller() {
        Ok(c) => c,
        Err(_) => {
            return admin_refusal(&session).unwrap_or_else(|| StatusCode::FORBIDDEN.into_response())
        }
    };
    let refusal = match form.to_create() {
        Err(r) => r,
        Ok(body) => {
            match crate::ingestions::create(State(state.clone()), caller, ApiJson(body)).await {
                Ok(res) => {
                    // The API answers 201 with the new ingestion's URL.
                    let id = res
                        .headers()
                        .get(header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .and_then(|l| l.rsplit('/').next())
                        .and_then(|id| id.parse::<Uuid>().ok());
                    return match id {
                        Some(id) => Redirect::to(&format!("/ui/ingestions/{id}")).into_response(),
                        None => Redirect::to("/ui/ingestions").into_response(),
                    };
                }
                Err(e) => Refusal::of(e).await,
            }
        }
    };
    layout::respond(
        refusal.status_code(),
        form_page(
            &session,
            "New ingestion",
            "/ui/ingestions",
            &form,
            Some(&refusal),
        ),
    )
}

pub async fn update(
    State(state): State<AppState>,
    session: UiSession,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    Form(form): Form<IngestionForm>,
) -> Response {
    if let Some(refused) = session.csrf_refusal(&headers, form.csrf.as_deref()) {
        return refused;
    }
    let caller = match session.caller() {
        Ok(c) => c,
        Err(_) => {
            return admin_refusal(&session).unwrap_or_else(|| StatusCode::FORBIDDEN.into_response())
        }
    };
    let refusal = match form.to_create() {
        Err(r) => r,
        Ok(body) => {
            match crate::ingestions::replace(
                State(state.clone()),
                caller,
                ApiPath(id),
                ApiJson(body),
            )
            .await
            {
                Ok(_) => return Redirect::to(&format!("/ui/ingestions/{id}")).into_response(),
                Err(e) => Refusal::of(e).await,
            }
        }
    };
    if refusal.status == 404 {
        return layout::error_page(Some(&session), StatusCode::NOT_FOUND, &refusal.detail);
    }
    let title = format!("Edit {}", form.name.as_deref().unwrap_or("ingestion"));
    layout::respond(
        refusal.status_code(),
        form_page(
            &session,
            &title,
            &format!("/ui/ingestions/{id}"),
            &form,
            Some(&refusal),
        ),
    )
}

#[derive(Debug, Deserialize)]
pub struct PreviewParams {
    schedule_frequency: Option<String>,
    schedule_time: Option<String>,
    schedule_cron: Option<String>,
    schedule_timezone: Option<String>,
}

/// `GET /ui/schedule-preview`: the next five runs of the schedule typed so far, through the
/// API's preview (`POST /api/v1/schedules/preview`), as `{runs: [{text, dst}], message}`.
pub async fn preview(session: UiSession, Query(p): Query<PreviewParams>) -> Response {
    let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let Some(frequency) = nonempty(p.schedule_frequency) else {
        return Json(
            serde_json::json!({"runs": [], "message": "No schedule: runs start only by hand."}),
        )
        .into_response();
    };
    let zone = nonempty(p.schedule_timezone).unwrap_or_else(|| "UTC".to_owned());
    let req = SchedulePreviewRequest {
        schedule_frequency: Some(frequency),
        schedule_time: nonempty(p.schedule_time),
        schedule_timezone: Some(zone.clone()),
        schedule_cron: nonempty(p.schedule_cron),
        from: None,
        count: Some(5),
    };
    let tenant = Tenant(session.tenant().unwrap_or_default());
    match crate::schedules::preview(tenant, ApiJson(req)).await {
        Ok(Json(res)) => {
            let now = Utc::now();
            let runs: Vec<serde_json::Value> = res
                .upcoming_runs_local
                .iter()
                .map(|r| {
                    let dst = if r.shifted_by_dst_gap {
                        Some("moved by the DST gap")
                    } else if r.repeated_in_dst_overlap {
                        Some("repeated hour (DST)")
                    } else if layout::crosses_dst(now, r.at, &res.timezone) {
                        Some("after a DST change")
                    } else {
                        None
                    };
                    serde_json::json!({"text": layout::local_and_utc(r.at, &res.timezone), "dst": dst})
                })
                .collect();
            Json(serde_json::json!({"runs": runs, "message": format!("Next runs ({}):", res.timezone)}))
                .into_response()
        }
        Err(e) => {
            let r = Refusal::of(e).await;
            (
                StatusCode::OK,
                Json(serde_json::json!({"runs": [], "message": r.detail})),
            )
                .into_response()
        }
    }
}
