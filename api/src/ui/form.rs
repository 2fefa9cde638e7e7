//! Forms.
use axum::response::Response;
pub async fn create() -> Response { t() }
pub async fn update() -> Response { t() }
pub async fn new_page() -> Response { t() }
pub async fn edit_page() -> Response { t() }
pub async fn preview() -> Response { t() }
fn t() -> Response { axum::response::IntoResponse::into_response((axum::http::StatusCode::NOT_IMPLEMENTED, "soon")) }
