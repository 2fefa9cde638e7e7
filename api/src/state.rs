//! What every handler may use: the pool, the tenancy and admin settings, and the process's
//! caches.

use std::sync::Arc;

use sqlx::PgPool;

use autoloader::ingestions::draft::Bounds;
use autoloader::ingestions::egress::EgressPolicy;
use autoloader::ingestions::options::Limits;
use autoloader::ingestions::roots::FileRoots;

use autoloader::config::QuotaConfig;

use crate::auth::{self, RateLimiter, TokenCache};
use crate::metrics::RunTotals;
use crate::schedule_cache::ScheduleCache;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// SHA-256 of `AUTOLOADER_ADMIN_TOKEN`; `None` disables tenant administration.
    pub admin_token_sha256: Option<[u8; 32]>,
    /// SHA-256 of `AUTOLOADER_METRICS_TOKEN`; `None`: `/metrics` is open to whoever reaches it.
    pub metrics_token_sha256: Option<[u8; 32]>,
    pub tokens: Arc<TokenCache>,
    /// The operator's bounds on definitions: the directories local sources may read from
    /// (`AUTOLOADER_FILE_ROOTS`), where S3 endpoints may point
    /// (`AUTOLOADER_S3_ENDPOINT_ALLOWLIST`), the caps on a run's reading.
    pub bounds: Arc<Bounds>,
    /// Schedule views for `GET /{id}/schedule`; bypassed until [`AppState::listen`] runs.
    pub schedules: Arc<ScheduleCache>,
    /// Run totals for `/metrics`, folded scrape by scrape.
    pub runs: Arc<RunTotals>,
    /// The operator's defaults for tenants' quotas.
    pub quotas: QuotaConfig,
    /// Requests per second per token.
    pub rate: Arc<RateLimiter>,
    /// The keys secret options are sealed with (`AUTOLOADER_SECRET_KEY`); `None`: secrets are
    /// refused.
    pub secrets: Option<Arc<autoloader::secrets::SecretKeys>>,
    /// The dashboard's sign-in limit and its live updates.
    pub ui: Arc<crate::ui::UiState>,
}

impl AppState {
    pub fn new(pool: PgPool, admin_token: Option<&str>) -> AppState {
        AppState {
            pool,
            admin_token_sha256: admin_token.filter(|t| !t.is_empty()).map(auth::digest),
            metrics_token_sha256: None,
            tokens: Default::default(),
            bounds: Default::default(),
            schedules: Default::default(),
            runs: Default::default(),
            quotas: QuotaConfig::default(),
            rate: Arc::new(RateLimiter::new(QuotaConfig::default().token_rate_limit)),
            secrets: None,
            ui: Default::default(),
        }
    }

    /// Seals secret options with these keys.
    pub fn with_secret_keys(mut self, keys: Option<autoloader::secrets::SecretKeys>) -> AppState {
        self.secrets = keys.map(Arc::new);
        self
    }

    /// Seals the secret options of a definition about to be stored for `tenant` (those the
    /// client sent; stored ones are sealed already). No keys and a secret: 422 naming it.
    pub fn seal_secrets(
        &self,
        tenant: uuid::Uuid,
        options: &mut serde_json::Value,
    ) -> Result<(), crate::error::ApiError> {
        autoloader::secrets::seal_options(self.secrets.as_deref(), tenant, options)
            .map_err(|(field, message)| crate::error::ApiError::field(field, message))
    }

    /// Uses the operator's quota defaults and rate limit.
    pub fn with_quotas(mut self, quotas: QuotaConfig) -> AppState {
        self.rate = Arc::new(RateLimiter::new(quotas.token_rate_limit));
        self.quotas = quotas;
        self
    }

    /// Starts the task that keeps the schedule cache true (see [`crate::schedule_cache`]);
    /// without it the cache is never used.
    pub fn listen(&self) -> tokio::task::JoinHandle<()> {
        let schedules = self.schedules.clone().listen(self.pool.clone());
        let live = self.ui.live.clone().run(self.pool.clone());
        tokio::spawn(async move {
            tokio::join!(schedules, live);
        })
    }

    /// Asks scrapers of `/metrics` for this bearer token (unset or empty: no token asked).
    pub fn with_metrics_token(mut self, token: Option<&str>) -> AppState {
        self.metrics_token_sha256 = token.filter(|t| !t.is_empty()).map(auth::digest);
        self
    }

    /// Allows S3 endpoints the policy lists.
    pub fn with_egress(mut self, egress: EgressPolicy) -> AppState {
        Arc::make_mut(&mut self.bounds).egress = egress;
        self
    }

    /// The catch-up policy of ingestions created without one.
    pub fn with_default_catchup(
        mut self,
        catchup: autoloader::ingestions::catchup::Catchup,
    ) -> AppState {
        Arc::make_mut(&mut self.bounds).default_catchup = catchup;
        self
    }

    /// Caps what ingestions may ask one run to read.
    pub fn with_limits(mut self, limits: Limits) -> AppState {
        Arc::make_mut(&mut self.bounds).limits = limits;
        self
    }

    /// The bounds `draft` is checked against for `tenant`: the operator's, with the tenant's own
    /// file roots (inside the operator's) in place of the operator's when the source is local.
    pub async fn bounds_for(
        &self,
        tenant: uuid::Uuid,
        draft: &autoloader::ingestions::draft::Draft,
    ) -> Result<Arc<Bounds>, crate::error::ApiError> {
        if draft.source_type.as_deref().map(str::trim) != Some("local") {
            return Ok(self.bounds.clone());
        }
        let roots = autoloader::tenants::tenant_file_roots(&self.pool, tenant).await?;
        let roots = self
            .bounds
            .roots
            .within(&roots)
            .map_err(|m| crate::error::ApiError::field("source_path", m))?;
        let mut bounds = (*self.bounds).clone();
        bounds.roots = roots;
        Ok(Arc::new(bounds))
    }

    /// Allows local sources under `roots`.
    pub fn with_file_roots(mut self, roots: FileRoots) -> AppState {
        Arc::make_mut(&mut self.bounds).roots = roots;
        self
    }
}
