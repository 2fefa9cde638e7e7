//! Autoloader's admin API as a library: `app(state)` builds the whole router, so tests serve
//! exactly what the `autoloader-api` binary serves.
//!
//! Handlers are thin: they parse the request (`extract`), call the core (`autoloader::*`: the
//! model and the one home of every statement), and map its errors (`error`). One module per
//! resource, each with its own `router()`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod dry_runs;
pub mod error;
pub mod extract;
pub mod files;
pub mod health;
pub mod ingestions;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod page;
pub mod rules;
pub mod runs;
pub mod schedule_cache;
pub mod schedules;
pub mod state;
pub mod stats;
pub mod tables;
pub mod ui;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, Request};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
pub use crate::state::AppState;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(ingestions::router())
        .merge(dry_runs::router())
        .merge(runs::router())
        .merge(files::router())
        .merge(tables::router())
        .merge(stats::router())
        .merge(schedules::router())
        .merge(admin::router())
        .merge(audit::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .merge(ui::router())
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
