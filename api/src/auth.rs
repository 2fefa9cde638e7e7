//! Bearer tokens. A tenant's token decides which tenant a request acts for; the admin token
//! (`AUTOLOADER_ADMIN_TOKEN`) authorises tenant administration. Only SHA-256 digests of tokens
//! are stored, and compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use autoloader::audit::Actor;
use autoloader::tenants::TokenHolder;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

/// The tenant a request acts for.
#[derive(Debug, Clone, Copy)]
pub struct Tenant(pub Uuid);

/// The tenant a request acts for, and who asked: the token's name (its label, else
/// `token <id>`), as pauses and changes record it, its id, and the request's id.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Uuid,
    pub token: String,
    pub token_id: Uuid,
    pub request_id: Option<String>,
}

impl Caller {
    /// Who the audit trail says made this request's changes.
    pub fn actor(&self) -> Actor {
        Actor::token(&self.token, self.token_id, self.request_id.as_deref())
    }
}

/// A request carrying the admin token, and the request's id.
#[derive(Debug, Clone)]
pub struct Admin {
    pub request_id: Option<String>,
}

impl Admin {
    /// Who the audit trail says made this request's changes.
    pub fn actor(&self) -> Actor {
        Actor::admin(self.request_id.as_deref())
    }
}

/// The request's id (`x-request-id`: the client's, else one the API made up; see `app`).
fn request_id(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(crate::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A scrape of `/metrics` allowed in: any, unless `AUTOLOADER_METRICS_TOKEN` is set, then one
/// carrying that token.
#[derive(Debug, Clone, Copy)]
pub struct MetricsReader;

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new token: `al_` and 64 hex digits from two v4 UUIDs (244 random bits).
pub fn new_token() -> String {
    format!("al_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(
            "missing Authorization header (Authorization: Bearer <token>)",
        ))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized(
            "the Authorization header must be 'Bearer <token>'",
        ))
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state)
            .await
            .map(|c| Tenant(c.tenant))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let hash = digest(bearer(parts)?);
        let request_id = request_id(parts);
        if let Some((tenant, token_id, token)) = state.tokens.get(&hash) {
            state.rate.admit(&hash)?;
            return Ok(Caller {
                tenant,
                token,
                token_id,
                request_id,
            });
        }
        if state.tokens.is_refused(&hash) {
            return Err(ApiError::Unauthorized("unknown or revoked token"));
        }
        match autoloader::tenants::token_tenant(&state.pool, &hash).await? {
            Some(TokenHolder::Tenant {
                tenant,
                token_id,
                name,
            }) => {
                state.tokens.insert(hash, tenant, token_id, name.clone());
                state.rate.admit(&hash)?;
                Ok(Caller {
                    tenant,
                    token: name,
                    token_id,
                    request_id,
                })
            }
            Some(TokenHolder::Suspended(_)) => Err(ApiError::Forbidden(
                "this tenant is suspended: its requests are refused until an admin makes it ACTIVE",
            )),
            Some(TokenHolder::Expired) => Err(ApiError::Unauthorized("token expired")),
            None => {
                state.tokens.refuse(hash);
                Err(ApiError::Unauthorized("unknown or revoked token"))
            }
        }
    }
}

/// Recently verified tokens, so a busy client costs one query per `TOKEN_CACHE_TTL` rather than
/// one per request. Revoking a token evicts it here at once; other API processes stop accepting
/// it within the TTL.
///
/// Tokens found unknown (or revoked) are remembered too, apart, for the same TTL: a flood of
/// requests with a bad token costs one query, not one per request, and a flood of many bad
/// tokens fills only its own bounded map, never evicting good ones.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Verified>>,
    refused: Mutex<HashMap<[u8; 32], Instant>>,
}

/// A verified token as the cache keeps it.
#[derive(Debug)]
struct Verified {
    tenant: Uuid,
    token_id: Uuid,
    name: String,
    at: Instant,
}

pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);
const TOKEN_CACHE_MAX: usize = 10_000;

/// Keeps a map of the token cache under [`TOKEN_CACHE_MAX`] entries before one more goes in:
/// expired entries go first, and if none has expired, all of them (a flood of new tokens then
/// costs the queries it would have cost anyway).
fn make_room<V>(map: &mut HashMap<[u8; 32], V>, stored_at: impl Fn(&V) -> Instant) {
    make_room_by(map, |v| stored_at(v).elapsed() < TOKEN_CACHE_TTL);
}

