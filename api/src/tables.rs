//! An ingestion's Iceberg table: its facts (`table_facts`, written with every commit) and the
//! last maintenance run of each kind; and queueing a maintenance run now. Scoped to the caller's
//! tenant like every per-ingestion endpoint: another tenant's ingestion is 404.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use uuid::Uuid;

use autoloader::ingestions::definition::iceberg_table;
use autoloader::ingestions::store::ingestion_get;
use autoloader::runs::maintenance::{maintenance_latest, maintenance_queue, Queued};
use autoloader::runs::RunKind;
use autoloader::tables::table_facts_get;

use crate::auth::{Caller, Tenant};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::model::{LastMaintenance, MaintenanceRequest, RunResponse, TableResponse};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ingestions/{id}/table", get(table))
        .route("/api/v1/ingestions/{id}/maintenance", post(maintain))
}

/// The ingestion's table `<tenant namespace>.<destination_table>`, or 404.
async fn table_of(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<String> {
    let row = ingestion_get(&state.pool, tenant, id)
        .await?
        .ok_or(ApiError::NotFound("ingestion"))?;
    Ok(iceberg_table(&row.tenant_namespace, &row.destination_table))
}

/// The ingestion's Iceberg table as of its last commit: location, current schema (and the ids
/// of every schema it has had), partition spec, snapshots, data files, their size and how many
/// are small, and the last maintenance run of each kind. `created` is false until a run has
/// committed to it.
#[utoipa::path(get, path = "/api/v1/ingestions/{id}/table", tag = "tables", params(("id" = Uuid, Path)),
    responses((status = 200, body = TableResponse), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn table(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<TableResponse>> {
    let name = table_of(&state, tenant, id).await?;
    let facts = table_facts_get(&state.pool, tenant, &name).await?;
    let mut last = LastMaintenance::default();
    for run in maintenance_latest(&state.pool, tenant, &name).await? {
        let slot = match run.kind.parse::<RunKind>() {
            Ok(RunKind::Compact) => &mut last.compact,
            Ok(RunKind::ExpireSnapshots) => &mut last.expire_snapshots,
            Ok(RunKind::RemoveOrphans) => &mut last.remove_orphans,
            _ => continue,
        };
        *slot = Some(RunResponse::from(run));
    }
    Ok(Json(TableResponse::new(id, name, facts, last)))
}

/// Queues a maintenance run of the ingestion's table now: 202 with the run, or 409 naming the
/// maintenance run of the table already QUEUED or RUNNING. Loads of the table go on meanwhile.
#[utoipa::path(post, path = "/api/v1/ingestions/{id}/maintenance", tag = "tables", params(("id" = Uuid, Path)),
    request_body = MaintenanceRequest,
    responses((status = 202, body = RunResponse), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "a maintenance run of the table is already QUEUED or RUNNING; active_run_id names it"),
              (status = 422, body = Problem, description = "a bad `kind`")),
    security(("bearer" = [])))]
pub async fn maintain(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<MaintenanceRequest>,
) -> ApiResult<Response> {
    let kind = match req.kind.parse::<RunKind>() {
        Ok(k) if k.is_maintenance() => k,
        _ => {
            return Err(ApiError::field(
                "kind",
                "kind must be one of: compact, expire_snapshots, remove_orphans",
            ))
        }
    };
    let tenant = caller.tenant;
    let name = table_of(&state, tenant, id).await?;
    match maintenance_queue(&state.pool, tenant, id, &name, kind, &caller.actor()).await? {
        Queued::Queued(run) => {
            tracing::info!(ingestion_id = %id, tenant_id = %tenant, run_id = %run.id, %kind, "maintenance queued");
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, format!("/api/v1/runs/{}", run.id))],
                Json(RunResponse::from(*run)),
            )
                .into_response())
        }
        Queued::Busy(Some((run, busy_kind, status))) => Err(ApiError::Conflict {
            detail: format!(
                "a maintenance run of {name} is already {status} ({busy_kind}, run {run})"
            ),
            field: None,
            active_run_id: Some(run),
        }),
        Queued::Busy(None) => Err(ApiError::Conflict {
            detail: format!("a maintenance run of {name} was active; try again"),
            field: None,
            active_run_id: None,
        }),
    }
}
