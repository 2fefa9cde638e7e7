//! Tenant administration, authorised by `AUTOLOADER_ADMIN_TOKEN`: create tenants (with a first
//! token, shown once), issue and revoke tokens, suspend a tenant, give it file roots and quotas.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use autoloader::audit::Actor;
use autoloader::config::QuotaConfig;
use autoloader::ingestions::roots::FileRoots;
use autoloader::tenants::{self, NewTenant, NewToken, TenantChange};

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
        .route(
            "/api/v1/admin/tenants/{tenant_id}",
            get(get_tenant).patch(patch_tenant),
        )
        .route("/api/v1/admin/tenants/{tenant_id}/tokens", get(list_tokens))
        .route("/api/v1/admin/tokens/{token_id}", delete(revoke_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    #[schema(required = true, value_type = crate::rules::Name)]
    pub name: Option<String>,
    /// The tenant's Iceberg namespace root (lower-case identifier, unique, never changed):
    /// its destination `a.b` is the table `<namespace>.a.b`. Omitted: derived from the name.
    #[schema(pattern = "^[a-z_][a-z0-9_]{0,62}$")]
    pub namespace: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantCreated {
    pub tenant_id: Uuid,
    pub name: String,
    /// The tenant's Iceberg namespace root.
    pub namespace: String,
    pub token_id: Uuid,
    /// The tenant's first API token. It is shown this once; only its hash is stored.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantResponse {
    pub tenant_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// `ACTIVE`, or `SUSPENDED`: no schedule of the tenant fires and its tokens answer 403.
    #[schema(value_type = TenantStatusName)]
    pub status: String,
    pub suspended_at: Option<DateTime<Utc>>,
    /// The tenant's Iceberg namespace root: its destination `a.b` is the table `<namespace>.a.b`.
    pub namespace: String,
    /// Directories the tenant's `file://` sources may read (each inside the operator's
    /// `AUTOLOADER_FILE_ROOTS`). Empty: no local sources.
    pub file_roots: Vec<String>,
    /// The tenant's own quotas; null: the operator's default (see `quotas`).
    pub max_ingestions: Option<i32>,
    pub max_concurrent_runs: Option<i32>,
    pub max_manual_runs_per_minute: Option<i32>,
    /// The quotas in force: the tenant's own, else the operator's defaults.
    pub quotas: Quotas,
}

/// The quotas in force for a tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct Quotas {
    pub max_ingestions: i32,
    /// Null: no cap.
    pub max_concurrent_runs: Option<i32>,
    pub max_manual_runs_per_minute: i32,
}

impl TenantResponse {
    fn new(t: tenants::TenantRow, defaults: &QuotaConfig) -> Self {
        TenantResponse {
            tenant_id: t.id,
            name: t.name,
            created_at: t.created_at,
            status: t.status,
            suspended_at: t.suspended_at,
            namespace: t.namespace,
            file_roots: t.file_roots,
            max_ingestions: t.max_ingestions,
            max_concurrent_runs: t.max_concurrent_runs,
            max_manual_runs_per_minute: t.max_manual_runs_per_minute,
            quotas: Quotas {
                max_ingestions: t.max_ingestions.unwrap_or(defaults.default_max_ingestions),
                max_concurrent_runs: t
                    .max_concurrent_runs
                    .or(defaults.default_max_concurrent_runs),
                max_manual_runs_per_minute: t
                    .max_manual_runs_per_minute
                    .unwrap_or(defaults.default_max_manual_runs_per_minute),
            },
        }
    }
}

/// The values of a tenant's `status`, for the OpenAPI document.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub enum TenantStatusName {
    Active,
    Suspended,
}

/// Body of `PATCH /api/v1/admin/tenants/{tenant_id}`: the fields sent change, the others stay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// `SUSPENDED` stops the tenant's schedules and refuses its tokens (403), deleting nothing;
    /// `ACTIVE` brings both back.
    #[schema(value_type = Option<TenantStatusName>)]
    pub status: Option<String>,
    /// Directories the tenant's `file://` sources may read, each an absolute path inside the
    /// operator's `AUTOLOADER_FILE_ROOTS` (stored resolved). `[]`: no local sources.
    #[schema(max_items = 32, value_type = Option<Vec<crate::rules::AbsoluteDir>>)]
    pub file_roots: Option<Vec<String>>,
    /// Quotas; null puts one back to the operator's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    pub max_ingestions: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    pub max_concurrent_runs: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    pub max_manual_runs_per_minute: Option<Option<i64>>,
}

/// A field that is present (even as null) is `Some`; an absent one stays `None` (the default).
/// A whole number may be written with a zero fraction (`5.0`), as JSON allows.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    let n = Option::<serde_json::Number>::deserialize(d)?;
    n.map(|n| {
        n.as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number, got {n}")))
    })
    .transpose()
    .map(Some)
}

