//! `/api/v1/ingestions`: create, read, list, update, delete, and the schedule endpoints.
//!
//! Every query is scoped to the caller's tenant: another tenant's ingestion is 404, not 403, so
//! ids do not leak. Writes validate the whole resulting definition before touching the database,
//! and write the ingestion and its next tick in one transaction.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use autoloader::ingestion::{
    check_name, DestinationTable, FormatType, ScheduleFields, SourcePath, SourceType,
};
use autoloader::schedule::{Schedule, ScheduleInput};
use autoloader::source::{FileRoots, IngestOptions};

use crate::schedule_cache::ScheduleView;

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::model::{
    IngestionCreate, IngestionPatch, IngestionResponse, IngestionRow, Page, ScheduleInfoResponse,
};
use crate::schedules::{parse_count, upcoming};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ingestions", post(create).get(list))
        .route(
            "/api/v1/ingestions/{id}",
            get(read).put(replace).patch(patch).delete(remove),
        )
        .route("/api/v1/ingestions/{id}/schedule", get(schedule_info))
        .route("/api/v1/ingestions/{id}/schedule/enable", post(enable))
        .route("/api/v1/ingestions/{id}/schedule/disable", post(disable))
}

const COLUMNS: &str = "id, tenant_id, name, description, status, source_type, source_path, format_type, \
     destination_table, options, schedule_frequency, schedule_time, schedule_timezone, schedule_cron, \
     schedule_enabled, next_run_time, last_scheduled_run, created_at, updated_at";

/// A definition that passed validation, ready to store.
struct Valid {
    name: String,
    description: Option<String>,
    status: &'static str,
    source_type: SourceType,
    source_path: SourcePath,
    format_type: FormatType,
    destination_table: DestinationTable,
    options: Value,
    schedule: Option<Schedule>,
    fields: ScheduleFields,
}

/// Binds a definition as `$1` id, `$2` tenant, then `$3..$15` in the column order that the insert
/// and the update both use.
fn bind_definition<'q>(
    q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    id: Uuid,
    tenant: Uuid,
    v: &'q Valid,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    q.bind(id)
        .bind(tenant)
        .bind(&v.name)
        .bind(&v.description)
        .bind(v.status)
        .bind(v.source_type.as_str())
        .bind(v.source_path.as_str())
        .bind(v.format_type.as_str())
        .bind(v.destination_table.to_string())
        .bind(&v.options)
        .bind(&v.fields.frequency)
        .bind(&v.fields.time)
        .bind(&v.fields.timezone)
        .bind(&v.fields.cron)
        .bind(v.fields.enabled)
}

