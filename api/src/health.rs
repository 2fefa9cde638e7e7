//! Liveness and readiness.
//!
//! `/healthz` answers while the process runs, whatever the database does, so an orchestrator
//! does not restart a healthy API during a database blip. `/readyz` says whether this process
//! can serve requests: the database answers and the schema is at the version this binary expects.
//! It answers within [`READY_WITHIN`] whatever the database does (a probe that hangs is counted
//! as failed by load balancers anyway, and holds a request open meanwhile): during a failover it
//! says 503 at once, and 200 again as soon as a connection reaches the new primary.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::time::Duration;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// How long `/readyz` waits for the database before it answers 503.
pub const READY_WITHIN: Duration = Duration::from_secs(2);

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let check = autoloader::db::migrations_applied(&state.pool);
    let Ok(answer) = tokio::time::timeout(READY_WITHIN, check).await else {
        tracing::warn!(
            "readiness check: the database did not answer within {}s",
            READY_WITHIN.as_secs()
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "detail": "database unreachable" })),
        );
    };
    match answer {
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
