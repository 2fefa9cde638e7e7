//! Autoloader's admin API as a library: `app(state)` builds the whole router, so tests serve
//! exactly what the `autoloader-api` binary serves.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod ingestions;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod runs;
pub mod schedule_cache;
pub mod schedules;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, Request};
use axum::Router;
use sqlx::PgPool;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// SHA-256 of `AUTOLOADER_ADMIN_TOKEN`; `None` disables tenant administration.
    pub admin_token_sha256: Option<[u8; 32]>,
    pub tokens: std::sync::Arc<auth::TokenCache>,
    /// Directories local sources may read from (`AUTOLOADER_FILE_ROOTS`).
    pub file_roots: std::sync::Arc<autoloader::source::FileRoots>,
    /// Schedule views for `GET /{id}/schedule`; bypassed until [`AppState::listen`] runs.
    pub schedules: std::sync::Arc<schedule_cache::ScheduleCache>,
    /// Run totals for `/metrics`, folded scrape by scrape.
    pub runs: std::sync::Arc<metrics::RunTotals>,
}

impl AppState {
    pub fn new(pool: PgPool, admin_token: Option<&str>) -> AppState {
        AppState {
            pool,
            admin_token_sha256: admin_token.filter(|t| !t.is_empty()).map(auth::digest),
            tokens: Default::default(),
            file_roots: Default::default(),
            schedules: Default::default(),
            runs: Default::default(),
        }
    }

    /// Starts the task that keeps the schedule cache true (see [`schedule_cache`]); without it
    /// the cache is never used.
    pub fn listen(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.schedules.clone().listen(self.pool.clone()))
    }

    /// Allows local sources under `roots`.
    pub fn with_file_roots(mut self, roots: autoloader::source::FileRoots) -> AppState {
        self.file_roots = std::sync::Arc::new(roots);
        self
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(ingestions::router())
        .merge(runs::router())
        .merge(schedules::router())
        .merge(admin::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::NotFound(if uri.path().starts_with("/api/") { "resource" } else { "page" })
        })
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::MethodNotAllowed(format!("{method} is not allowed on this resource"))
        })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
