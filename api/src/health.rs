//! Liveness and readiness.
//!
//! `/healthz` answers while the process runs, whatever the database does, so an orchestrator
//! does not restart a healthy API during a database blip. `/readyz` says whether this process
//! can serve requests: the database answers and the schema is at the version this binary expects.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match autoloader::db::migrations_applied(&state.pool).await {
        Ok(true) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "detail": "database migrations are pending" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check cannot reach the database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not ready", "detail": "database unreachable" })),
            )
        }
    }
}