/// Keeps `map` under [`TOKEN_CACHE_MAX`] entries: those no longer `live` go first, then all.
fn make_room_by<V>(map: &mut HashMap<[u8; 32], V>, live: impl Fn(&V) -> bool) {
    if map.len() >= TOKEN_CACHE_MAX {
        map.retain(|_, v| live(v));
        if map.len() >= TOKEN_CACHE_MAX {
            map.clear();
        }
    }
}

impl TokenCache {
    /// (tenant, token id, token name) of a recently verified token.
    fn get(&self, hash: &[u8; 32]) -> Option<(Uuid, Uuid, String)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(hash)
            .filter(|v| v.at.elapsed() < TOKEN_CACHE_TTL)
            .map(|v| (v.tenant, v.token_id, v.name.clone()))
    }

    fn insert(&self, hash: [u8; 32], tenant: Uuid, token_id: Uuid, token: String) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        make_room(&mut entries, |v| v.at);
        entries.insert(
            hash,
            Verified {
                tenant,
                token_id,
                name: token,
                at: Instant::now(),
            },
        );
    }

    fn is_refused(&self, hash: &[u8; 32]) -> bool {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused
            .get(hash)
            .is_some_and(|at| at.elapsed() < TOKEN_CACHE_TTL)
    }

    fn refuse(&self, hash: [u8; 32]) {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        make_room(&mut refused, |at| *at);
        refused.insert(hash, Instant::now());
    }

    /// Forgets every token of a tenant (it was suspended).
    pub fn evict_tenant(&self, tenant: Uuid) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, v| v.tenant != tenant);
    }

    /// Forgets a revoked token, or a just-issued one's refusal.
    pub fn evict(&self, hash: &[u8]) {
        if let Ok(hash) = <[u8; 32]>::try_from(hash) {
            self.entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&hash);
            self.refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&hash);
        }
    }
}

/// Requests per second per tenant token, in this API process: a token bucket per token holding
/// up to twice the rate, refilled continuously. Only tokens that authenticated get a bucket
/// (unknown ones are refused before, by the token cache), and the map stays under
/// [`TOKEN_CACHE_MAX`] buckets: idle ones go first, as in the token cache.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<HashMap<[u8; 32], (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` 0: no limit.
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second),
            buckets: Mutex::default(),
        }
    }

    fn burst(&self) -> f64 {
        self.per_second * 2.0
    }

    /// Takes one request from the token's bucket, or says how many seconds until one is there.
    pub fn admit(&self, hash: &[u8; 32]) -> Result<(), ApiError> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(hash) {
            // A bucket idle long enough to have refilled is as good as none.
            let full_after = Duration::from_secs_f64(self.burst() / self.per_second);
            make_room_by(&mut buckets, |(_, at)| at.elapsed() < full_after);
        }
        let (level, at) = buckets.entry(*hash).or_insert((self.burst(), now));
        *level =
            (*level + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst());
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - *level) / self.per_second).ceil().max(1.0) as u64;
        Err(ApiError::Quota {
            detail: format!(
                "this token made more than {} requests a second; wait {wait} s",
                self.per_second
            ),
            field: None,
            retry_after_secs: Some(wait),
        })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.admin_token_sha256 else {
            return Err(ApiError::Forbidden(
                "tenant administration is disabled: AUTOLOADER_ADMIN_TOKEN is not set",
            ));
        };
        if constant_time_eq(&digest(bearer(parts)?), &expected) {
            Ok(Admin {
                request_id: request_id(parts),
            })
        } else {
            Err(ApiError::Unauthorized(
                "this endpoint needs the admin token",
            ))
        }
    }
}

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.metrics_token_sha256 else {
            return Ok(MetricsReader);
        };
        if constant_time_eq(&digest(bearer(parts)?), &expected) {
            Ok(MetricsReader)
        } else {
            Err(ApiError::Unauthorized(
                "/metrics needs the metrics token (AUTOLOADER_METRICS_TOKEN)",
            ))
        }
    }
}
