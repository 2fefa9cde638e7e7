//! Every statement on `tenants` and `api_tokens`. A token is stored only as its SHA-256 digest;
//! the token itself is shown once, when it is issued, and never stored.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::audit::{audit_record, changes, Action, Actor};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a tenant named '{0}' already exists")]
    NameTaken(String),
    #[error(
        "the namespace '{0}' belongs to another tenant; give the tenant another with \"namespace\""
    )]
    NamespaceTaken(String),
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
    /// The tenant's Iceberg namespace root; never changes.
    pub namespace: String,
    /// Directories its local sources may read.
    pub file_roots: Vec<String>,
    /// Quotas; `None`: the operator's default.
    pub max_ingestions: Option<i32>,
    pub max_concurrent_runs: Option<i32>,
    pub max_manual_runs_per_minute: Option<i32>,
}

/// Longest tenant namespace.
pub const MAX_NAMESPACE_CHARS: usize = 63;

/// Checks a tenant namespace: an Iceberg identifier in lower case (`[a-z_][a-z0-9_]*`), at most
/// [`MAX_NAMESPACE_CHARS`] long (the constraint `tenants_namespace_identifier` holds the same).
pub fn check_namespace(ns: &str) -> Result<(), String> {
    let ok = !ns.is_empty()
        && ns.len() <= MAX_NAMESPACE_CHARS
        && ns
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
        && ns
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "namespace must be lower-case letters, digits and underscores, not starting with a \
             digit, at most {MAX_NAMESPACE_CHARS} characters (got '{ns}')"
        ))
    }
}

/// The namespace a tenant named `name` gets when none is given: the name in lower case with
/// every run of other characters as one `_`, `t_` in front when it would start with a digit (as
/// the trigger `tenants_default_namespace` derives it for a tenant inserted at psql).
pub fn derive_namespace(name: &str) -> String {
    let mut out = String::new();
    let mut replacing = false;
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            out.push(c);
            replacing = false;
        } else if !replacing {
            out.push('_');
            replacing = true;
        }
    }
    let trimmed = out.trim_matches('_');
    let mut ns = match trimmed.bytes().next() {
        None => "tenant".to_owned(),
        Some(c) if c.is_ascii_digit() => format!("t_{trimmed}"),
        Some(_) => trimmed.to_owned(),
    };
    ns.truncate(48);
    ns
}

/// What an admin changes of a tenant; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    /// `Some(true)`: ACTIVE; `Some(false)`: SUSPENDED.
    pub active: Option<bool>,
    pub file_roots: Option<Vec<String>>,
    /// `Some(None)` clears a quota back to the operator's default.
    pub max_ingestions: Option<Option<i32>>,
    pub max_concurrent_runs: Option<Option<i32>>,
    pub max_manual_runs_per_minute: Option<Option<i32>>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenHolder {
    /// An active tenant, and the token: its id and its name (its label, else `token <id>`).
    Tenant {
        tenant: Uuid,
        token_id: Uuid,
        name: String,
    },
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

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub file_roots: &'a [String],
}

/// Creates a tenant and its first token in one transaction, recorded as created by `actor`.
pub async fn tenant_create(
    pool: &PgPool,
    tenant: &NewTenant<'_>,
    first: &NewToken<'_>,
    actor: &Actor,
) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "insert into tenants (id, name, namespace, file_roots) values ($1, $2, $3, $4)",
        first.tenant_id,
        tenant.name,
        tenant.namespace,
        tenant.file_roots,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("tenants_namespace_unique") => {
            Error::NamespaceTaken(tenant.namespace.to_owned())
        }
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            Error::NameTaken(tenant.name.to_owned())
        }
        _ => Error::Db(e),
    })?;
    token_insert(&mut tx, first).await?;
    let detail = json!({
        "name": tenant.name, "namespace": tenant.namespace, "file_roots": tenant.file_roots,
        "token_id": first.id, "token_label": first.label,
    });
    audit_record(
        &mut tx,
        actor,
        Some(first.tenant_id),
        None,
        Action::TenantCreated,
        &detail,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What a tenant's audit row compares: the settings an admin changes.
fn tenant_settings(t: &TenantRow) -> Value {
    json!({
        "status": t.status, "file_roots": t.file_roots, "max_ingestions": t.max_ingestions,
        "max_concurrent_runs": t.max_concurrent_runs,
        "max_manual_runs_per_minute": t.max_manual_runs_per_minute,
    })
}

/// Every tenant, oldest first.
pub async fn tenant_list(pool: &PgPool) -> Result<Vec<TenantRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantRow,
        "select id, name, created_at, status, suspended_at, namespace, file_roots, max_ingestions,
                max_concurrent_runs, max_manual_runs_per_minute
         from tenants order by created_at, id"
    )
    .fetch_all(pool)
    .await
}

/// Tenant `id`.
pub async fn tenant_get(pool: &PgPool, id: Uuid) -> Result<Option<TenantRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantRow,
        "select id, name, created_at, status, suspended_at, namespace, file_roots, max_ingestions,
                max_concurrent_runs, max_manual_runs_per_minute
         from tenants where id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