/// Most file roots a tenant may have.
pub const MAX_TENANT_ROOTS: usize = 32;

fn quota(field: &'static str, value: Option<Option<i64>>) -> ApiResult<Option<Option<i32>>> {
    match value {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(v)) => match i32::try_from(v) {
            Ok(v) if v >= 0 => Ok(Some(Some(v))),
            _ => Err(ApiError::field(
                field,
                format!("{field} must be a whole number from 0 to 2147483647, or null for the operator's default (got {v})"),
            )),
        },
    }
}

/// The roots as stored: each resolved, inside the operator's roots, at most [`MAX_TENANT_ROOTS`].
fn tenant_roots(operator: &FileRoots, roots: &[String]) -> ApiResult<Vec<String>> {
    if roots.len() > MAX_TENANT_ROOTS {
        return Err(ApiError::field(
            "file_roots",
            format!("file_roots lists at most {MAX_TENANT_ROOTS} directories"),
        ));
    }
    operator
        .admit(roots)
        .map_err(|m| ApiError::field("file_roots", m))
}

/// A token as an admin sees it: never the token itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub token_id: Uuid,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenResponse>,
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
    /// When the token stops working (RFC 3339, in the future); omitted: never.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    pub token_id: Uuid,
    pub tenant_id: Uuid,
    /// Shown this once; only its hash is stored.
    pub token: String,
}

/// Creates a tenant and its first token in one transaction, for `actor`. `namespace` `None`:
/// derived from the name.
pub async fn create_tenant_with_token(
    pool: &sqlx::PgPool,
    name: &str,
    namespace: Option<&str>,
    label: &str,
    actor: &Actor,
) -> ApiResult<TenantCreated> {
    let namespace = match namespace {
        Some(ns) => {
            tenants::check_namespace(ns).map_err(|m| ApiError::field("namespace", m))?;
            ns.to_owned()
        }
        None => tenants::derive_namespace(name),
    };
    let tenant_id = Uuid::now_v7();
    let token_id = Uuid::now_v7();
    let token = new_token();
    let first = NewToken {
        id: token_id,
        tenant_id,
        sha256: &digest(&token),
        label: Some(label),
        expires_at: None,
    };
    let tenant = NewTenant {
        name,
        namespace: &namespace,
        file_roots: &[],
    };
    tenants::tenant_create(pool, &tenant, &first, actor).await?;
    tracing::info!(%tenant_id, name, namespace, "tenant created");
    Ok(TenantCreated {
        tenant_id,
        name: name.to_owned(),
        namespace,
        token_id,
        token,
    })
}

#[utoipa::path(post, path = "/api/v1/admin/tenants", tag = "admin", request_body = TenantCreate,
    responses((status = 201, body = TenantCreated), (status = 401, body = Problem), (status = 409, body = Problem)),
    security(("admin" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    admin: Admin,
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
    let created = create_tenant_with_token(
        &state.pool,
        &name,
        body.namespace.as_deref().map(str::trim),
        "first token",
        &admin.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/admin/tenants", tag = "admin",
    responses((status = 200, body = TenantList), (status = 401, body = Problem)), security(("admin" = [])))]
pub async fn list_tenants(State(state): State<AppState>, _: Admin) -> ApiResult<Json<TenantList>> {
    let items = tenants::tenant_list(&state.pool)
        .await?
        .into_iter()
        .map(|t| TenantResponse::new(t, &state.quotas))
        .collect();
    Ok(Json(TenantList { items }))
}

#[utoipa::path(get, path = "/api/v1/admin/tenants/{tenant_id}", tag = "admin", params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = TenantResponse), (status = 404, body = Problem)), security(("admin" = [])))]
pub async fn get_tenant(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(tenant_id): ApiPath<Uuid>,
) -> ApiResult<Json<TenantResponse>> {
    let t = tenants::tenant_get(&state.pool, tenant_id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    Ok(Json(TenantResponse::new(t, &state.quotas)))
}

/// Suspends a tenant or makes it active again, sets its file roots and quotas.
#[utoipa::path(patch, path = "/api/v1/admin/tenants/{tenant_id}", tag = "admin", params(("tenant_id" = Uuid, Path)),
    request_body = TenantPatch,
    responses((status = 200, body = TenantResponse), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("admin" = [])))]
