//! Every statement on `audit_events`: the record of who changed what, when, through which
//! request. The table is append-only (PostgreSQL refuses UPDATE, DELETE and TRUNCATE of it), has
//! no foreign key (an ingestion's or tenant's events outlive it) and is never pruned.
//!
//! Two writers, one row shape:
//! - changes to an ingestion's definition are recorded by the trigger `ingestions_audit`, whoever
//!   makes them. A store that writes `ingestions` for someone first names them in the
//!   transaction ([`audit_actor_set`]); a change at a psql prompt names nobody and is recorded as
//!   by `database`. The trigger compares the whole row but its bookkeeping columns, so a column
//!   added to `ingestions` is audited without a change here.
//! - every other change (a manual trigger, a cancel, a maintenance run asked for, rejected files
//!   retried, a token issued or revoked, a tenant created or changed) is written by its store, in
//!   the transaction of the change ([`audit_record`]).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::paging::PageRequest;

/// Longest request id stored (a client may send its own `x-request-id`).
pub const MAX_REQUEST_ID_CHARS: usize = 200;
/// Longest actor name stored.
pub const MAX_ACTOR_CHARS: usize = 300;

/// What kind of caller made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A tenant's API token.
    Token,
    /// The admin token.
    Admin,
    /// `autoloader-api` on an operator's shell.
    Cli,
    /// The engine (a ticker switching off a schedule that no longer parses).
    Scheduler,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Token => "token",
            ActorKind::Admin => "admin",
            ActorKind::Cli => "cli",
            ActorKind::Scheduler => "scheduler",
        }
    }
}

/// Who asks for a change: the kind, a name (a token's name, `admin`, ...), the token's id and
/// the request's id when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub name: String,
    pub token_id: Option<Uuid>,
    pub request_id: Option<String>,
}

/// Cuts `s` to at most `max` characters.
fn bounded(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl Actor {
    /// A tenant's token: its name (label, else `token <id>`) and id.
    pub fn token(name: &str, token_id: Uuid, request_id: Option<&str>) -> Actor {
        Actor {
            kind: ActorKind::Token,
            name: bounded(name, MAX_ACTOR_CHARS),
            token_id: Some(token_id),
            request_id: request_id.map(|r| bounded(r, MAX_REQUEST_ID_CHARS)),
        }
    }

    /// The admin token.
    pub fn admin(request_id: Option<&str>) -> Actor {
        Actor {
            kind: ActorKind::Admin,
            name: "admin".to_owned(),
            token_id: None,
            request_id: request_id.map(|r| bounded(r, MAX_REQUEST_ID_CHARS)),
        }
    }

    /// `autoloader-api` run by an operator.
    pub fn cli() -> Actor {
        Actor {
            kind: ActorKind::Cli,
            name: "autoloader-api".to_owned(),
            token_id: None,
            request_id: None,
        }
    }

    /// The engine.
    pub fn scheduler() -> Actor {
        Actor {
            kind: ActorKind::Scheduler,
            name: "scheduler".to_owned(),
            token_id: None,
            request_id: None,
        }
    }
}

/// What an event written by a store records (the trigger writes `ingestion.created`,
/// `ingestion.updated`, `ingestion.deleted`, `schedule.enabled` and `schedule.disabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RunTriggered,
    RunCancelled,
    MaintenanceQueued,
    FilesRetried,
    TokenIssued,
    TokenRevoked,
    TenantCreated,
    TenantUpdated,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RunTriggered => "run.triggered",
            Action::RunCancelled => "run.cancelled",
            Action::MaintenanceQueued => "maintenance.queued",
            Action::FilesRetried => "files.retried",
            Action::TokenIssued => "token.issued",
            Action::TokenRevoked => "token.revoked",
            Action::TenantCreated => "tenant.created",
            Action::TenantUpdated => "tenant.updated",
        }
    }
}