/// Changes tenant `id` as `change` says, in one statement. Suspending or resuming moves its
/// schedules too (trigger `tenants_sync_ticks`). A change that changes anything is recorded as
/// made by `actor`, with the settings before and after. Returns the tenant as stored; `None`: no
/// such tenant.
pub async fn tenant_update(
    pool: &PgPool,
    id: Uuid,
    change: &TenantChange,
    actor: &Actor,
) -> Result<Option<TenantRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let before = sqlx::query_as!(
        TenantRow,
        "select id, name, created_at, status, suspended_at, namespace, file_roots, max_ingestions,
                max_concurrent_runs, max_manual_runs_per_minute
         from tenants where id = $1 for no key update",
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(before) = before else {
        return Ok(None);
    };
    let quota = |q: Option<Option<i32>>| (q.is_some(), q.flatten());
    let (set_ingestions, max_ingestions) = quota(change.max_ingestions);
    let (set_concurrent, max_concurrent) = quota(change.max_concurrent_runs);
    let (set_manual, max_manual) = quota(change.max_manual_runs_per_minute);
    let after = sqlx::query_as!(
        TenantRow,
        "update tenants
         set status = case when $2::bool is null then status
                           when $2 then 'ACTIVE' else 'SUSPENDED' end,
             suspended_at = case when $2::bool is null then suspended_at
                                 when $2 then null else coalesce(suspended_at, now()) end,
             file_roots = coalesce($3, file_roots),
             max_ingestions = case when $4 then $5 else max_ingestions end,
             max_concurrent_runs = case when $6 then $7 else max_concurrent_runs end,
             max_manual_runs_per_minute = case when $8 then $9 else max_manual_runs_per_minute end
         where id = $1
         returning id, name, created_at, status, suspended_at, namespace, file_roots, max_ingestions,
                max_concurrent_runs, max_manual_runs_per_minute",
        id,
        change.active,
        change.file_roots.as_deref(),
        set_ingestions,
        max_ingestions,
        set_concurrent,
        max_concurrent,
        set_manual,
        max_manual,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(after) = &after {
        let changed = changes(&tenant_settings(&before), &tenant_settings(after));
        if changed.as_object().is_some_and(|c| !c.is_empty()) {
            let detail = json!({ "name": after.name, "changes": changed });
            audit_record(
                &mut tx,
                actor,
                Some(id),
                None,
                Action::TenantUpdated,
                &detail,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(after)
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

/// The directories tenant `id`'s local sources may read (none when there is no such tenant).
pub async fn tenant_file_roots(pool: &PgPool, id: Uuid) -> Result<Vec<String>, sqlx::Error> {
    Ok(
        sqlx::query_scalar!("select file_roots from tenants where id = $1", id)
            .fetch_optional(pool)
            .await?
            .unwrap_or_default(),
    )
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

/// Stores a new token of an existing tenant, recorded as issued by `actor`.
pub async fn token_issue(
    pool: &PgPool,
    token: &NewToken<'_>,
    actor: &Actor,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    token_insert(&mut tx, token).await?;
    let detail = json!({
        "token_id": token.id, "label": token.label, "expires_at": token.expires_at,
    });
    audit_record(
        &mut tx,
        actor,
        Some(token.tenant_id),
        None,
        Action::TokenIssued,
        &detail,
    )
    .await?;
    tx.commit().await
}

/// Revokes token `id` (revoking twice keeps the first instant), recorded as revoked by `actor`
/// the first time. Returns its digest, to forget it wherever it is remembered; `None`: no such
/// token.
pub async fn token_revoke(
    pool: &PgPool,
    id: Uuid,
    actor: &Actor,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The row as it was (`old`) tells a first revocation from a repeated one.
    let row = sqlx::query!(
        r#"with old as (select id, revoked_at from api_tokens where id = $1 for update)
           update api_tokens a set revoked_at = coalesce(a.revoked_at, now())
           from old where a.id = old.id
           returning a.token_sha256, a.tenant_id, a.label,
                     old.revoked_at is null as "first!""#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if row.first {
        let detail = json!({ "token_id": id, "label": row.label });
        audit_record(
            &mut tx,
            actor,
            Some(row.tenant_id),
            None,
            Action::TokenRevoked,
            &detail,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(row.token_sha256))
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
            select a.id, a.tenant_id, a.last_used_at, n.status, a.label,
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
        select tenant_id as "tenant_id!", id as "token_id!", status as "status!",
               expired as "expired!",
               coalesce(nullif(label, ''), 'token ' || id) as "token_name!"
        from t
        "#,
        &sha256[..]
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        if r.expired {
            TokenHolder::Expired
        } else if r.status == "ACTIVE" {
            TokenHolder::Tenant {
                tenant: r.tenant_id,
                token_id: r.token_id,
                name: r.token_name,
            }
        } else {
            TokenHolder::Suspended(r.tenant_id)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_derived_from_the_name_as_an_identifier() {
        for (name, want) in [
            ("Acme Corp", "acme_corp"),
            ("acme--corp!!", "acme_corp"),
            ("a_-b", "a__b"),
            ("42 labs", "t_42_labs"),
            ("---", "tenant"),
            ("Éclair", "clair"),
        ] {
            let ns = derive_namespace(name);
            assert_eq!(ns, want, "{name}");
            check_namespace(&ns).expect("a derived namespace is valid");
        }
        assert!(derive_namespace(&"x".repeat(300)).len() <= MAX_NAMESPACE_CHARS);
    }

    #[test]
    fn a_namespace_is_a_lower_case_identifier() {
        for bad in [
            "",
            "Acme",
            "9lives",
            "a.b",
            "a-b",
            "a b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
        for good in ["acme", "_x", "team_42", &"a".repeat(63)] {
            assert!(check_namespace(good).is_ok(), "{good:?}");
        }
    }
}
