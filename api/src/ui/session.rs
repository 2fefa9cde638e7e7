//! Signing in to the dashboard, the session cookie, and the CSRF check.
//!
//! The cookie `autoloader_session` holds a random id (244 bits, as API tokens are made); the
//! database keeps its SHA-256 only (`autoloader::ui_sessions`). Each request looks the session up
//! again, so a revoked token or a suspended tenant ends it at once. Every POST must carry the
//! session's CSRF token (form field `csrf` or header `X-CSRF-Token`), compared in constant time;
//! with `SameSite=Strict` that makes cross-site forms useless twice over.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use autoloader::tenants::TokenHolder;
use autoloader::ui_sessions::{self, Holder};

use crate::auth::{digest, new_token, Caller};
use crate::AppState;

pub const COOKIE: &str = "autoloader_session";
/// Longest token the sign-in form takes: a token is 67 characters; anything much longer is not
/// one.
pub const MAX_TOKEN_CHARS: usize = 512;

/// Whom a signed-in session acts for.
#[derive(Debug, Clone)]
pub enum Scope {
    /// A tenant's token: reads and writes as the API would for it.
    Tenant { caller: Caller, tenant_name: String },
    /// The admin token: reads every tenant's ingestions; changes none (an ingestion is changed
    /// with its tenant's token, which the audit trail then names).
    Admin,
}

/// A signed-in request.
#[derive(Debug, Clone)]
pub struct UiSession {
    pub id_sha256: [u8; 32],
    pub scope: Scope,
    pub csrf: String,
}

impl UiSession {
    /// The tenant whose data this session may read; `None`: every tenant's (admin).
    pub fn tenant(&self) -> Option<Uuid> {
        match &self.scope {
            Scope::Tenant { caller, .. } => Some(caller.tenant),
            Scope::Admin => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self.scope, Scope::Admin)
    }

    /// What the header shows: the tenant's name, or `admin`.
    pub fn who(&self) -> &str {
        match &self.scope {
            Scope::Tenant { tenant_name, .. } => tenant_name,
            Scope::Admin => "admin",
        }
    }

    /// The caller the API's handlers act for, or the refusal an admin session gets.
    pub fn caller(&self) -> Result<Caller, crate::error::ApiError> {
        match &self.scope {
            Scope::Tenant { caller, .. } => Ok(caller.clone()),
            Scope::Admin => Err(crate::error::ApiError::Forbidden(
                "the admin's dashboard reads every tenant's ingestions but changes none: \
                 sign in with the tenant's token to change its ingestions",
            )),
        }
    }

    /// The refusal (403) of a POST whose CSRF token, from the form or the `X-CSRF-Token` header,
    /// is not this session's; `None` when it is.
    pub fn csrf_refusal(&self, headers: &HeaderMap, form: Option<&str>) -> Option<Response> {
        let sent = form.or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
        match sent {
            Some(sent) if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) => None,
            _ => Some(crate::error::ApiError::Forbidden(
                "this request did not carry the page's CSRF token; reload the page and try again",
            )
            .into_response()),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length of a CSRF token is no secret (they are all 64 hex digits).
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session id in the request's cookies, if any.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Where a request without a session goes.
pub struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/ui/login").into_response()
    }
}

impl FromRequestParts<AppState> for UiSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(raw) = cookie_value(&parts.headers) else {
            return Err(SignInFirst.into_response());
        };
        let id_sha256 = digest(raw);
        let session = ui_sessions::ui_session_get(&state.pool, &id_sha256)
            .await
            .map_err(|e| crate::error::ApiError::from(e).into_response())?;
        let Some(session) = session else {
            return Err(signed_out(
                SignInFirst.into_response(),
                secure(&parts.headers),
            ));
        };
        let scope = match session.holder {
            Holder::Tenant {
                tenant,
                tenant_name,
                token_id,
                token_name,
            } => Scope::Tenant {
                caller: Caller {
                    tenant,
                    token: token_name,
                    token_id,
                    request_id: parts
                        .headers
                        .get(crate::REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                },
                tenant_name,
            },
            Holder::Admin { admin_digest } => {
                // A session of an admin token that is no longer the configured one is over.
                let current = state.admin_token_sha256.map(|d| digest_bytes(&d));
                if current.as_ref().map(|c| &c[..]) != Some(&admin_digest[..]) {
                    let _ = ui_sessions::ui_session_delete(&state.pool, &id_sha256).await;
                    return Err(signed_out(
                        SignInFirst.into_response(),
                        secure(&parts.headers),
                    ));
                }
                Scope::Admin
            }
        };
        Ok(UiSession {
            id_sha256,
            scope,
            csrf: session.csrf_token,
        })
    }
}

