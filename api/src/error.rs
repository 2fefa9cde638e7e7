//! The one error type of the API. Every 4xx and 5xx leaves as `application/problem+json`
//! (RFC 9457) with a stable `type`, a human `detail`, and for validation a list of
//! `{field, message}`. A 500 says nothing internal: its cause is logged once, here, with the
//! request id, and the body carries only that id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use autoloader::ingestions::definition::FieldProblem;
use autoloader::ingestions::draft::Problem as DraftProblem;
use autoloader::ingestions::store;

/// One problem with one field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The request field at fault, as the client spelled it (`schedule_time`, `options.delimiter`).
    pub field: String,
    pub message: String,
}

impl From<FieldProblem> for FieldError {
    fn from(p: FieldProblem) -> Self {
        FieldError {
            field: p.field.to_owned(),
            message: p.message,
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For 409s about an active run: the run in the way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_run_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    BadRequest {
        detail: String,
        field: Option<String>,
    },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict {
        detail: String,
        field: Option<&'static str>,
        active_run_id: Option<Uuid>,
    },
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A quota (403) or a rate limit (429, with the seconds to wait).
    #[error("{detail}")]
    Quota {
        detail: String,
        field: Option<&'static str>,
        retry_after_secs: Option<u64>,
    },
    /// Work handed to the workers was not answered in time (a dry run): 504.
    #[error("{0}")]
    Timeout(String),
    /// The database cannot be reached (a failover, a restart, a network cut): 503 with
    /// Retry-After, so clients and load balancers try again instead of paging anyone.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> ApiError {
        ApiError::Internal(e.into())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if autoloader::db::unavailable(&e) {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e.into())
        }
    }
}

/// Seconds a client is told to wait before trying again while the database is away.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

impl From<Vec<FieldProblem>> for ApiError {
    fn from(problems: Vec<FieldProblem>) -> Self {
        ApiError::Validation(problems.into_iter().map(FieldError::from).collect())
    }
}

impl From<Vec<DraftProblem>> for ApiError {
    fn from(problems: Vec<DraftProblem>) -> Self {
        ApiError::Validation(
            problems
                .into_iter()
                .map(|p| FieldError {
                    field: p.field,
                    message: p.message,
                })
                .collect(),
        )
    }
}

impl From<Vec<(&'static str, String)>> for ApiError {
    fn from(problems: Vec<(&'static str, String)>) -> Self {
        ApiError::Validation(
            problems
                .into_iter()
                .map(|(field, message)| FieldError {
                    field: field.to_owned(),
                    message,
                })
                .collect(),
        )
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NameTaken(_) => ApiError::Conflict {
                detail: e.to_string(),
                field: Some("name"),
                active_run_id: None,
            },
            store::Error::NotFound => ApiError::NotFound("ingestion"),
            store::Error::Quota { .. } => ApiError::Quota {
                detail: e.to_string(),
                field: None,
                retry_after_secs: None,
            },
            store::Error::Db(e) => e.into(),
        }
    }
}

impl From<autoloader::tenants::Error> for ApiError {
    fn from(e: autoloader::tenants::Error) -> Self {
        match e {
            autoloader::tenants::Error::NameTaken(_) => ApiError::Conflict {
                detail: e.to_string(),
                field: Some("name"),
                active_run_id: None,
            },
            autoloader::tenants::Error::NamespaceTaken(_) => ApiError::Conflict {
                detail: e.to_string(),
                field: Some("namespace"),
                active_run_id: None,
            },
            autoloader::tenants::Error::Db(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = match &self {
            ApiError::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/validation",
                "Invalid request",
            ),
            ApiError::BadRequest { .. } => (
                StatusCode::BAD_REQUEST,
                "/problems/bad-request",
                "Malformed request",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "/problems/unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "/problems/payload-too-large",
                "Request too large",
            ),
            ApiError::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "/problems/unauthorized",
                "Unauthorized",
            ),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "/problems/forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "/problems/not-found", "Not found"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "/problems/conflict", "Conflict"),
            ApiError::Quota {
                retry_after_secs: None,
                ..
            } => (StatusCode::FORBIDDEN, "/problems/quota", "Quota exceeded"),
            ApiError::Quota { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "/problems/quota",
                "Too many requests",
            ),
            ApiError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "/problems/method-not-allowed",
                "Method not allowed",
            ),
            ApiError::Timeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "/problems/no-worker-answered",
                "No worker answered",
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/database-unavailable",
                "Database unavailable",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "/problems/internal",
                "Internal error",
            ),
        };
        let mut errors = Vec::new();
        let mut active_run_id = None;
        let mut retry_after = None;
        let detail = match self {
            ApiError::Validation(list) => {
                let detail = list
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                errors = list;
                detail
            }
            ApiError::BadRequest { detail, field } => {
                if let Some(field) = field {
                    errors.push(FieldError {
                        field,
                        message: detail.clone(),
                    });
                }
                detail
            }
            ApiError::Conflict {
                detail,
                field,
                active_run_id: run,
            } => {
                if let Some(field) = field {
                    errors.push(FieldError {
                        field: field.to_owned(),
                        message: detail.clone(),
                    });
                }
                active_run_id = run;
                detail
            }
            ApiError::Quota {
                detail,
                field,
                retry_after_secs,
            } => {
                if let Some(field) = field {
                    errors.push(FieldError {
                        field: field.to_owned(),
                        message: detail.clone(),
                    });
                }
                retry_after = retry_after_secs;
                detail
            }
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %e, "answering 503: the database is unavailable");
                retry_after = Some(UNAVAILABLE_RETRY_AFTER_SECS);
                "the database cannot be reached just now (a failover or a restart); try again shortly"
                    .to_owned()
            }
            ApiError::Internal(e) => {
                // The request id is on the current span (see `app`), so this line carries it.
                tracing::error!(
                    error = format!("{e:#}"),
                    "internal error answering a request"
                );
                "the server failed to answer this request; the error is logged with this request's id".to_owned()
            }
            ApiError::PayloadTooLarge => {
                "the request body is larger than the API accepts".to_owned()
            }
            ApiError::UnsupportedMediaType => {
                "send the request body as application/json".to_owned()
            }
            other => other.to_string(),
        };
        let body = Problem {
            kind,
            title,
            status: status.as_u16(),
            detail,
            errors,
            active_run_id,
        };
        let mut res = (status, axum::Json(body)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
