//! Extractors whose rejections are problem documents naming the field at fault, so malformed
//! JSON, a wrong type, an unknown field, a bad UUID in a path or a bad query parameter all get a
//! 4xx that says what to fix.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body the API reads.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body. Unknown fields are refused by the types themselves (`deny_unknown_fields`).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == 413 {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest {
                        detail: e.body_text(),
                        field: None,
                    }
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserialises `bytes`, turning serde's error into a problem naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body of this API is an object (or, where a body is optional, `null`). A struct would
    // also take an array of its fields in order (`[null, null]`), which no client means.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::field(
            "body",
            "the body must be a JSON object, not an array",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::BadRequest {
                    detail: format!("the body is not valid JSON: {message}"),
                    field: None,
                }
            }
            serde_json::error::Category::Io => ApiError::BadRequest {
                detail: message,
                field: None,
            },
            serde_json::error::Category::Data => {
                // For an unknown field the path already ends with it; for a missing one it is
                // the enclosing object.
                let field = match unknown_field(&message) {
                    Some(f) if path == "." => f.to_owned(),
                    Some(f) if path == f || path.ends_with(&format!(".{f}")) => path,
                    Some(f) => format!("{path}.{f}"),
                    None if path == "." => "body".to_owned(),
                    None => path,
                };
                // serde appends " at line 1 column 12"; the field name says more.
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                ApiError::field(field, message)
            }
        }
    })
}

/// serde's "unknown field `x`, expected ..." and "missing field `x`" name the field only in
/// their message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next()
}

/// A path parameter; a malformed one (say, a bad UUID) is a 400 naming the parameter.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| ApiError::BadRequest {
                detail: format!("invalid path parameter: {}", e.body_text()),
                field: Some("id".to_owned()),
            })
    }
}

/// Query parameters; a malformed one is a 400 naming it.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| {
                let text = e.body_text();
                // Query types take their values as strings and parse them in the handler, so the
                // only shape error left is a parameter the endpoint does not know.
                let field = text
                    .split("unknown field `")
                    .nth(1)
                    .and_then(|s| s.split('`').next())
                    .map(str::to_owned);
                ApiError::BadRequest {
                    detail: text,
                    field,
                }
            })
    }
}
