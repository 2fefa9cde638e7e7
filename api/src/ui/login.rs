//! `GET/POST /ui/login` and `POST /ui/logout`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav};
use super::session::{self, Refused, UiSession};
use crate::AppState;

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    layout::respond(
        status,
        layout::page(
            "Sign in",
            None,
            Nav::None,
            html! {
                p { "Sign in with your tenant's API token, or with the admin token to see every tenant." }
                @if let Some(e) = error {
                    p #login-error.error role="alert" { (e) }
                }
                form #login-form method="post" action="/ui/login" {
                    label for="token" { "API token" }
                    input #token type="password" name="token" autocomplete="current-password"
                        required maxlength=(session::MAX_TOKEN_CHARS)
                        aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[error.map(|_| "login-error")];
                    button #sign-in type="submit" { "Sign in" }
                }
            },
        ),
    )
}

pub async fn page() -> Response {
    login_page(StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: Option<String>,
}

pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let secure = session::secure(&headers);
    match session::sign_in(&state, form.token.as_deref().unwrap_or(""), secure).await {
        Ok(cookie) => {
            let mut res = Redirect::to("/ui/ingestions").into_response();
            res.headers_mut().append(header::SET_COOKIE, cookie);
            res
        }
        Err(Refused::Token(status, message)) => login_page(status, Some(message)),
        Err(Refused::Internal(e)) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct SignOut {
    csrf: Option<String>,
}

pub async fn sign_out(
    State(state): State<AppState>,
    session: UiSession,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    if let Some(refused) = session.csrf_refusal(&headers, form.csrf.as_deref()) {
        return refused;
    }
    if let Err(e) =
        autoloader::ui_sessions::ui_session_delete(&state.pool, &session.id_sha256).await
    {
        return crate::error::ApiError::from(e).into_response();
    }
    session::signed_out(
        Redirect::to("/ui/login").into_response(),
        session::secure(&headers),
    )
}
