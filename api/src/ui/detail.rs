//! `GET /ui/ingestions/{id}`: one ingestion.
use axum::extract::State;
use axum::response::Response;
use super::session::UiSession;
use crate::extract::ApiPath;
use crate::AppState;
use uuid::Uuid;

pub async fn page(State(_state): State<AppState>, _s: UiSession, ApiPath(_id): ApiPath<Uuid>) -> Response { todo_page() }
pub async fn runs_fragment(State(_state): State<AppState>, _s: UiSession, ApiPath(_id): ApiPath<Uuid>) -> Response { todo_page() }
fn todo_page() -> Response { axum::response::IntoResponse::into_response((axum::http::StatusCode::NOT_IMPLEMENTED, "soon")) }
