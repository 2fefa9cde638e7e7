//! The audit trail: an ingestion's events for its tenant (`/api/v1/ingestions/{id}/events`) and
//! every event for the admin (`/api/v1/admin/audit`). Both newest first, paged. An ingestion's
//! events outlive it: once it is deleted, its path answers 404 like every path under it, and the
//! admin reads them with `?ingestion=<id>`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use autoloader::audit::{self, AuditEvent, AuditFilter};
use autoloader::ingestions::store::ingestion_exists;

use crate::auth::{Admin, Tenant};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::page::{self, Page, PageParams};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ingestions/{id}/events", get(ingestion_events))
        .route("/api/v1/admin/audit", get(admin_audit))
}

/// One recorded change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    /// Increases with every event recorded.
    pub id: i64,
    /// When the change was made (its transaction's start).
    pub at: DateTime<Utc>,
    pub tenant_id: Option<Uuid>,
    pub ingestion_id: Option<Uuid>,
    /// Who made it: `token` (a tenant's API token), `admin` (the admin token), `cli`
    /// (`autoloader-api` on a shell), `scheduler` (the engine), `database` (SQL at a psql
    /// prompt).
    #[schema(value_type = ActorKindName)]
    pub by: String,
    /// The token's name (its label, else `token <id>`), `admin`, or the database role.
    pub actor: String,
    pub token_id: Option<Uuid>,
    /// The request's `x-request-id` (as the API answered it).
    pub request_id: Option<String>,
    /// `ingestion.created`, `ingestion.updated`, `ingestion.deleted`, `schedule.enabled`,
    /// `schedule.disabled`, `run.triggered`, `run.cancelled`, `maintenance.queued`,
    /// `files.retried`, `token.issued`, `token.revoked`, `tenant.created`, `tenant.updated`.
    pub action: String,
    /// What changed. Updates: `changes`, each field's `before` and `after` (options as
    /// `options.<name>`; secrets as `********`). Creations and deletions: the whole definition
    /// (`after`, `before`).
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// The values of an event's `by`, for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ActorKindName {
    Token,
    Admin,
    Cli,
    Scheduler,
    Database,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(e: AuditEvent) -> Self {
        AuditEventResponse {
            id: e.id,
            at: e.at,
            tenant_id: e.tenant_id,
            ingestion_id: e.ingestion_id,
            by: e.actor_kind,
            actor: e.actor,
            token_id: e.token_id,
            request_id: e.request_id,
            action: e.action,
            detail: e.detail,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    page: Option<String>,
    page_size: Option<String>,
}

/// Changes to one ingestion, newest first: who (token, admin, `database` for SQL at psql), when,
/// which request, what. A deleted ingestion's events are the admin's to read
/// (`/api/v1/admin/audit?ingestion=<id>`).
#[utoipa::path(get, path = "/api/v1/ingestions/{id}/events", tag = "audit",
    params(("id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<AuditEventResponse>), (status = 404, body = Problem),
              (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn ingestion_events(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<Page<AuditEventResponse>>> {
    let request = page::parse(q.page.as_deref(), q.page_size.as_deref())?;
    if !ingestion_exists(&state.pool, tenant, id).await? {
        return Err(ApiError::NotFound("ingestion"));
    }
    let (rows, total) = audit::audit_ingestion_events(&state.pool, tenant, id, request).await?;
    Ok(Json(Page::new(rows, total, request)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    tenant: Option<String>,
    ingestion: Option<String>,
    since: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
}

fn uuid_param(field: &str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<Uuid> {
    let raw = raw?;
    match raw.trim().parse::<Uuid>() {
        Ok(id) => Some(id),
        Err(_) => {
            errors.push(FieldError {
                field: field.to_owned(),
                message: format!("{field} must be a UUID"),
            });
            None
        }
    }
}

/// Every change to every tenant's ingestions, runs, tokens and settings, newest first; for the
/// admin. `tenant`, `ingestion` and `since` narrow it (deleted ingestions and their tenants'
/// events included).
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin",
    params(("tenant" = Option<Uuid>, Query, description = "only this tenant's events"),
           ("ingestion" = Option<Uuid>, Query, description = "only events about this ingestion (deleted or not)"),
           ("since" = Option<DateTime<Utc>>, Query, description = "only events at or after this RFC 3339 instant"),
           PageParams),
    responses((status = 200, body = Page<AuditEventResponse>), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("admin" = [])))]
pub async fn admin_audit(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Page<AuditEventResponse>>> {
    let mut errors = Vec::new();
    let request = match page::parse(q.page.as_deref(), q.page_size.as_deref()) {
        Ok(r) => Some(r),
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(other) => return Err(other),
    };
    let tenant_id = uuid_param("tenant", q.tenant.as_deref(), &mut errors);
    let ingestion_id = uuid_param("ingestion", q.ingestion.as_deref(), &mut errors);
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => match DateTime::parse_from_rfc3339(s.trim()) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                let shown: String = s.chars().take(64).collect();
                errors.push(FieldError {
                    field: "since".to_owned(),
                    message: format!(
                        "since must be an RFC 3339 instant such as 2025-11-05T14:30:00Z (got '{shown}')"
                    ),
                });
                None
            }
        },
    };
    let Some(request) = request.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let filter = AuditFilter {
        tenant_id,
        ingestion_id,
        since,
    };
    let (rows, total) = audit::audit_list(&state.pool, &filter, request).await?;
    Ok(Json(Page::new(rows, total, request)))
}
