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
