//! Autoloader's admin API as a library: `app(state)` builds the whole router, so tests serve
//! exactly what the `autoloader-api` binary serves.
#![forbid(unsafe_code)]

pub mod health;

use axum::Router;
use sqlx::PgPool;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

pub fn app(state: AppState) -> Router {
    Router::new().merge(health::router()).with_state(state)
}

/// Resolves on SIGTERM or Ctrl-C, for `axum::serve(..).with_graceful_shutdown(..)`.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