fn digest_bytes(d: &[u8; 32]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(d).into()
}

/// Whether the request came over https (directly, or as a proxy's `X-Forwarded-Proto` says):
/// its cookie is then `Secure`.
pub fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

fn cookie(value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/ui");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `res` with the session cookie cleared.
pub fn signed_out(mut res: Response, secure: bool) -> Response {
    res.headers_mut()
        .append(header::SET_COOKIE, cookie("", Some(0), secure));
    res
}

/// Why a sign-in was refused.
#[derive(Debug)]
pub enum Refused {
    /// 401 (unknown, revoked or expired token), 403 (suspended tenant) or 429 (too many failed
    /// sign-ins), with the message shown.
    Token(StatusCode, &'static str),
    Internal(crate::error::ApiError),
}

/// Checks `token` as the API does (`autoloader::tenants::token_tenant`, or the admin token's
/// digest in constant time) and opens a session for it; returns the `Set-Cookie` value.
pub async fn sign_in(state: &AppState, token: &str, secure: bool) -> Result<HeaderValue, Refused> {
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Err(Refused::Token(
            StatusCode::UNAUTHORIZED,
            "unknown or revoked token",
        ));
    }
    let hash = digest(token);
    let is_admin = state
        .admin_token_sha256
        .is_some_and(|expected| constant_time_eq(&hash, &expected));
    let (tenant, admin_digest) = if is_admin {
        (None, Some(digest_bytes(&hash)))
    } else {
        // Tenant sign-ins are rate limited per process, so guessing costs time and the
        // database sees a bounded number of look-ups.
        if state.ui.sign_ins.admit(&[0; 32]).is_err() {
            return Err(Refused::Token(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed sign-ins; wait a few seconds and try again",
            ));
        }
        match autoloader::tenants::token_tenant(&state.pool, &hash).await {
            Ok(Some(TokenHolder::Tenant {
                tenant, token_id, ..
            })) => (Some((tenant, token_id)), None),
            Ok(Some(TokenHolder::Suspended(_))) => return Err(Refused::Token(
                StatusCode::FORBIDDEN,
                "this tenant is suspended: its requests are refused until an admin makes it ACTIVE",
            )),
            Ok(Some(TokenHolder::Expired)) => {
                return Err(Refused::Token(StatusCode::UNAUTHORIZED, "token expired"))
            }
            Ok(None) => {
                return Err(Refused::Token(
                    StatusCode::UNAUTHORIZED,
                    "unknown or revoked token",
                ))
            }
            Err(e) => return Err(Refused::Internal(e.into())),
        }
    };
    let id = new_token();
    let csrf = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    ui_sessions::ui_session_insert(
        &state.pool,
        &digest(&id),
        tenant,
        admin_digest.as_ref(),
        &csrf,
    )
    .await
    .map_err(|e| Refused::Internal(e.into()))?;
    Ok(cookie(&id, None, secure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; autoloader_session=abc; b=2"),
        );
        assert_eq!(cookie_value(&h), Some("abc"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("autoloader_sessionx=abc"),
        );
        assert_eq!(cookie_value(&h), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let c = cookie("x", None, true);
        let c = c.to_str().expect("ascii");
        for part in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Secure"] {
            assert!(c.contains(part), "{c}");
        }
        let plain = cookie("x", None, false);
        assert!(!plain.to_str().expect("ascii").contains("Secure"));
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