/// Names `actor` as who makes this transaction's changes to `ingestions`, for the trigger
/// `ingestions_audit` (and the pause stamp, which reads `autoloader.actor`). The settings end
/// with the transaction.
pub async fn audit_actor_set(conn: &mut PgConnection, actor: &Actor) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"select set_config('autoloader.actor_kind', $1, true) as "kind",
                  set_config('autoloader.actor', $2, true) as "name",
                  set_config('autoloader.token_id', coalesce($3::uuid::text, ''), true) as "token",
                  set_config('autoloader.request_id', coalesce($4, ''), true) as "request""#,
        actor.kind.as_str(),
        actor.name,
        actor.token_id,
        actor.request_id,
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Records one change by `actor`, in the caller's transaction.
pub async fn audit_record(
    conn: &mut PgConnection,
    actor: &Actor,
    tenant_id: Option<Uuid>,
    ingestion_id: Option<Uuid>,
    action: Action,
    detail: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into audit_events (tenant_id, ingestion_id, actor_kind, actor, token_id,
                                   request_id, action, detail)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        tenant_id,
        ingestion_id,
        actor.kind.as_str(),
        actor.name,
        actor.token_id,
        actor.request_id,
        action.as_str(),
        detail,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The fields of two JSON objects that differ, as the trigger shows them:
/// `{field: {"before": .., "after": ..}}` (a field missing on one side is null there).
pub fn changes(before: &Value, after: &Value) -> Value {
    let empty = serde_json::Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut out = serde_json::Map::new();
    for key in b.keys().chain(a.keys()) {
        let (old, new) = (b.get(key), a.get(key));
        if old != new && !out.contains_key(key) {
            out.insert(
                key.clone(),
                serde_json::json!({ "before": old.unwrap_or(&Value::Null), "after": new.unwrap_or(&Value::Null) }),
            );
        }
    }
    Value::Object(out)
}

/// One recorded change.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub tenant_id: Option<Uuid>,
    pub ingestion_id: Option<Uuid>,
    /// `token`, `admin`, `cli`, `scheduler` or `database`.
    pub actor_kind: String,
    pub actor: String,
    pub token_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub action: String,
    pub detail: Value,
}

/// One page of the tenant's events about ingestion `ingestion_id`, newest first, and how many
/// there are in all.
pub async fn audit_ingestion_events(
    pool: &PgPool,
    tenant_id: Uuid,
    ingestion_id: Uuid,
    page: PageRequest,
) -> Result<(Vec<AuditEvent>, i64), sqlx::Error> {
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from audit_events where ingestion_id = $1 and tenant_id = $2"#,
        ingestion_id,
        tenant_id
    )
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as!(
        AuditEvent,
        "select id, at, tenant_id, ingestion_id, actor_kind, actor, token_id, request_id, action,
                detail
         from audit_events where ingestion_id = $1 and tenant_id = $2
         order by id desc limit $3 offset $4",
        ingestion_id,
        tenant_id,
        page.size,
        page.offset(),
    )
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}

/// Which events the admin's list shows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant_id: Option<Uuid>,
    pub ingestion_id: Option<Uuid>,
    /// Events at or after this instant.
    pub since: Option<DateTime<Utc>>,
}

/// One page of every tenant's events (or those `filter` names), newest first, and how many
/// match in all.
pub async fn audit_list(
    pool: &PgPool,
    filter: &AuditFilter,
    page: PageRequest,
) -> Result<(Vec<AuditEvent>, i64), sqlx::Error> {
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from audit_events
           where ($1::uuid is null or tenant_id = $1) and ($2::uuid is null or ingestion_id = $2)
             and ($3::timestamptz is null or at >= $3)"#,
        filter.tenant_id,
        filter.ingestion_id,
        filter.since,
    )
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as!(
        AuditEvent,
        "select id, at, tenant_id, ingestion_id, actor_kind, actor, token_id, request_id, action,
                detail
         from audit_events
         where ($1::uuid is null or tenant_id = $1) and ($2::uuid is null or ingestion_id = $2)
           and ($3::timestamptz is null or at >= $3)
         order by id desc limit $4 offset $5",
        filter.tenant_id,
        filter.ingestion_id,
        filter.since,
        page.size,
        page.offset(),
    )
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_name_each_field_that_differs_with_both_values() {
        let before =
            json!({"status": "ACTIVE", "file_roots": ["/a"], "max_ingestions": null, "same": 1});
        let after = json!({"status": "SUSPENDED", "file_roots": ["/a", "/b"], "max_ingestions": 5, "same": 1, "new": true});
        assert_eq!(
            changes(&before, &after),
            json!({
                "status": {"before": "ACTIVE", "after": "SUSPENDED"},
                "file_roots": {"before": ["/a"], "after": ["/a", "/b"]},
                "max_ingestions": {"before": null, "after": 5},
                "new": {"before": null, "after": true},
            })
        );
        assert_eq!(changes(&after, &after), json!({}));
    }

    #[test]
    fn a_hostile_request_id_or_name_is_cut_to_what_the_table_stores() {
        let long = "é".repeat(1000);
        let a = Actor::token(&long, Uuid::nil(), Some(&long));
        assert_eq!(a.name.chars().count(), MAX_ACTOR_CHARS);
        assert_eq!(
            a.request_id.as_deref().map(|r| r.chars().count()),
            Some(MAX_REQUEST_ID_CHARS)
        );
    }
}
