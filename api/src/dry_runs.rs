//! `POST /api/v1/ingestions/{id}/dry-run` and `POST /api/v1/ingestions/dry-run`: what the next
//! run would load, without loading it.
//!
//! The API links no loader, and tenants' sources are read by workers only: a dry run is a row of
//! `dry_runs` that a worker claims and answers (`autoloader_worker::dry_runs`). This module
//! inserts the request (an unsaved definition is first validated exactly as a create is, and
//! its secrets sealed as a stored ingestion's are), then reads the row until it is answered, at
//! most [`WAIT`] plus [`GRACE`]. No worker in time: `504`, naming that no worker answered (the
//! request is marked failed, so none takes it later). The CLI (`autoloader-api dry-run`) calls
//! [`request`] too.

use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use autoloader::dry_runs::{self, DryRunDefinition};
use autoloader::ingestions::draft::Draft;
use autoloader::ingestions::store;

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::model::IngestionCreate;
use crate::AppState;

/// The time a worker has to answer (the request's deadline, from its insert).
pub const WAIT: Duration = Duration::from_secs(25);
/// Time past the deadline the answer is still waited for (a worker writing it).
pub const GRACE: Duration = Duration::from_secs(3);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ingestions/dry-run", post(dry_run_unsaved))
        .route("/api/v1/ingestions/{id}/dry-run", post(dry_run_saved))
}

/// What to try: a saved ingestion, or a definition as a create sends it.
pub enum Target {
    Saved(Uuid),
    Unsaved(Box<IngestionCreate>),
}

/// Asks a worker for a dry run of `target` for `tenant` and waits for its answer.
pub async fn request(state: &AppState, tenant: Uuid, target: Target) -> ApiResult<Value> {
    let (ingestion_id, definition) = match target {
        Target::Saved(id) => {
            let row = store::ingestion_get(&state.pool, tenant, id)
                .await?
                .ok_or(ApiError::NotFound("ingestion"))?;
            // Stored secrets are sealed already; one stored in the clear (before keys were
            // set) is sealed for the copy, when this server has keys.
            let mut options = row.options;
            let _ =
                autoloader::secrets::seal_options(state.secrets.as_deref(), tenant, &mut options);
            let d = DryRunDefinition {
                source_type: row.source_type,
                source_path: row.source_path,
                format_type: row.format_type,
                destination_table: row.destination_table,
                options,
            };
            (Some(id), d)
        }
        Target::Unsaved(body) => {
            let draft = Draft::from(*body);
            let bounds = state.bounds_for(tenant, &draft).await?;
            let mut v = draft.validate(&bounds)?;
            state.seal_secrets(tenant, &mut v.options)?;
            let d = DryRunDefinition {
                source_type: v.source_type.as_str().to_owned(),
                source_path: v.source_path.as_str().to_owned(),
                format_type: v.format_type.as_str().to_owned(),
                destination_table: v.destination_table.to_string(),
                options: v.options,
            };
            (None, d)
        }
    };
    let asked =
        dry_runs::dry_run_insert(&state.pool, tenant, ingestion_id, &definition, WAIT).await?;
    let give_up = tokio::time::Instant::now() + WAIT + GRACE;
    let mut pause = Duration::from_millis(50);
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
        let now = tokio::time::Instant::now();
        let state_now = if now >= give_up {
            dry_runs::dry_run_abandon(&state.pool, tenant, asked.id).await?
        } else {
            dry_runs::dry_run_get(&state.pool, tenant, asked.id).await?
        };
        let Some(row) = state_now else {
            return Err(ApiError::internal(anyhow::anyhow!(
                "the dry run row disappeared"
            )));
        };
        if let (true, Some(mut result)) = (row.is_over(), row.result.clone()) {
            if let Value::Object(map) = &mut result {
                map.insert("status".into(), Value::from(row.status.clone()));
            }
            return Ok(result);
        }
        if now >= give_up {
            let claimed = row.status == "running";
            tracing::warn!(dry_run_id = %asked.id, claimed, "no worker answered a dry run in time");
            return Err(ApiError::Timeout(if claimed {
                format!(
                    "dry run {}: the worker that took it did not answer within {} s",
                    asked.id,
                    (WAIT + GRACE).as_secs()
                )
            } else {
                format!(
                    "dry run {}: no worker answered within {} s (is an autoloader-worker \
                     running for this database?)",
                    asked.id,
                    (WAIT + GRACE).as_secs()
                )
            }));
        }
    }
}

