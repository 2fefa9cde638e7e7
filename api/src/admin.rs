//! Tenant administration, authorised by `AUTOLOADER_ADMIN_TOKEN`: create tenants (with a first
//! token, shown once), issue and revoke tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use autoloader::tenants::{self, NewToken};

use crate::auth::{digest, new_token, Admin};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/tenants",
            post(create_tenant).get(list_tenants),
        )
        .route(
            "/api/v1/admin/tenants/{tenant_id}/tokens",
            post(create_token),
        )
        .route("/api/v1/admin/tokens/{token_id}", delete(revoke_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    #[schema(required = true, value_type = crate::rules::Name)]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantCreated {
    pub tenant_id: Uuid,
    pub name: String,
    pub token_id: Uuid,
    /// The tenant's first API token. It is shown this once; only its hash is stored.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantResponse {
    pub tenant_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub items: Vec<TenantResponse>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// What the token is for, e.g. "airflow".
    #[schema(pattern = r"^[^\u0000]*$")]
    pub label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    pub token_id: Uuid,
    pub tenant_id: Uuid,
    /// Shown this once; only its hash is stored.
    pub token: String,
}

/// Creates a tenant and its first token in one transaction.
pub async fn create_tenant_with_token(
    pool: &sqlx::PgPool,
    name: &str,
    label: &str,
) -> ApiResult<TenantCreated> {
    let tenant_id = Uuid::now_v7();
    let token_id = Uuid::now_v7();
    let token = new_token();
    let first = NewToken {
        id: token_id,
        tenant_id,
        sha256: &digest(&token),
        label: Some(label),
    };
    tenants::tenant_create(pool, name, &first).await?;
    tracing::info!(%tenant_id, name, "tenant created");
    Ok(TenantCreated {
        tenant_id,
        name: name.to_owned(),
        token_id,
        token,
    })
}

#[utoipa::path(post, path = "/api/v1/admin/tenants", tag = "admin", request_body = TenantCreate,
    responses((status = 201, body = TenantCreated), (status = 401, body = Problem), (status = 409, body = Problem)),
    security(("admin" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(body): ApiJson<TenantCreate>,
) -> ApiResult<(StatusCode, Json<TenantCreated>)> {
    if let Some(m) = body
        .name
        .as_deref()
        .and_then(|n| autoloader::ingestions::definition::check_name(n).err())
    {
        return Err(ApiError::field("name", m));
    }
    let name = body
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let Some(name) = name else {
        return Err(ApiError::field("name", "name is required"));
    };
    let created = create_tenant_with_token(&state.pool, &name, "first token").await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/admin/tenants", tag = "admin",
    responses((status = 200, body = TenantList), (status = 401, body = Problem)), security(("admin" = [])))]
pub async fn list_tenants(State(state): State<AppState>, _: Admin) -> ApiResult<Json<TenantList>> {
    let items = tenants::tenant_list(&state.pool)
        .await?
        .into_iter()
        .map(|t| TenantResponse {
            tenant_id: t.id,
            name: t.name,
            created_at: t.created_at,
        })
        .collect();
    Ok(Json(TenantList { items }))
}

#[utoipa::path(post, path = "/api/v1/admin/tenants/{tenant_id}/tokens", tag = "admin",
    params(("tenant_id" = Uuid, Path)), request_body(content = Option<TokenCreate>),
    responses((status = 201, body = TokenCreated), (status = 404, body = Problem)), security(("admin" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(tenant_id): ApiPath<Uuid>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    // The body is optional: no body (or `null`) means no label.
    let label = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        crate::extract::parse_json::<Option<TokenCreate>>(&body)?.and_then(|b| b.label)
    };
    // PostgreSQL stores no NUL character in text.
    if label.as_deref().is_some_and(|l| l.contains('\0')) {
        return Err(ApiError::field(
            "label",
            "label must not contain the NUL character (\\u0000)",
        ));
    }
    if !tenants::tenant_exists(&state.pool, tenant_id).await? {
        return Err(ApiError::NotFound("tenant"));
    }
    let created = issue(&state.pool, tenant_id, label.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn issue(
    pool: &sqlx::PgPool,
    tenant_id: Uuid,
    label: Option<&str>,
) -> ApiResult<TokenCreated> {
    let token_id = Uuid::now_v7();
    let token = new_token();
    let new = NewToken {
        id: token_id,
        tenant_id,
        sha256: &digest(&token),
        label,
    };
    tenants::token_issue(pool, &new).await?;
    tracing::info!(%tenant_id, %token_id, "token issued");
    Ok(TokenCreated {
        token_id,
        tenant_id,
        token,
    })
}

/// Issues a new token for an existing tenant and returns it (for the command line).
pub async fn issue_token(pool: &sqlx::PgPool, tenant_id: Uuid, label: &str) -> ApiResult<String> {
    Ok(issue(pool, tenant_id, Some(label)).await?.token)
}

#[utoipa::path(delete, path = "/api/v1/admin/tokens/{token_id}", tag = "admin", params(("token_id" = Uuid, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem)), security(("admin" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(token_id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let Some(hash) = tenants::token_revoke(&state.pool, token_id).await? else {
        return Err(ApiError::NotFound("token"));
    };
    state.tokens.evict(&hash);
    tracing::info!(%token_id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
