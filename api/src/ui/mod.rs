//! The dashboard at `/ui`: server-rendered pages (maud templates, checked at compile time) for a
//! tenant, or with the admin token across tenants, and the few fragments and endpoints their
//! script fetches.
//!
//! Pages read through the core's stores and act through the API's own handlers (called as
//! functions, never over HTTP), so a tenant sees and changes exactly what its token may through
//! the API, and refusals carry the API's messages. The page contract (URLs, element ids, the
//! cookie) is in docs/ARCHITECTURE.md ("The dashboard").
//!
//! Every response under `/ui` carries `Content-Security-Policy: default-src 'self'` (no inline
//! script or style: the CSRF token travels in a meta tag), `X-Frame-Options: DENY` and a
//! `Referrer-Policy`; pages are `no-store`, assets are immutable under a content-hashed URL.

pub mod actions;
pub mod assets;
pub mod detail;
pub mod fleet;
pub mod form;
pub mod layout;
pub mod list;
pub mod live;
pub mod login;
pub mod session;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/ingestions") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/ingestions") }))
        .route("/ui/login", get(login::page).post(login::sign_in))
        .route("/ui/logout", post(login::sign_out))
        .route("/ui/ingestions", get(list::page).post(form::create))
        .route("/ui/ingestions/new", get(form::new_page))
        .route("/ui/ingestions/{id}", get(detail::page).post(form::update))
        .route("/ui/ingestions/{id}/edit", get(form::edit_page))
        .route("/ui/ingestions/{id}/runs", get(detail::runs_fragment))
        .route("/ui/ingestions/{id}/run", post(actions::run_now))
        .route("/ui/ingestions/{id}/enable", post(actions::enable))
        .route("/ui/ingestions/{id}/disable", post(actions::disable))
        .route("/ui/ingestions/{id}/retry", post(actions::retry))
        .route("/ui/runs/{run_id}/cancel", post(actions::cancel))
        .route("/ui/schedule-preview", get(form::preview))
        .route("/ui/fleet", get(fleet::page))
        .route("/ui/events", get(live::events))
        .route("/ui/assets/{file}", get(assets::serve))
        .layer(middleware::from_fn(security_headers))
}

/// The policy every `/ui` response carries: only this origin's scripts, styles and images, no
/// framing, no plugins, forms posting only here.
pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                       form-action 'self'; object-src 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let asset = req.uri().path().starts_with("/ui/assets/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !asset && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// An API refusal as the dashboard shows it: status, title, detail and the field messages.
#[derive(Debug, Clone, Default)]
pub struct Refusal {
    pub status: u16,
    pub title: String,
    pub detail: String,
    /// (field, message), as the API names them.
    pub errors: Vec<(String, String)>,
}

impl Refusal {
    /// The API's answer to `e`, read from the very problem document the API would send (a 500
    /// is logged there, once).
    pub async fn of(e: ApiError) -> Refusal {
        let res = e.into_response();
        let status = res.status().as_u16();
        let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let errors = v["errors"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or_default().to_owned(),
                            e["message"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Refusal {
            status,
            title: text("title"),
            detail: text("detail"),
            errors,
        }
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The message for `field`, if the API named it.
    pub fn for_field(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field || f.starts_with(&format!("{field}.")))
            .map(|(_, m)| m.as_str())
    }
}

/// Sign-ins with a tenant token per second, per API process.
pub const SIGN_INS_PER_SECOND: u32 = 10;

/// What the dashboard keeps per API process.
pub struct UiState {
    /// Tenant-token sign-ins (each costs a database look-up), per second.
    pub sign_ins: crate::auth::RateLimiter,
    pub live: std::sync::Arc<live::LiveHub>,
}

impl Default for UiState {
    fn default() -> Self {
        UiState {
            sign_ins: crate::auth::RateLimiter::new(SIGN_INS_PER_SECOND),
            live: Default::default(),
        }
    }
}
