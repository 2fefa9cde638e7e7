//! Every statement on `tenants` and `api_tokens`. A token is stored only as its SHA-256 digest;
//! the token itself is shown once, when it is issued, and never stored.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a tenant named '{0}' already exists")]
    NameTaken(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A tenant as stored.
#[derive(Debug, Clone)]
pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// `ACTIVE`, or `SUSPENDED` (no schedule fires, tokens refused).
    pub status: String,
    pub suspended_at: Option<DateTime<Utc>>,
}

/// A token as an admin sees it: never the token, nor its digest.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: Uuid,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a presented token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHolder {
    /// An active tenant.
    Tenant(Uuid),
    /// A suspended tenant: refused.
    Suspended(Uuid),
    /// A token past its `expires_at`: refused.
    Expired,
}

/// A token to store: its id, tenant, SHA-256 digest and label.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub sha256: &'a [u8; 32],
    pub label: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
}

async fn token_insert(
    tx: &mut Transaction<'_, Postgres>,
    token: &NewToken<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into api_tokens (id, tenant_id, token_sha256, label, expires_at)
         values ($1, $2, $3, $4, $5)",
        token.id,
        token.tenant_id,
        &token.sha256[..],
        token.label,
        token.expires_at,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates a tenant and its first token in one transaction.
pub async fn tenant_create(pool: &PgPool, name: &str, first: &NewToken<'_>) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "insert into tenants (id, name) values ($1, $2)",
        first.tenant_id,
        name
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::NameTaken(name.to_owned()),
        _ => Error::Db(e),
    })?;
    token_insert(&mut tx, first).await?;
    tx.commit().await?;
    Ok(())
}

/// Every tenant, oldest first.
pub async fn tenant_list(pool: &PgPool) -> Result<Vec<TenantRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantRow,
        "select id, name, created_at, status, suspended_at from tenants order by created_at, id"
    )
    .fetch_all(pool)
    .await
}

/// Tenant `id`.
pub async fn tenant_get(pool: &PgPool, id: Uuid) -> Result<Option<TenantRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantRow,
        "select id, name, created_at, status, suspended_at from tenants where id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

/// Suspends tenant `id` (`ACTIVE` false) or makes it active again; its schedules follow
/// (trigger `tenants_sync_ticks`). Returns the tenant as stored; `None`: no such tenant.
pub async fn tenant_set_active(
    pool: &PgPool,
    id: Uuid,
    active: bool,
) -> Result<Option<TenantRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantRow,
        "update tenants
         set status = case when $2 then 'ACTIVE' else 'SUSPENDED' end,
             suspended_at = case when $2 then null else coalesce(suspended_at, now()) end
         where id = $1
         returning id, name, created_at, status, suspended_at",
        id,
        active
    )
    .fetch_optional(pool)
    .await
}

/// The tenant's tokens, oldest first.
pub async fn token_list(pool: &PgPool, tenant_id: Uuid) -> Result<Vec<TokenRow>, sqlx::Error> {
    sqlx::query_as!(
        TokenRow,
        "select id, label, created_at, last_used_at, revoked_at, expires_at from api_tokens
         where tenant_id = $1 order by created_at, id",
        tenant_id
    )
    .fetch_all(pool)
    .await
}

/// Whether tenant `id` exists.
pub async fn tenant_exists(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from tenants where id = $1) as "found!""#,
        id
    )
    .fetch_one(pool)
    .await
}

/// The tenant named `name`, if any.
pub async fn tenant_by_name(pool: &PgPool, name: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("select id from tenants where name = $1", name)
        .fetch_optional(pool)
        .await
}

/// Stores a new token of an existing tenant.
pub async fn token_issue(pool: &PgPool, token: &NewToken<'_>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    token_insert(&mut tx, token).await?;
    tx.commit().await
}

/// Revokes token `id` (revoking twice keeps the first instant). Returns its digest, to forget
/// it wherever it is remembered; `None`: no such token.
pub async fn token_revoke(pool: &PgPool, id: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar!(
        "update api_tokens set revoked_at = coalesce(revoked_at, now()) where id = $1
         returning token_sha256",
        id
    )
    .fetch_optional(pool)
    .await
}

/// Whom the unrevoked token with this digest stands for. Also notes when the token
/// was last used, at most every five minutes.
pub async fn token_tenant(
    pool: &PgPool,
    sha256: &[u8; 32],
) -> Result<Option<TokenHolder>, sqlx::Error> {
    let row = sqlx::query!(
        r#"
        with t as (
            select a.id, a.tenant_id, a.last_used_at, n.status,
                   a.expires_at is not null and a.expires_at <= now() as expired
            from api_tokens a
            join tenants n on n.id = a.tenant_id
            where a.token_sha256 = $1 and a.revoked_at is null
        ), touched as (
            update api_tokens a set last_used_at = now()
            from t
            where a.id = t.id and not t.expired
              and (t.last_used_at is null or t.last_used_at < now() - interval '5 minutes')
        )
        select tenant_id as "tenant_id!", status as "status!", expired as "expired!" from t
        "#,
        &sha256[..]
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        if r.expired {
            TokenHolder::Expired
        } else if r.status == "ACTIVE" {
            TokenHolder::Tenant(r.tenant_id)
        } else {
            TokenHolder::Suspended(r.tenant_id)
        }
    }))
}
