//! `/api/v1/ingestions`: create, read, list, update, delete, and the schedule endpoints.
//!
//! Every call is scoped to the caller's tenant: another tenant's ingestion is 404, not 403, so
//! ids do not leak. A write checks the whole resulting definition
//! (`autoloader::ingestions::draft`) before the store touches the database; the schedule's tick
//! row follows the ingestion row by itself.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use autoloader::ingestions::draft::{Draft, IngestionStatus};
use autoloader::ingestions::store::{self, IngestionRow, ListFilter};

use crate::auth::{Caller, Tenant};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::model::{
    DisableRequest, IngestionCreate, IngestionPatch, IngestionResponse, IngestionStatusName,
    ScheduleInfoResponse,
};
use crate::page::{self, Page, PageParams};
use crate::schedule_cache::ScheduleView;
use crate::schedules::{parse_count, upcoming};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ingestions", post(create).get(list))
        .route(
            "/api/v1/ingestions/{id}",
            get(read).put(replace).patch(patch).delete(remove),
        )
        .route("/api/v1/ingestions/{id}/schedule", get(schedule_info))
        .route("/api/v1/ingestions/{id}/schedule/enable", post(enable))
        .route("/api/v1/ingestions/{id}/schedule/disable", post(disable))
}

async fn fetch(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<IngestionRow> {
    store::ingestion_get(&state.pool, tenant, id)
        .await?
        .ok_or(ApiError::NotFound("ingestion"))
}

#[utoipa::path(post, path = "/api/v1/ingestions", tag = "ingestions", request_body = IngestionCreate,
    responses((status = 201, body = IngestionResponse),
              (status = 403, body = Problem, description = "the tenant has max_ingestions ingestions already"),
              (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<IngestionCreate>,
) -> ApiResult<Response> {
    let tenant = caller.tenant;
    let draft = Draft::from(body);
    let bounds = state.bounds_for(tenant, &draft).await?;
    let mut v = draft.validate(&bounds)?;
    state.seal_secrets(tenant, &mut v.options)?;
    let row = store::ingestion_insert(
        &state.pool,
        tenant,
        &v,
        state.quotas.default_max_ingestions,
        &caller.actor(),
    )
    .await?;
    tracing::info!(ingestion_id = %row.id, tenant_id = %tenant, name = %row.name, "ingestion created");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/ingestions/{}", row.id))],
        Json(IngestionResponse::from(row)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/ingestions/{id}", tag = "ingestions", params(("id" = Uuid, Path)),
    responses((status = 200, body = IngestionResponse), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<IngestionResponse>> {
    Ok(Json(fetch(&state, tenant, id).await?.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    page: Option<String>,
    page_size: Option<String>,
    status: Option<String>,
    schedule_enabled: Option<String>,
    name: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/ingestions", tag = "ingestions",
    params(PageParams, ("status" = Option<IngestionStatusName>, Query),
           ("schedule_enabled" = Option<bool>, Query), ("name" = Option<String>, Query, description = "substring, any case", pattern = r"^[^\u0000]*$")),
    responses((status = 200, body = Page<IngestionResponse>), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<IngestionResponse>>> {
    let request = page::parse(q.page.as_deref(), q.page_size.as_deref())?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            IngestionStatus::parse(s)
                .map_err(|m| ApiError::field("status", m))?
                .as_str(),
        ),
    };
    let schedule_enabled = match q.schedule_enabled.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::field(
                "schedule_enabled",
                "schedule_enabled must be true or false",
            ))
        }
    };
    if q.name.as_deref().is_some_and(|n| n.contains('\0')) {
        // PostgreSQL takes no NUL character in text, and no name holds one.
        return Err(ApiError::field(
            "name",
            "name must not contain the NUL character (\\u0000)",
        ));
    }
    let filter = ListFilter {
        status,
        schedule_enabled,
        name: q.name,
    };
    let (rows, total) = store::ingestion_list(&state.pool, tenant, &filter, request).await?;
    Ok(Json(Page::new(rows, total, request)))
}

/// Validates `draft` and writes it over the ingestion; the schedule view forgets it before the
/// answer, so the client's next read sees this write.
async fn overwrite(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    draft: Draft,
) -> ApiResult<IngestionRow> {
    let tenant = caller.tenant;
    let bounds = state.bounds_for(tenant, &draft).await?;
    let mut v = draft.validate(&bounds)?;
    state.seal_secrets(tenant, &mut v.options)?;
    let row = store::ingestion_update(&state.pool, tenant, id, &v, &caller.actor()).await;
    state.schedules.invalidate(id);
    let row = row?;
    tracing::info!(ingestion_id = %id, tenant_id = %tenant, "ingestion updated");
    Ok(row)
}

#[utoipa::path(put, path = "/api/v1/ingestions/{id}", tag = "ingestions", params(("id" = Uuid, Path)),
    request_body = IngestionCreate,
    responses((status = 200, body = IngestionResponse), (status = 404, body = Problem), (status = 409, body = Problem, description = "the new name is taken"), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<IngestionCreate>,
) -> ApiResult<Json<IngestionResponse>> {
    let stored = fetch(&state, caller.tenant, id).await?;
    let mut draft = Draft::from(body);
    draft.keep_masked_secrets(&stored.options);
    Ok(Json(overwrite(&state, &caller, id, draft).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/ingestions/{id}", tag = "ingestions", params(("id" = Uuid, Path)),
    request_body = IngestionPatch,
    responses((status = 200, body = IngestionResponse), (status = 404, body = Problem), (status = 409, body = Problem, description = "the new name is taken"), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(p): ApiJson<IngestionPatch>,
) -> ApiResult<Json<IngestionResponse>> {
    let stored = fetch(&state, caller.tenant, id).await?;
    let mut draft = Draft::from_row(&stored);
    p.apply(&mut draft);
    draft.keep_masked_secrets(&stored.options);
    Ok(Json(overwrite(&state, &caller, id, draft).await?.into()))
}

/// Deletes the ingestion, its schedule and its run history (they have no meaning without it).
/// Its audit events stay (`/api/v1/ingestions/{id}/events`).
#[utoipa::path(delete, path = "/api/v1/ingestions/{id}", tag = "ingestions", params(("id" = Uuid, Path)),
    responses((status = 204, description = "deleted with its schedule and run history"), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let tenant = caller.tenant;
    let deleted = store::ingestion_delete(&state.pool, tenant, id, &caller.actor()).await?;
    state.schedules.invalidate(id);
    if !deleted {
        return Err(ApiError::NotFound("ingestion"));
    }
    tracing::info!(ingestion_id = %id, tenant_id = %tenant, "ingestion deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountQuery {
    count: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/ingestions/{id}/schedule", tag = "schedules",
    params(("id" = Uuid, Path), ("count" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 5")),
    responses((status = 200, body = ScheduleInfoResponse), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn schedule_info(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<CountQuery>,
) -> ApiResult<Json<ScheduleInfoResponse>> {
    let count = parse_count(q.count.as_deref())?;
    let now = Utc::now();
    let view = match state.schedules.get(id, now) {
        Some(v) => v,
        None => {
            let epoch = state.schedules.epoch();
            let row = store::ingestion_schedule(&state.pool, id)
                .await?
                .ok_or(ApiError::NotFound("ingestion"))?;
            let view = Arc::new(ScheduleView {
                tenant_id: row.tenant_id,
                enabled: row.schedule_enabled,
                schedule: row.schedule(),
                frequency: row.schedule_frequency,
                timezone: row.schedule_timezone,
                next_run_time: row.next_run_time,
            });
            state.schedules.put(id, view.clone(), epoch);
            view
        }
    };
    // Another tenant's ingestion is as absent as one that does not exist.
    if view.tenant_id != tenant {
        return Err(ApiError::NotFound("ingestion"));
    }
    let (upcoming_runs, upcoming_runs_local) = match &view.schedule {
        Some(s) => upcoming(s, now, count),
        None => (Vec::new(), Vec::new()),
    };
    Ok(Json(ScheduleInfoResponse {
        enabled: view.enabled,
        frequency: view.frequency.clone(),
        cron_expression: view
            .schedule
            .as_ref()
            .map(|s| s.cron_expression().to_owned()),
        timezone: view.timezone.clone(),
        next_run_time: view.next_run_time,
        upcoming_runs,
        upcoming_runs_local,
    }))
}

/// Enabling checks the whole definition (an enabled schedule must be complete: 422 naming the
/// missing field); disabling checks nothing, so any schedule can be stopped.
/// Longest pause reason.
pub const MAX_PAUSE_REASON_CHARS: usize = 1000;

async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    enabled: bool,
    reason: Option<&str>,
) -> ApiResult<IngestionRow> {
    let tenant = caller.tenant;
    if !enabled {
        let row =
            store::ingestion_schedule_disable(&state.pool, tenant, id, reason, &caller.actor())
                .await;
        state.schedules.invalidate(id);
        let row = row?.ok_or(ApiError::NotFound("ingestion"))?;
        tracing::info!(ingestion_id = %id, tenant_id = %tenant, by = %caller.token, "schedule disabled");
        return Ok(row);
    }
    let mut draft = Draft::from_row(&fetch(state, tenant, id).await?);
    draft.schedule_enabled = Some(true);
    overwrite(state, caller, id, draft).await
}

/// The optional body of a disable: no body (or `null`, or `{}`) gives no reason.
fn pause_reason(body: &[u8]) -> ApiResult<Option<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let body = crate::extract::parse_json::<Option<DisableRequest>>(body)?.unwrap_or_default();
    match body.reason {
        Some(r) if r.contains('\0') => Err(ApiError::field(
            "reason",
            "reason must not contain the NUL character (\\u0000)",
        )),
        Some(r) if r.chars().count() > MAX_PAUSE_REASON_CHARS => Err(ApiError::field(
            "reason",
            format!("reason must be at most {MAX_PAUSE_REASON_CHARS} characters"),
        )),
        Some(r) if r.trim().is_empty() => Ok(None),
        r => Ok(r),
    }
}

#[utoipa::path(post, path = "/api/v1/ingestions/{id}/schedule/enable", tag = "schedules", params(("id" = Uuid, Path)),
    responses((status = 200, body = IngestionResponse), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<IngestionResponse>> {
    Ok(Json(
        set_enabled(&state, &caller, id, true, None).await?.into(),
    ))
}

/// Pauses the schedule, optionally saying why: the ingestion shows `paused_reason`, `paused_at`
/// and `paused_by` (the token's name) until it is enabled again. Disabling a paused schedule
/// keeps the first pause.
#[utoipa::path(post, path = "/api/v1/ingestions/{id}/schedule/disable", tag = "schedules", params(("id" = Uuid, Path)),
    request_body(content = Option<DisableRequest>),
    responses((status = 200, body = IngestionResponse), (status = 404, body = Problem),
              (status = 422, body = Problem, description = "a bad `reason`")),
    security(("bearer" = [])))]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    body: axum::body::Bytes,
) -> ApiResult<Json<IngestionResponse>> {
    let reason = pause_reason(&body)?;
    Ok(Json(
        set_enabled(&state, &caller, id, false, reason.as_deref())
            .await?
            .into(),
    ))
}
