//! The dashboard's sessions (`ui_sessions`): every statement on the table.
//!
//! Invariants: only the SHA-256 of a session id is stored; a session acts for one unrevoked,
//! unexpired token of an ACTIVE tenant, or for the admin token it was opened with, and is ended
//! (deleted) at its first request after that stops being true; it lasts [`IDLE`] after its last
//! request; a token (or the admin) holds at most [`MAX_PER_HOLDER`] sessions, the oldest going
//! first.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// How long a session lasts after its last request.
pub const IDLE_SECS: i64 = 12 * 3600;
/// How often a session's `last_seen_at` is written at most (a busy page costs no write per
/// request).
pub const TOUCH_EVERY_SECS: i64 = 60;
/// Most sessions one token (or the admin token) holds.
pub const MAX_PER_HOLDER: i64 = 20;

/// Whom a session acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A tenant's token: the tenant, its name, the token's id and name (its label, else
    /// `token <id>`).
    Tenant {
        tenant: Uuid,
        tenant_name: String,
        token_id: Uuid,
        token_name: String,
    },
    /// The admin token whose SHA-256 digest hashes to this.
    Admin { admin_digest: Vec<u8> },
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub holder: Holder,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Stores a new session for `token_id` of `tenant_id` (or, both `None`, for the admin token
/// `admin_digest`), deleting the holder's oldest beyond [`MAX_PER_HOLDER`] and any expired one.
pub async fn ui_session_insert(
    pool: &PgPool,
    id_sha256: &[u8; 32],
    tenant: Option<(Uuid, Uuid)>,
    admin_digest: Option<&[u8; 32]>,
    csrf_token: &str,
) -> Result<(), sqlx::Error> {
    let (tenant_id, token_id) = tenant.unzip();
    let mut tx = pool.begin().await?;
    sqlx::query!("delete from ui_sessions where expires_at <= now()")
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "insert into ui_sessions (id_sha256, token_id, tenant_id, admin_digest, csrf_token,
                                  expires_at)
         values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
        &id_sha256[..],
        token_id,
        tenant_id,
        admin_digest.map(|d| &d[..]),
        csrf_token,
        IDLE_SECS as f64,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "delete from ui_sessions where id_sha256 in (
             select id_sha256 from ui_sessions
             where token_id is not distinct from $1
             order by created_at desc, id_sha256
             offset $2)",
        token_id,
        MAX_PER_HOLDER,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The live session with this id digest, its idle expiry pushed back. A session whose token was
/// revoked or expired, or whose tenant is suspended, is deleted and `None`.
pub async fn ui_session_get(
    pool: &PgPool,
    id_sha256: &[u8; 32],
) -> Result<Option<Session>, sqlx::Error> {
    let Some(r) = sqlx::query!(
        r#"select s.token_id, s.tenant_id, s.admin_digest, s.csrf_token, s.expires_at,
                  (s.token_id is null
                   or (a.revoked_at is null and (a.expires_at is null or a.expires_at > now())
                       and n.status = 'ACTIVE')) as "valid!",
                  s.last_seen_at < now() - make_interval(secs => $2) as "stale!",
                  coalesce(nullif(a.label, ''), 'token ' || a.id) as token_name,
                  n.name as "tenant_name?"
           from ui_sessions s
           left join api_tokens a on a.id = s.token_id
           left join tenants n on n.id = s.tenant_id
           where s.id_sha256 = $1 and s.expires_at > now()"#,
        &id_sha256[..],
        TOUCH_EVERY_SECS as f64,
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    if !r.valid {
        ui_session_delete(pool, id_sha256).await?;
        return Ok(None);
    }
    let mut expires_at = r.expires_at;
    if r.stale {
        expires_at = sqlx::query_scalar!(
            "update ui_sessions set last_seen_at = now(),
                    expires_at = now() + make_interval(secs => $2)
             where id_sha256 = $1 returning expires_at",
            &id_sha256[..],
            IDLE_SECS as f64,
        )
        .fetch_optional(pool)
        .await?
        .unwrap_or(expires_at);
    }
    let holder = match (r.tenant_id, r.token_id, r.admin_digest) {
        (Some(tenant), Some(token_id), _) => Holder::Tenant {
            tenant,
            tenant_name: r.tenant_name.unwrap_or_default(),
            token_id,
            token_name: r.token_name.unwrap_or_default(),
        },
        (_, _, Some(admin_digest)) => Holder::Admin { admin_digest },
        // The table's check allows nothing else.
        _ => return Ok(None),
    };
    Ok(Some(Session {
        holder,
        csrf_token: r.csrf_token,
        expires_at,
    }))
}

/// Ends a session (sign-out). `false`: there was none.
pub async fn ui_session_delete(pool: &PgPool, id_sha256: &[u8; 32]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "delete from ui_sessions where id_sha256 = $1",
        &id_sha256[..]
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}