fn blank_to_none(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Validates a complete definition, collecting every problem.
fn validate(body: IngestionCreate, roots: &FileRoots) -> Result<Valid, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut problem = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.to_owned(),
            message,
        })
    };
    let mut required = |v: Option<String>, field: &str| -> Option<String> {
        let v = blank_to_none(v);
        if v.is_none() {
            problem(field, format!("{field} is required"));
        }
        v
    };
    let raw_name_problem = body.name.as_deref().and_then(|n| check_name(n).err());
    let name = required(body.name, "name");
    let source_type = required(body.source_type, "source_type");
    let source_path = required(body.source_path, "source_path");
    let format_type = required(body.format_type, "format_type");
    let destination_table = required(body.destination_table, "destination_table");
    let mut problem = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.to_owned(),
            message,
        })
    };

    if let Some(m) = raw_name_problem {
        problem("name", m);
    }
    let source_type = source_type.and_then(|s| {
        SourceType::parse(&s)
            .map_err(|m| problem("source_type", m))
            .ok()
    });
    let source_path = match (source_type, source_path) {
        (Some(t), Some(p)) => SourcePath::parse(t, &p)
            .map_err(|m| problem("source_path", m))
            .ok(),
        _ => None,
    };
    let format_type = format_type.and_then(|s| {
        FormatType::parse(&s)
            .map_err(|m| problem("format_type", m))
            .ok()
    });
    let destination_table = destination_table.and_then(|s| {
        DestinationTable::parse(&s)
            .map_err(|m| problem("destination_table", m))
            .ok()
    });
    let options = match body.options {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => {
            problem("options", "options must be a JSON object".into());
            Value::Null
        }
    };
    if let (Some(t), Some(f), Value::Object(_)) = (source_type, format_type, &options) {
        if let Err(problems) = IngestOptions::parse(&options, t, f) {
            for p in problems {
                problem(&p.field, p.message);
            }
        }
    }
    if let (Some(SourceType::Local), Some(p)) = (source_type, &source_path) {
        if let Err(m) = roots.resolve(p) {
            problem("source_path", m);
        }
    }
    let status = match body.status.as_deref().map(str::trim) {
        None | Some("ACTIVE") => "ACTIVE",
        Some("PAUSED") => "PAUSED",
        Some(other) => {
            problem(
                "status",
                format!("status must be ACTIVE or PAUSED (got '{other}')"),
            );
            "ACTIVE"
        }
    };
    let fields = ScheduleFields {
        frequency: blank_to_none(body.schedule_frequency),
        time: blank_to_none(body.schedule_time),
        timezone: blank_to_none(body.schedule_timezone).or_else(|| Some("UTC".to_owned())),
        cron: blank_to_none(body.schedule_cron),
        enabled: body.schedule_enabled.unwrap_or(false),
    };
    let schedule = match fields.validate() {
        Ok(s) => s,
        Err(problems) => {
            errors.extend(problems.into_iter().map(FieldError::from));
            None
        }
    };
    match (
        name,
        source_type,
        source_path,
        format_type,
        destination_table,
    ) {
        (
            Some(name),
            Some(source_type),
            Some(source_path),
            Some(format_type),
            Some(destination_table),
        ) if errors.is_empty() => Ok(Valid {
            name,
            description: body.description,
            status,
            source_type,
            source_path,
            format_type,
            destination_table,
            options,
            schedule,
            fields,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

fn conflict_on_name(e: sqlx::Error, name: &str) -> ApiError {
    match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("ingestions_name_unique_per_tenant") => {
            ApiError::Conflict {
                detail: format!("an ingestion named '{name}' already exists"),
                field: Some("name"),
                active_run_id: None,
            }
        }
        _ => ApiError::from(e),
    }
}

/// After a write that changed the schedule: works out the next tick from the database's clock and
/// stores it, so the response shows `next_run_time` at once. Never fires a run.
async fn store_next_tick(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    schedule: Option<&Schedule>,
    live: bool,
) -> ApiResult<()> {
    let Some(schedule) = schedule.filter(|_| live) else {
        return Ok(());
    };
    let now: DateTime<Utc> = sqlx::query_scalar("select now()")
        .fetch_one(&mut **tx)
        .await?;
    // A validated schedule always fires again; if not, the tick stays marked for a ticker.
    let Some(next) = schedule.next_after(now) else {
        return Ok(());
    };
    sqlx::query(
        "with t as (
             update schedule_ticks set next_fire_at = $2, recompute = false, updated_at = now()
             where ingestion_id = $1
         )
         update ingestions set next_run_time = $2 where id = $1",
    )
    .bind(id)
    .bind(next)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn fetch(pool: &sqlx::PgPool, tenant: Uuid, id: Uuid) -> ApiResult<IngestionRow> {
    sqlx::query_as::<_, IngestionRow>(&format!(
        "select {COLUMNS} from ingestions where id = $1 and tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(pool)
    .await?
    .ok_or(ApiError::NotFound("ingestion"))
}

#[utoipa::path(post, path = "/api/v1/ingestions", tag = "ingestions", request_body = IngestionCreate,
    responses((status = 201, body = IngestionResponse), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiJson(body): ApiJson<IngestionCreate>,
) -> ApiResult<Response> {
    let v = validate(body, &state.file_roots)?;
    let id = Uuid::now_v7();
    let mut tx = state.pool.begin().await?;
    let insert = sqlx::query(
        "insert into ingestions (id, tenant_id, name, description, status, source_type, source_path, format_type,
                                 destination_table, options, schedule_frequency, schedule_time, schedule_timezone,
                                 schedule_cron, schedule_enabled)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    );
    bind_definition(insert, id, tenant, &v)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_name(e, &v.name))?;
    store_next_tick(
        &mut tx,
        id,
        v.schedule.as_ref(),
        v.fields.enabled && v.status == "ACTIVE",
    )
    .await?;
    tx.commit().await?;
    tracing::info!(ingestion_id = %id, tenant_id = %tenant, name = %v.name, "ingestion created");
    let row = fetch(&state.pool, tenant, id).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/ingestions/{id}"))],
        Json(IngestionResponse::from(row)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/ingestions/{id}", tag = "ingestions", params(("id" = Uuid, Path)),
    responses((status = 200, body = IngestionResponse), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<IngestionResponse>> {
    Ok(Json(fetch(&state.pool, tenant, id).await?.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    page: Option<String>,
    page_size: Option<String>,
    status: Option<String>,
    schedule_enabled: Option<String>,
    name: Option<String>,
}

/// Parses `page` and `page_size` (1-based; size 1 to 200, default 50).
pub fn paging(page: Option<&str>, page_size: Option<&str>) -> ApiResult<(i64, i64)> {
    let mut errors = Vec::new();
    let page = match page.map(str::parse::<i64>) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        _ => {
            errors.push(FieldError {
                field: "page".into(),
                message: "page must be a whole number from 1".into(),
            });
            1
        }
    };
    let size = match page_size.map(str::parse::<i64>) {
        None => 50,
        Some(Ok(s)) if (1..=200).contains(&s) => s,
        _ => {
            errors.push(FieldError {
                field: "page_size".into(),
                message: "page_size must be a whole number from 1 to 200".into(),
            });
            50
        }
    };
    if errors.is_empty() {
        Ok((page, size))
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[utoipa::path(get, path = "/api/v1/ingestions", tag = "ingestions",
    params(("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query), ("status" = Option<String>, Query),
           ("schedule_enabled" = Option<bool>, Query), ("name" = Option<String>, Query, description = "substring")),
    responses((status = 200, body = Page<IngestionResponse>), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<IngestionResponse>>> {
    let (page, page_size) = paging(q.page.as_deref(), q.page_size.as_deref())?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s @ ("ACTIVE" | "PAUSED")) => Some(s.to_owned()),
        Some(other) => {
            return Err(ApiError::field(
                "status",
                format!("status must be ACTIVE or PAUSED (got '{other}')"),
            ))
        }
    };
    let enabled = match q.schedule_enabled.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::field(
                "schedule_enabled",
                "schedule_enabled must be true or false",
            ))
        }
    };
    let filter = "tenant_id = $1 and ($2::text is null or status = $2) and ($3::bool is null or schedule_enabled = $3)
                  and ($4::text is null or name ilike '%' || $4 || '%')";
    let total: i64 = sqlx::query_scalar(&format!("select count(*) from ingestions where {filter}"))
        .bind(tenant)
        .bind(&status)
        .bind(enabled)
        .bind(&q.name)
        .fetch_one(&state.pool)
        .await?;
    let rows = sqlx::query_as::<_, IngestionRow>(&format!(
        "select {COLUMNS} from ingestions where {filter} order by created_at, id limit $5 offset $6"
    ))
    .bind(tenant)
    .bind(&status)
    .bind(enabled)
    .bind(&q.name)
    .bind(page_size)
    .bind((page - 1).saturating_mul(page_size))
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Page {
        items: rows.into_iter().map(Into::into).collect(),
        total,
        page,
        page_size,
    }))
}

/// Writes a validated definition over an existing ingestion.
async fn overwrite(
    state: &AppState,
    tenant: Uuid,
    id: Uuid,
    before: &IngestionRow,
    v: Valid,
) -> ApiResult<IngestionRow> {
    let schedule_changed = before.schedule_frequency != v.fields.frequency
        || before.schedule_time != v.fields.time
        || Some(&before.schedule_timezone) != v.fields.timezone.as_ref()
        || before.schedule_cron != v.fields.cron
        || before.schedule_enabled != v.fields.enabled
        || before.status != v.status;
    let mut tx = state.pool.begin().await?;
    let update = sqlx::query(
        "update ingestions set name = $3, description = $4, status = $5, source_type = $6, source_path = $7,
                format_type = $8, destination_table = $9, options = $10, schedule_frequency = $11,
                schedule_time = $12, schedule_timezone = $13, schedule_cron = $14, schedule_enabled = $15,
                updated_at = now()
         where id = $1 and tenant_id = $2",
    );
    let updated = bind_definition(update, id, tenant, &v)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_name(e, &v.name))?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::NotFound("ingestion"));
    }
    if schedule_changed {
        store_next_tick(
            &mut tx,
            id,
            v.schedule.as_ref(),
            v.fields.enabled && v.status == "ACTIVE",
        )
        .await?;
    }
    tx.commit().await?;
    // Before answering: the client's next read must see this write.
    state.schedules.invalidate(id);
    tracing::info!(ingestion_id = %id, tenant_id = %tenant, schedule_changed, "ingestion updated");
    fetch(&state.pool, tenant, id).await
}

#[utoipa::path(put, path = "/api/v1/ingestions/{id}", tag = "ingestions", params(("id" = Uuid, Path)),
    request_body = IngestionCreate,
    responses((status = 200, body = IngestionResponse), (status = 404, body = Problem), (status = 409, body = Problem, description = "the new name is taken"), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<IngestionCreate>,
) -> ApiResult<Json<IngestionResponse>> {
    let before = fetch(&state.pool, tenant, id).await?;
    let v = validate(body, &state.file_roots)?;
    Ok(Json(
        overwrite(&state, tenant, id, &before, v).await?.into(),
    ))
}

/// A stored ingestion as a full request body, for PATCH to merge into. Secret options are kept
/// as stored (the client never sees them, so it cannot send them back).
fn as_body(r: &IngestionRow) -> IngestionCreate {
    IngestionCreate {
        name: Some(r.name.clone()),
        description: r.description.clone(),
        source_type: Some(r.source_type.clone()),
        source_path: Some(r.source_path.clone()),
        format_type: Some(r.format_type.clone()),
        destination_table: Some(r.destination_table.clone()),
        options: Some(r.options.clone()),
        schedule_frequency: r.schedule_frequency.clone(),
        schedule_time: r.schedule_time.clone(),
        schedule_timezone: Some(r.schedule_timezone.clone()),
        schedule_cron: r.schedule_cron.clone(),
        schedule_enabled: Some(r.schedule_enabled),
        status: Some(r.status.clone()),
    }
}

#[utoipa::path(patch, path = "/api/v1/ingestions/{id}", tag = "ingestions", params(("id" = Uuid, Path)),
    request_body = IngestionPatch,
    responses((status = 200, body = IngestionResponse), (status = 404, body = Problem), (status = 409, body = Problem, description = "the new name is taken"), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(p): ApiJson<IngestionPatch>,
) -> ApiResult<Json<IngestionResponse>> {
    let before = fetch(&state.pool, tenant, id).await?;
    let mut body = as_body(&before);
    macro_rules! set {
        ($f:ident) => {
            if let Some(v) = p.$f {
                body.$f = Some(v);
            }
        };
    }
    set!(name);
    set!(source_type);
    set!(source_path);
    set!(format_type);
    set!(destination_table);
    set!(schedule_timezone);
    set!(schedule_enabled);
    set!(status);
    if let Some(o) = p.options {
        body.options = Some(o);
    }
    if let Some(v) = p.description {
        body.description = v;
    }
    if let Some(v) = p.schedule_frequency {
        body.schedule_frequency = v;
    }
    if let Some(v) = p.schedule_time {
        body.schedule_time = v;
    }
    if let Some(v) = p.schedule_cron {
        body.schedule_cron = v;
    }
    let v = validate(body, &state.file_roots)?;
    Ok(Json(
        overwrite(&state, tenant, id, &before, v).await?.into(),
    ))
}

/// Deletes the ingestion, its schedule and its run history (they have no meaning without it).
#[utoipa::path(delete, path = "/api/v1/ingestions/{id}", tag = "ingestions", params(("id" = Uuid, Path)),
    responses((status = 204, description = "deleted with its schedule and run history"), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let deleted = sqlx::query("delete from ingestions where id = $1 and tenant_id = $2")
        .bind(id)
        .bind(tenant)
        .execute(&state.pool)
        .await?;
    state.schedules.invalidate(id);
    if deleted.rows_affected() == 0 {
        return Err(ApiError::NotFound("ingestion"));
    }
    tracing::info!(ingestion_id = %id, tenant_id = %tenant, "ingestion deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The columns the schedule view needs, whatever the tenant (the caller checks it).
#[derive(sqlx::FromRow)]
struct ScheduleRow {
    tenant_id: Uuid,
    schedule_frequency: Option<String>,
    schedule_time: Option<String>,
    schedule_timezone: String,
    schedule_cron: Option<String>,
    schedule_enabled: bool,
    next_run_time: Option<chrono::DateTime<Utc>>,
}

async fn fetch_schedule(pool: &sqlx::PgPool, id: Uuid) -> ApiResult<ScheduleRow> {
    sqlx::query_as::<_, ScheduleRow>(
        "select tenant_id, schedule_frequency, schedule_time, schedule_timezone, schedule_cron,
                schedule_enabled, next_run_time
         from ingestions where id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(ApiError::NotFound("ingestion"))
}

/// The stored schedule, parsed as the ticker parses it; `None` when the fields hold none.
fn stored_schedule(r: &ScheduleRow) -> Option<Schedule> {
    Schedule::parse(&ScheduleInput {
        frequency: r.schedule_frequency.as_deref(),
        time: r.schedule_time.as_deref(),
        timezone: Some(r.schedule_timezone.as_str()),
        cron: r.schedule_cron.as_deref(),
    })
    .ok()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountQuery {
    count: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/ingestions/{id}/schedule", tag = "schedules",
    params(("id" = Uuid, Path), ("count" = Option<i64>, Query, description = "1 to 100, default 5")),
    responses((status = 200, body = ScheduleInfoResponse), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn schedule_info(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<CountQuery>,
) -> ApiResult<Json<ScheduleInfoResponse>> {
    let count = parse_count(q.count.as_deref())?;
    let now = Utc::now();
    let view = match state.schedules.get(id, now) {
        Some(v) => v,
        None => {
            let epoch = state.schedules.epoch();
            let row = fetch_schedule(&state.pool, id).await?;
            let view = Arc::new(ScheduleView {
                tenant_id: row.tenant_id,
                enabled: row.schedule_enabled,
                schedule: stored_schedule(&row),
                frequency: row.schedule_frequency,
                timezone: row.schedule_timezone,
                next_run_time: row.next_run_time,
            });
            state.schedules.put(id, view.clone(), epoch);
            view
        }
    };
    // Another tenant's ingestion is as absent as one that does not exist.
    if view.tenant_id != tenant {
        return Err(ApiError::NotFound("ingestion"));
    }
    let (upcoming_runs, upcoming_runs_local) = match &view.schedule {
        Some(s) => upcoming(s, now, count),
        None => (Vec::new(), Vec::new()),
    };
    Ok(Json(ScheduleInfoResponse {
        enabled: view.enabled,
        frequency: view.frequency.clone(),
        cron_expression: view
            .schedule
            .as_ref()
            .map(|s| s.cron_expression().to_owned()),
        timezone: view.timezone.clone(),
        next_run_time: view.next_run_time,
        upcoming_runs,
        upcoming_runs_local,
    }))
}

async fn set_enabled(
    state: &AppState,
    tenant: Uuid,
    id: Uuid,
    enabled: bool,
) -> ApiResult<IngestionRow> {
    let before = fetch(&state.pool, tenant, id).await?;
    let mut body = as_body(&before);
    body.schedule_enabled = Some(enabled);
    let v = validate(body, &state.file_roots)?;
    overwrite(state, tenant, id, &before, v).await
}

#[utoipa::path(post, path = "/api/v1/ingestions/{id}/schedule/enable", tag = "schedules", params(("id" = Uuid, Path)),
    responses((status = 200, body = IngestionResponse), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn enable(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<IngestionResponse>> {
    Ok(Json(set_enabled(&state, tenant, id, true).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/ingestions/{id}/schedule/disable", tag = "schedules", params(("id" = Uuid, Path)),
    responses((status = 200, body = IngestionResponse), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn disable(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<IngestionResponse>> {
    Ok(Json(set_enabled(&state, tenant, id, false).await?.into()))
}