#[utoipa::path(post, path = "/api/v1/ingestions/{id}/dry-run", tag = "ingestions", params(("id" = Uuid, Path)),
    responses((status = 200, body = DryRunResponse, description = "what the next run would load; `complete: false` names the stage the deadline stopped"),
              (status = 404, body = Problem),
              (status = 504, body = Problem, description = "no worker answered in time")),
    security(("bearer" = [])))]
pub async fn dry_run_saved(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Value>> {
    Ok(Json(request(&state, tenant, Target::Saved(id)).await?))
}

#[utoipa::path(post, path = "/api/v1/ingestions/dry-run", tag = "ingestions", request_body = IngestionCreate,
    responses((status = 200, body = DryRunResponse, description = "what a first run of this definition would load"),
              (status = 422, body = Problem, description = "the definition is invalid, as a create would say"),
              (status = 504, body = Problem, description = "no worker answered in time")),
    security(("bearer" = [])))]
pub async fn dry_run_unsaved(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiJson(body): ApiJson<IngestionCreate>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        request(&state, tenant, Target::Unsaved(Box::new(body))).await?,
    ))
}

/// A file a dry run lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunFile {
    /// The file's full URL (`s3://bucket/key`, `file:///dir/name`): its name in the ledger.
    pub path: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// A column a dry run shows, with its Iceberg type.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The table a dry run's files would go to.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunTable {
    /// `<tenant namespace>.<destination_table>`.
    pub name: String,
    pub exists: bool,
    /// The columns the run would create the table with (the table is absent), else null.
    pub create_columns: Option<Vec<DryRunColumn>>,
    /// The file those columns come from.
    pub created_from: Option<String>,
    /// Columns the files would add (schema evolution), in order.
    pub add_columns: Vec<DryRunColumn>,
    /// Columns whose type the files would widen (int to long, float to double, decimal precision).
    pub widen_columns: Vec<DryRunColumn>,
    /// Files whose columns the run would reject or fail on (`{path, message}`).
    pub file_problems: Vec<serde_json::Value>,
}

/// What an ingestion's next run would load, worked out by a worker that wrote nothing.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunResponse {
    pub id: Uuid,
    /// The saved ingestion tried; null for an unsaved definition.
    pub ingestion_id: Option<Uuid>,
    /// `done`, or `failed` (`error` says why).
    pub status: String,
    /// Whether every stage finished in time.
    pub complete: bool,
    /// The stage that did not finish (`definition`, `discovery`, `schema`, `rows`), if any.
    pub unfinished: Option<String>,
    /// What the run would fail on, and in which stage (`{stage, message}`).
    pub error: Option<serde_json::Value>,
    /// `full` or `incremental`.
    pub listing: Option<String>,
    pub keys_listed: Option<u64>,
    /// The files the next run would load, in the order it would read them.
    pub files: Option<Vec<DryRunFile>>,
    pub files_bytes: Option<u64>,
    /// The first (up to 100) new files the caps (`max_files_per_run`, `max_bytes_per_run`) leave
    /// for later runs.
    pub left_for_later: Option<Vec<DryRunFile>>,
    /// More new files wait than `left_for_later` shows.
    pub more_left_for_later: Option<bool>,
    pub table: Option<DryRunTable>,
    /// The first (up to 10) rows decoded, as the table would get them; text values cut to 200
    /// characters.
    pub rows: Option<Vec<serde_json::Value>>,
    pub rows_read_from: Option<Vec<String>>,
    pub elapsed_ms: Option<u64>,
}
