//! Fleet.
use axum::response::Response;
pub async fn page() -> Response { axum::response::IntoResponse::into_response((axum::http::StatusCode::NOT_IMPLEMENTED, "soon")) }
