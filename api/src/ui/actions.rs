//! Actions.
use axum::response::Response;
pub async fn run_now() -> Response { t() }
pub async fn enable() -> Response { t() }
pub async fn disable() -> Response { t() }
pub async fn retry() -> Response { t() }
pub async fn cancel() -> Response { t() }
fn t() -> Response { axum::response::IntoResponse::into_response((axum::http::StatusCode::NOT_IMPLEMENTED, "soon")) }
