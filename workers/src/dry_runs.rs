//! Dry runs: a worker's loop that claims queued dry-run requests (`dry_runs`), has a
//! [`DryRunner`] work each out within its deadline, and writes the answer.
//!
//! The API does not link the loader, and tenants' reading happens in workers only, so a dry run
//! is asked for through the database: the API (or the CLI) inserts a request and waits for its
//! answer; any worker process with a dry runner (the shipped `autoloader-worker`) takes it. The
//! claim is the run claim's tenant routing: only ACTIVE tenants' requests, oldest first,
//! `for update skip locked` (`autoloader::dry_runs::dry_run_claim`), and only requests whose
//! deadline leaves time to answer.
//!
//! At most [`SLOTS`] dry runs of one process at once. The loop wakes on `NOTIFY
//! autoloader_dry_runs` (an insert), else every five seconds. At shutdown it claims nothing new
//! and the dry runs under way end at once, answered as unfinished.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use autoloader::dry_runs::{dry_run_claim, dry_run_finish, ClaimedDryRun, DryRunDefinition};
use autoloader::ingestions::Definition;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use tracing::Instrument;

use crate::wake::Waker;

/// Channel an inserted dry-run request notifies.
pub const DRY_RUNS_CHANNEL: &str = "autoloader_dry_runs";
/// Dry runs one process works on at once.
pub const SLOTS: usize = 2;
/// Time kept back from a dry run's deadline to write its answer.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(1_500);

/// A dry run to work out: the definition parsed, the tenant's namespace and roots.
#[derive(Debug, Clone)]
pub struct DryRunRequest {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The saved ingestion tried (its ledger says what is loaded); `None`: an unsaved
    /// definition, which has loaded nothing.
    pub ingestion_id: Option<Uuid>,
    pub definition: Definition,
    pub tenant_namespace: String,
    pub tenant_file_roots: Vec<String>,
    /// When the answer is due, less [`ANSWER_MARGIN`].
    pub budget: tokio::time::Instant,
    /// Fires at shutdown: stop and answer with what is done.
    pub cancel: CancellationToken,
}

/// A dry run's answer: the result document, and why it failed when it did.
#[derive(Debug, Clone)]
pub struct DryRunAnswer {
    pub result: serde_json::Value,
    pub error: Option<String>,
}

pub type DryRunFuture<'a> = Pin<Box<dyn Future<Output = DryRunAnswer> + Send + 'a>>;

/// Works out dry runs (the loader's is `ingest::dry_run`).
pub trait DryRunner: Send + Sync + 'static {
    fn dry_run(&self, req: DryRunRequest) -> DryRunFuture<'_>;
}

/// Claims and answers dry runs until `shutdown` fires, then ends those under way and returns.
pub async fn run(
    pool: PgPool,
    worker_id: String,
    runner: Arc<dyn DryRunner>,
    shutdown: CancellationToken,
) {
    let mut waker = Waker::new(pool.clone(), DRY_RUNS_CHANNEL);
    let mut tasks = tokio::task::JoinSet::new();
    while !shutdown.is_cancelled() {
        waker.listen().await;
        while tasks.try_join_next().is_some() {}
        let mut claimed_any = false;
        while tasks.len() < SLOTS {
            match dry_run_claim(&pool, &worker_id, ANSWER_MARGIN * 2).await {
                Ok(Some(c)) => {
                    claimed_any = true;
                    let (pool, worker_id, runner) =
                        (pool.clone(), worker_id.clone(), runner.clone());
                    let cancel = shutdown.child_token();
                    let span = tracing::info_span!("dry_run", dry_run_id = %c.id,
                        tenant_id = %c.tenant_id, ingestion_id = ?c.ingestion_id);
                    tasks.spawn(answer(pool, worker_id, runner, c, cancel).instrument(span));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming dry runs failed; trying again soon");
                    break;
                }
            }
        }
        if claimed_any && tasks.len() < SLOTS {
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = waker.wait() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Works out one claimed dry run and writes its answer.
async fn answer(
    pool: PgPool,
    worker_id: String,
    runner: Arc<dyn DryRunner>,
    c: ClaimedDryRun,
    cancel: CancellationToken,
) {
    let started = tokio::time::Instant::now();
    let left = Duration::from_secs_f64(c.remaining_secs.max(0.0)).saturating_sub(ANSWER_MARGIN);
    let answer = match parse(&c) {
        Ok(definition) => {
            let req = DryRunRequest {
                id: c.id,
                tenant_id: c.tenant_id,
                ingestion_id: c.ingestion_id,
                definition,
                tenant_namespace: c.tenant_namespace.clone(),
                tenant_file_roots: c.tenant_file_roots.clone(),
                budget: started + left,
                cancel,
            };
            runner.dry_run(req).await
        }
        Err(message) => DryRunAnswer {
            result: serde_json::json!({
                "complete": false,
                "unfinished": "definition",
                "error": {"stage": "definition", "message": message},
            }),
            error: Some(message),
        },
    };
    match dry_run_finish(
        &pool,
        c.id,
        &worker_id,
        &answer.result,
        answer.error.as_deref(),
    )
    .await
    {
        Ok(true) => {
            tracing::info!(dry_run_id = %c.id, elapsed_ms = started.elapsed().as_millis() as u64,
                                   failed = answer.error.is_some(), "dry run answered")
        }
        Ok(false) => {
            tracing::warn!(dry_run_id = %c.id, "dry run no longer this worker's; answer dropped")
        }
        Err(e) => {
            tracing::warn!(dry_run_id = %c.id, error = %e, "writing a dry run's answer failed")
        }
    }
}

fn parse(c: &ClaimedDryRun) -> Result<Definition, String> {
    let stored: DryRunDefinition = c
        .definition
        .clone()
        .ok_or_else(|| "the dry run has no definition".to_owned())
        .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
        .map_err(|e| format!("the stored definition is invalid: {e}"))?;
    Definition::parse(
        &stored.source_type,
        &stored.source_path,
        &stored.format_type,
        &stored.destination_table,
        &stored.options,
    )
    .map_err(|e| format!("the stored definition is invalid: {e}"))
}
