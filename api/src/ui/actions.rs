//! The actions on one ingestion: run now, enable, disable with a reason, retry rejected files,
//! cancel a queued run. Each is a form POST carrying the CSRF token; each calls the API's own
//! handler for the signed-in token, so the checks, the audit trail and the refusals (the 409 of
//! a run already active, the 404 of another tenant's ingestion) are the API's. The answer is the
//! ingestion's page with the outcome in `#action-message`, under the refusal's status.

use std::future::Future;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use uuid::Uuid;

use super::detail::{self, Outcome};
use super::layout;
use super::session::UiSession;
use super::Refusal;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::model::RetryRequest;
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// Shows the ingestion's page with the outcome of `result`.
async fn answer<T>(
    state: &AppState,
    session: &UiSession,
    id: Uuid,
    result: Result<T, ApiError>,
    ok: impl FnOnce(T) -> String,
) -> Response {
    match result {
        Ok(v) => detail::show(state, session, id, StatusCode::OK, Some(Outcome::ok(ok(v)))).await,
        Err(e) => {
            let r = Refusal::of(e).await;
            detail::show(
                state,
                session,
                id,
                r.status_code(),
                Some(Outcome::refused(&r)),
            )
            .await
        }
    }
}

/// One action on ingestion `id`: the CSRF check, then `call` with the session's caller (an admin
/// session gets the API's refusal), then the ingestion's page with the outcome.
async fn act<T, Fut>(
    state: &AppState,
    session: &UiSession,
    headers: &HeaderMap,
    csrf: Option<&str>,
    id: Uuid,
    call: impl FnOnce(AppState, Caller) -> Fut,
    ok: impl FnOnce(T) -> String,
) -> Response
where
    Fut: Future<Output = Result<T, ApiError>>,
{
    if let Some(refused) = session.csrf_refusal(headers, csrf) {
        return refused;
    }
    let result = match session.caller() {
        Ok(caller) => call(state.clone(), caller).await,
        Err(e) => Err(e),
    };
    answer(state, session, id, result, ok).await
}

pub async fn run_now(
    State(state): State<AppState>,
    session: UiSession,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    Form(form): Form<ActionForm>,
) -> Response {
    let call = |s, caller| crate::runs::trigger(State(s), caller, ApiPath(id));
    act(
        &state,
        &session,
        &headers,
        form.csrf.as_deref(),
        id,
        call,
        |_| "Run queued.".to_owned(),
    )
    .await
}

pub async fn enable(
    State(state): State<AppState>,
    session: UiSession,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    Form(form): Form<ActionForm>,
) -> Response {
    let call = |s, caller| crate::ingestions::enable(State(s), caller, ApiPath(id));
    act(
        &state,
        &session,
        &headers,
        form.csrf.as_deref(),
        id,
        call,
        |_| "Schedule enabled.".to_owned(),
    )
    .await
}

pub async fn disable(
    State(state): State<AppState>,
    session: UiSession,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    Form(form): Form<ActionForm>,
) -> Response {
    // The API's own body, so its checks of the reason (length, NUL) apply as they are.
    let body = serde_json::json!({ "reason": form.reason.unwrap_or_default() }).to_string();
    let call = |s, caller| crate::ingestions::disable(State(s), caller, ApiPath(id), body.into());
    act(
        &state,
        &session,
        &headers,
        form.csrf.as_deref(),
        id,
        call,
        |row| match &row.0.paused_reason {
            Some(reason) => format!("Schedule disabled: {reason}"),
            None => "Schedule disabled.".to_owned(),
        },
    )
    .await
}

pub async fn retry(
    State(state): State<AppState>,
    session: UiSession,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    Form(form): Form<ActionForm>,
) -> Response {
    let call = |s, caller| {
        crate::files::retry(
            State(s),
            caller,
            ApiPath(id),
            ApiJson(RetryRequest { paths: None }),
        )
    };
    act(
        &state,
        &session,
        &headers,
        form.csrf.as_deref(),
        id,
        call,
        |r| match r.0.count {
            0 => "There were no rejected files to retry.".to_owned(),
            1 => "1 rejected file will be read again at the next run.".to_owned(),
            n => format!("{n} rejected files will be read again at the next run."),
        },
    )
    .await
}

pub async fn cancel(
    State(state): State<AppState>,
    session: UiSession,
    headers: HeaderMap,
    ApiPath(run_id): ApiPath<Uuid>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = session.csrf_refusal(&headers, form.csrf.as_deref()) {
        return refused;
    }
    let caller = match session.caller() {
        Ok(c) => c,
        Err(e) => {
            let r = Refusal::of(e).await;
            return layout::error_page(Some(&session), r.status_code(), &r.detail);
        }
    };
    // The run's ingestion, to show its page; another tenant's run is as absent as none.
    let run = match autoloader::runs::history::run_get(&state.pool, caller.tenant, run_id).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            return layout::error_page(Some(&session), StatusCode::NOT_FOUND, "run not found")
        }
        Err(e) => {
            let r = Refusal::of(e.into()).await;
            return layout::error_page(Some(&session), r.status_code(), &r.detail);
        }
    };
    let result = crate::runs::cancel(State(state.clone()), caller, ApiPath(run_id)).await;
    answer(&state, &session, run.ingestion_id, result, |_| {
        "Run cancelled.".to_owned()
    })
    .await
}