pub async fn patch_tenant(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(tenant_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<TenantPatch>,
) -> ApiResult<Json<TenantResponse>> {
    let active = match body.status.as_deref().map(str::trim) {
        None => None,
        Some("ACTIVE") => Some(true),
        Some("SUSPENDED") => Some(false),
        Some(other) => {
            return Err(ApiError::field(
                "status",
                format!("status must be ACTIVE or SUSPENDED (got '{other}')"),
            ))
        }
    };
    let change = TenantChange {
        active,
        file_roots: body
            .file_roots
            .as_deref()
            .map(|r| tenant_roots(&state.bounds.roots, r))
            .transpose()?,
        max_ingestions: quota("max_ingestions", body.max_ingestions)?,
        max_concurrent_runs: quota("max_concurrent_runs", body.max_concurrent_runs)?,
        max_manual_runs_per_minute: quota(
            "max_manual_runs_per_minute",
            body.max_manual_runs_per_minute,
        )?,
    };
    let t = tenants::tenant_update(&state.pool, tenant_id, &change, &admin.actor())
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    if active == Some(false) {
        // This process refuses the tenant's tokens at once; others within the token cache's TTL.
        state.tokens.evict_tenant(tenant_id);
    }
    tracing::info!(%tenant_id, status = %t.status, file_roots = ?t.file_roots,
                   max_ingestions = ?t.max_ingestions, max_concurrent_runs = ?t.max_concurrent_runs,
                   max_manual_runs_per_minute = ?t.max_manual_runs_per_minute, "tenant changed");
    Ok(Json(TenantResponse::new(t, &state.quotas)))
}

#[utoipa::path(get, path = "/api/v1/admin/tenants/{tenant_id}/tokens", tag = "admin", params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = TokenList), (status = 404, body = Problem)), security(("admin" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(tenant_id): ApiPath<Uuid>,
) -> ApiResult<Json<TokenList>> {
    if !tenants::tenant_exists(&state.pool, tenant_id).await? {
        return Err(ApiError::NotFound("tenant"));
    }
    let items = tenants::token_list(&state.pool, tenant_id)
        .await?
        .into_iter()
        .map(|t| TokenResponse {
            token_id: t.id,
            label: t.label,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
            expires_at: t.expires_at,
        })
        .collect();
    Ok(Json(TokenList { items }))
}

#[utoipa::path(post, path = "/api/v1/admin/tenants/{tenant_id}/tokens", tag = "admin",
    params(("tenant_id" = Uuid, Path)), request_body(content = Option<TokenCreate>),
    responses((status = 201, body = TokenCreated), (status = 404, body = Problem)), security(("admin" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(tenant_id): ApiPath<Uuid>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    // The body is optional: no body (or `null`) means no label and no expiry.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        TokenCreate::default()
    } else {
        crate::extract::parse_json::<Option<TokenCreate>>(&body)?.unwrap_or_default()
    };
    // PostgreSQL stores no NUL character in text.
    if body.label.as_deref().is_some_and(|l| l.contains('\0')) {
        return Err(ApiError::field(
            "label",
            "label must not contain the NUL character (\\u0000)",
        ));
    }
    if body.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::field(
            "expires_at",
            "expires_at must be in the future",
        ));
    }
    if !tenants::tenant_exists(&state.pool, tenant_id).await? {
        return Err(ApiError::NotFound("tenant"));
    }
    let created = issue(
        &state.pool,
        tenant_id,
        body.label.as_deref(),
        body.expires_at,
        &admin.actor(),
    )
    .await?;
    // A token refused before it was issued (only ever by chance) works at once.
    state.tokens.evict(&digest(&created.token));
    Ok((StatusCode::CREATED, Json(created)))
}

async fn issue(
    pool: &sqlx::PgPool,
    tenant_id: Uuid,
    label: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    actor: &Actor,
) -> ApiResult<TokenCreated> {
    let token_id = Uuid::now_v7();
    let token = new_token();
    let new = NewToken {
        id: token_id,
        tenant_id,
        sha256: &digest(&token),
        label,
        expires_at,
    };
    tenants::token_issue(pool, &new, actor).await?;
    tracing::info!(%tenant_id, %token_id, "token issued");
    Ok(TokenCreated {
        token_id,
        tenant_id,
        token,
    })
}

/// Issues a new token for an existing tenant and returns it (for the command line).
pub async fn issue_token(pool: &sqlx::PgPool, tenant_id: Uuid, label: &str) -> ApiResult<String> {
    Ok(issue(pool, tenant_id, Some(label), None, &Actor::cli())
        .await?
        .token)
}

#[utoipa::path(delete, path = "/api/v1/admin/tokens/{token_id}", tag = "admin", params(("token_id" = Uuid, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem)), security(("admin" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(token_id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let Some(hash) = tenants::token_revoke(&state.pool, token_id, &admin.actor()).await? else {
        return Err(ApiError::NotFound("token"));
    };
    state.tokens.evict(&hash);
    tracing::info!(%token_id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
