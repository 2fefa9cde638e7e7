//! Runs: trigger by hand, list an ingestion's history, read one, cancel a queued one.
//!
//! A manual trigger is an insert that the partial unique index `runs_one_active_per_ingestion`
//! may refuse: the 409 that follows is Postgres's decision, reported with the run in the way.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use autoloader::run::RunStatus;

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::ingestions::paging;
use crate::model::{Page, RunResponse, RunRow, RUN_COLUMNS};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ingestions/{id}/run", post(trigger))
        .route("/api/v1/ingestions/{id}/runs", get(history))
        .route("/api/v1/runs/{run_id}", get(read))
        .route("/api/v1/runs/{run_id}/cancel", post(cancel))
}

async fn ingestion_exists(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<()> {
    let found: Option<i32> =
        sqlx::query_scalar("select 1 from ingestions where id = $1 and tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .fetch_optional(&state.pool)
            .await?;
    found.map(|_| ()).ok_or(ApiError::NotFound("ingestion"))
}

async fn fetch_run(state: &AppState, tenant: Uuid, run_id: Uuid) -> ApiResult<RunRow> {
    sqlx::query_as::<_, RunRow>(&format!(
        "select {RUN_COLUMNS} from runs where id = $1 and tenant_id = $2"
    ))
    .bind(run_id)
    .bind(tenant)
    .fetch_optional(&state.pool)
    .await?
    .ok_or(ApiError::NotFound("run"))
}

/// Queues a manual run: 202 with the run, or 409 naming the run already QUEUED or RUNNING.
#[utoipa::path(post, path = "/api/v1/ingestions/{id}/run", tag = "runs", params(("id" = Uuid, Path)),
    responses((status = 202, body = RunResponse), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "a run is already QUEUED or RUNNING; active_run_id names it")),
    security(("bearer" = [])))]
pub async fn trigger(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    ingestion_exists(&state, tenant, id).await?;
    let run_id = Uuid::now_v7();
    let inserted = sqlx::query_as::<_, RunRow>(&format!(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by) values ($1, $2, $3, 'manual')
         on conflict do nothing
         returning {RUN_COLUMNS}"
    ))
    .bind(run_id)
    .bind(id)
    .bind(tenant)
    .fetch_optional(&state.pool)
    .await?;
    match inserted {
        Some(run) => {
            tracing::info!(ingestion_id = %id, tenant_id = %tenant, run_id = %run_id, "manual run queued");
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, format!("/api/v1/runs/{run_id}"))],
                Json(RunResponse::from(run)),
            )
                .into_response())
        }
        None => {
            let active: Option<(Uuid, String)> = sqlx::query_as(
                "select id, status from runs where ingestion_id = $1 and status in ('QUEUED', 'RUNNING')",
            )
            .bind(id)
            .fetch_optional(&state.pool)
            .await?;
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
    params(("id" = Uuid, Path), ("status" = Option<String>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, body = Page<RunResponse>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page<RunResponse>>> {
    let (page, page_size) = paging(q.page.as_deref(), q.page_size.as_deref())?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<RunStatus>()
                .map_err(|e| ApiError::field("status", e.to_string()))?,
        ),
    };
    ingestion_exists(&state, tenant, id).await?;
    let status = status.map(|s| s.as_str());
    let total: i64 = sqlx::query_scalar(
        "select count(*) from runs where ingestion_id = $1 and tenant_id = $2 and ($3::text is null or status = $3)",
    )
    .bind(id)
    .bind(tenant)
    .bind(status)
    .fetch_one(&state.pool)
    .await?;
    // Newest first by the instant a run stands for: its tick, or when it was triggered by hand.
    // Each part reads an index in that order and stops after the rows this page can need:
    // scheduled runs through `runs_one_per_tick` backwards, finished manual runs through
    // `runs_manual_history`, and the ingestion's one active run, if manual, through
    // `runs_one_active_per_ingestion`.
    let offset = (page - 1).saturating_mul(page_size);
    let rows = sqlx::query_as::<_, RunRow>(&format!(
        "select {RUN_COLUMNS} from (
             (select * from runs
              where ingestion_id = $1 and tenant_id = $2 and ($3::text is null or status = $3)
                and scheduled_for is not null
              order by scheduled_for desc limit $6)
             union all
             (select * from runs
              where ingestion_id = $1 and tenant_id = $2 and ($3::text is null or status = $3)
                and scheduled_for is null and status not in ('QUEUED', 'RUNNING')
              order by queued_at desc, id desc limit $6)
             union all
             (select * from runs
              where ingestion_id = $1 and tenant_id = $2 and ($3::text is null or status = $3)
                and scheduled_for is null and status in ('QUEUED', 'RUNNING'))
         ) runs
         order by coalesce(scheduled_for, queued_at) desc, id desc limit $4 offset $5"
    ))
    .bind(id)
    .bind(tenant)
    .bind(status)
    .bind(page_size)
    .bind(offset)
    .bind(offset.saturating_add(page_size))
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Page {
        items: rows.into_iter().map(Into::into).collect(),
        total,
        page,
        page_size,
    }))
}

#[utoipa::path(get, path = "/api/v1/runs/{run_id}", tag = "runs", params(("run_id" = Uuid, Path)),
    responses((status = 200, body = RunResponse), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(run_id): ApiPath<Uuid>,
) -> ApiResult<Json<RunResponse>> {
    Ok(Json(fetch_run(&state, tenant, run_id).await?.into()))
}

/// Cancels a QUEUED run. A RUNNING run is not interrupted (409): let it finish, or stop its worker.
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/cancel", tag = "runs", params(("run_id" = Uuid, Path)),
    responses((status = 200, body = RunResponse), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(run_id): ApiPath<Uuid>,
) -> ApiResult<Json<RunResponse>> {
    let cancelled = sqlx::query_as::<_, RunRow>(&format!(
        "update runs set status = 'CANCELLED', finished_at = now(), reason = 'cancelled through the API'
         where id = $1 and tenant_id = $2 and status = 'QUEUED'
         returning {RUN_COLUMNS}"
    ))
    .bind(run_id)
    .bind(tenant)
    .fetch_optional(&state.pool)
    .await?;
    match cancelled {
        Some(run) => {
            tracing::info!(run_id = %run_id, tenant_id = %tenant, "run cancelled");
            Ok(Json(run.into()))
        }
        None => {
            let run = fetch_run(&state, tenant, run_id).await?;
            Err(ApiError::Conflict {
                detail: format!(
                    "only a QUEUED run can be cancelled; this one is {}",
                    run.status
                ),
                field: None,
                active_run_id: None,
            })
        }
    }
}
