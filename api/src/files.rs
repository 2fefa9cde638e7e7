//! An ingestion's files: its ledger, paged by cursor in path order, and retrying the files runs
//! rejected (`options.on_error` `skip_file`).
//!
//! A rejected file stays in the ledger, so runs leave it alone; retrying deletes its row, and the
//! next run lists it as new. Only rejected rows are ever deleted here: a loaded file's rows are in
//! the table, and loading it again would duplicate them. Scoped to the caller's tenant like every
//! per-ingestion endpoint: another tenant's ingestion is 404.

use std::collections::HashSet;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use autoloader::ingestions::store::ingestion_exists;
use autoloader::ledger::{self, FileStatus, Retried, MAX_PATH_BYTES};
use autoloader::paging::{encode_cursor, KeysetRequest, MAX_LIMIT};

use crate::auth::{Caller, Tenant};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::model::{FilePage, FileStatusName, RetryRequest, RetryResponse};
use crate::AppState;

/// Most files one retry request names.
pub const MAX_RETRY_PATHS: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ingestions/{id}/files", get(list))
        .route("/api/v1/ingestions/{id}/files/retry", post(retry))
}

async fn ingestion_found(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<()> {
    if ingestion_exists(&state.pool, tenant, id).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound("ingestion"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

// The document's bounds, written as literals in the attributes below and on `RetryRequest`.
const _: () = assert!(MAX_LIMIT == 1000 && MAX_RETRY_PATHS == 1000);

/// The ingestion's ledger in path order: every file a run loaded or rejected. Follow
/// `next_cursor` until it is null to read it all; a cursor neither skips nor repeats a file when
/// runs add files or retries remove them meanwhile.
#[utoipa::path(get, path = "/api/v1/ingestions/{id}/files", tag = "files", operation_id = "list_files",
    params(("id" = Uuid, Path),
           ("status" = Option<FileStatusName>, Query, description = "only files of this status"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "files per page, 1 to 1000 (default 100)"),
           ("cursor" = Option<String>, Query, pattern = r"^[A-Za-z0-9_-]+$",
            description = "the previous page's `next_cursor`, as it was given; omitted: the first page")),
    responses((status = 200, body = FilePage), (status = 404, body = Problem),
              (status = 422, body = Problem, description = "a bad `status`, `limit` or `cursor`; `errors` names it")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<FilePage>> {
    // Every problem of the query at once.
    let mut errors = Vec::new();
    let status = match q.status.as_deref().map(FileStatus::parse) {
        None => None,
        Some(Ok(status)) => Some(status),
        Some(Err(message)) => {
            errors.push(FieldError {
                field: "status".to_owned(),
                message,
            });
            None
        }
    };
    let page = KeysetRequest::parse(q.cursor.as_deref(), q.limit.as_deref()).map_err(|problems| {
        errors.extend(problems.into_iter().map(|(field, message)| FieldError {
            field: field.to_owned(),
            message,
        }))
    });
    let (Ok(page), true) = (page, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    ingestion_found(&state, tenant, id).await?;
    let (rows, next) = ledger::ledger_files(&state.pool, tenant, id, status, &page).await?;
    Ok(Json(FilePage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor: next.as_deref().map(encode_cursor),
    }))
}

/// The distinct paths a retry request names, in its order, with their index in it, each checked
/// on its own: a problem names `paths[i]`.
fn retry_paths(paths: Option<Option<Vec<String>>>) -> ApiResult<Option<Vec<(usize, String)>>> {
    let paths = match paths {
        None => return Ok(None),
        Some(None) => {
            return Err(ApiError::field(
                "paths",
                "paths must be an array of file paths; omit it to retry every rejected file",
            ))
        }
        Some(Some(paths)) => paths,
    };
    if paths.is_empty() {
        return Err(ApiError::field(
            "paths",
            "paths must name at least one file; omit it to retry every rejected file",
        ));
    }
    if paths.len() > MAX_RETRY_PATHS {
        return Err(ApiError::field(
            "paths",
            format!(
                "paths may name at most {MAX_RETRY_PATHS} files; omit it to retry every rejected file"
            ),
        ));
    }
    let mut seen = HashSet::new();
    let mut distinct = Vec::with_capacity(paths.len());
    for (i, path) in paths.into_iter().enumerate() {
        let problem = if path.is_empty() {
            Some("a path must not be empty".to_owned())
        } else if path.len() > MAX_PATH_BYTES {
            Some(format!("a path is at most {MAX_PATH_BYTES} bytes"))
        } else if path.contains('\0') {
            Some("a path must not contain the NUL character (\\u0000)".to_owned())
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(ApiError::field(format!("paths[{i}]"), message));
        }
        if seen.insert(path.clone()) {
            distinct.push((i, path));
        }
    }
    Ok(Some(distinct))
}

/// Retries rejected files: deletes their rows from the ledger, so the next run lists them as new
/// and reads them again (under incremental discovery, the next run lists the whole prefix). `{"paths": [...]}` names them (all must be rejected files of this
/// ingestion, or none is retried: 422 naming each that is not); `{}` retries every rejected
/// file. A loaded file is never retried.
#[utoipa::path(post, path = "/api/v1/ingestions/{id}/files/retry", tag = "files", operation_id = "retry_files",
    params(("id" = Uuid, Path)),
    request_body = RetryRequest,
    responses((status = 200, body = RetryResponse), (status = 404, body = Problem),
              (status = 422, body = Problem, description = "`paths[i]` is not a rejected file of this ingestion (a loaded file, or none), or `paths` is malformed; nothing was retried")),
    security(("bearer" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RetryRequest>,
) -> ApiResult<Json<RetryResponse>> {
    let tenant = caller.tenant;
    let indexed = retry_paths(body.paths)?;
    ingestion_found(&state, tenant, id).await?;
    let named: Option<Vec<String>> = indexed
        .as_ref()
        .map(|paths| paths.iter().map(|(_, p)| p.clone()).collect());
    match ledger::ledger_retry(&state.pool, tenant, id, named.as_deref(), &caller.actor()).await? {
        Retried::Retried(retried) => {
            // Under incremental discovery a retried file may sort before the keys loaded since:
            // the next run lists the whole prefix.
            if !retried.is_empty() {
                autoloader::discovery::discovery_forget(&state.pool, tenant, id).await?;
            }
            tracing::info!(ingestion_id = %id, tenant_id = %tenant, count = retried.len(), "rejected files retried");
            Ok(Json(RetryResponse {
                count: retried.len(),
                retried,
            }))
        }
        Retried::NotRejected(missing) => {
            // Each named by its index in the request as sent (a repeated path by its first).
            let indexed = indexed.unwrap_or_default();
            let errors = missing
                .into_iter()
                .filter_map(|i| indexed.get(i))
                .map(|(index, _)| FieldError {
                    field: format!("paths[{index}]"),
                    message: format!(
                        "paths[{index}] is not a rejected file of this ingestion (it is a loaded \
                         file, or none); nothing was retried"
                    ),
                })
                .collect();
            Err(ApiError::Validation(errors))
        }
    }
}
