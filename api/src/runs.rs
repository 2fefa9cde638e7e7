//! Runs: trigger by hand, list an ingestion's history, read one, cancel a queued one.
//!
//! A manual trigger is an insert that the partial unique index `runs_one_active_per_ingestion`
//! may refuse: the 409 that follows is PostgreSQL's decision, reported with the run in the way.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use autoloader::ingestions::store::ingestion_exists;
use autoloader::runs::history::{self, Cancelled, Triggered};
use autoloader::runs::RunStatus;

use crate::auth::{Caller, Tenant};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::model::{RunResponse, RunStatusName};
use crate::page::{self, Page, PageParams};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ingestions/{id}/run", post(trigger))
        .route("/api/v1/ingestions/{id}/runs", get(history))
        .route("/api/v1/runs/{run_id}", get(read))
        .route("/api/v1/runs/{run_id}/cancel", post(cancel))
}

async fn ingestion_found(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<()> {
    if ingestion_exists(&state.pool, tenant, id).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound("ingestion"))
    }
}

/// Queues a manual run: 202 with the run, or 409 naming the run already QUEUED or RUNNING.
#[utoipa::path(post, path = "/api/v1/ingestions/{id}/run", tag = "runs", params(("id" = Uuid, Path)),
    responses((status = 202, body = RunResponse), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "a run is already QUEUED or RUNNING; active_run_id names it"),
              (status = 429, body = Problem, description = "the tenant's manual triggers this minute reached max_manual_runs_per_minute; Retry-After says when to try again")),
    security(("bearer" = [])))]
pub async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let tenant = caller.tenant;
    ingestion_found(&state, tenant, id).await?;
    let default_limit = state.quotas.default_max_manual_runs_per_minute;
    let actor = caller.actor();
    match history::run_insert_manual(&state.pool, tenant, id, default_limit, &actor).await? {
        Triggered::RateLimited {
            limit,
            retry_after_secs,
        } => Err(ApiError::Quota {
            detail: format!(
                "this tenant made {limit} manual triggers in the last minute, its limit \
                 (max_manual_runs_per_minute); try again in {retry_after_secs} s"
            ),
            field: None,
            retry_after_secs: Some(retry_after_secs),
        }),
        Triggered::Queued(run) => {
            tracing::info!(ingestion_id = %id, tenant_id = %tenant, run_id = %run.id, "manual run queued");
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, format!("/api/v1/runs/{}", run.id))],
                Json(RunResponse::from(*run)),
            )
                .into_response())
        }
        Triggered::Refused(active) => {
            let detail = match &active {
                Some((run, status)) => {
                    format!("a run of this ingestion is already {status} (run {run})")
                }
                None => "a run of this ingestion was already active; try again".to_owned(),
            };
            Err(ApiError::Conflict {
                detail,
                field: None,
                active_run_id: active.map(|a| a.0),
            })
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    status: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
}

/// Runs of one ingestion, newest first.
#[utoipa::path(get, path = "/api/v1/ingestions/{id}/runs", tag = "runs",
    params(("id" = Uuid, Path), ("status" = Option<RunStatusName>, Query), PageParams),
    responses((status = 200, body = Page<RunResponse>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page<RunResponse>>> {
    let request = page::parse(q.page.as_deref(), q.page_size.as_deref())?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<RunStatus>()
                .map_err(|e| ApiError::field("status", e.to_string()))?,
        ),
    };
    ingestion_found(&state, tenant, id).await?;
    let (rows, total) = history::run_history(&state.pool, tenant, id, status, request).await?;
    Ok(Json(Page::new(rows, total, request)))
}

#[utoipa::path(get, path = "/api/v1/runs/{run_id}", tag = "runs", params(("run_id" = Uuid, Path)),
    responses((status = 200, body = RunResponse), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(run_id): ApiPath<Uuid>,
) -> ApiResult<Json<RunResponse>> {
    let run = history::run_get(&state.pool, tenant, run_id)
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    Ok(Json(run.into()))
}

/// Cancels a QUEUED run. A RUNNING run is not interrupted (409): let it finish, or stop its worker.
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/cancel", tag = "runs", params(("run_id" = Uuid, Path)),
    responses((status = 200, body = RunResponse), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(run_id): ApiPath<Uuid>,
) -> ApiResult<Json<RunResponse>> {
    let tenant = caller.tenant;
    match history::run_cancel(&state.pool, tenant, run_id, &caller.actor()).await? {
        Cancelled::Cancelled(run) => {
            tracing::info!(run_id = %run_id, tenant_id = %tenant, "run cancelled");
            Ok(Json((*run).into()))
        }
        Cancelled::NotQueued(status) => Err(ApiError::Conflict {
            detail: format!("only a QUEUED run can be cancelled; this one is {status}"),
            field: None,
            active_run_id: None,
        }),
        Cancelled::NotFound => Err(ApiError::NotFound("run")),
    }
}
