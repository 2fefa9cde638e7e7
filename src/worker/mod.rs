//! The worker runtime: claims queued runs, executes them under a heartbeated lease, records the
//! outcome fenced by that lease, rescues runs whose worker died, and shuts down gracefully.
//!
//! Invariants it keeps (the database enforces the rest):
//! * never more than `max_concurrent` runs in flight in this process: it claims only as many runs
//!   as it has free slots;
//! * every write about a run after its claim is fenced by the lease (see [`lease`]); a worker
//!   that finds its lease gone cancels the run's executor and records nothing;
//! * at shutdown it stops claiming, waits up to `shutdown_timeout` for in-flight runs, then gives
//!   the leases of the rest back (QUEUED again, for another worker) before it returns.

mod completer;
pub mod lease;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::executor::{ExecError, Executor, RunContext};
use crate::wake::{Waker, RUNS_CHANNEL};
use completer::Completer;
use lease::{Claimed, Lease, Outcome};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this process in `runs.worker_id`; unique per process.
    pub worker_id: String,
    pub max_concurrent: usize,
    pub lease_ttl: Duration,
    pub heartbeat_interval: Duration,
    /// How long shutdown waits for in-flight runs before giving their leases back.
    pub shutdown_timeout: Duration,
    /// Claims a run may use before a lost lease fails it with reason `worker lost`.
    pub max_attempts: i32,
    /// Automatic retries of runs whose executor reports a transient error (0: none).
    pub retries: i32,
    /// Back-off before the first retry; doubles with each further one.
    pub retry_backoff: Duration,
    /// Longest wait between looks at the queue and at expired leases, whatever notifications say.
    pub poll_interval: Duration,
}

/// A default worker id: host, process id and a random suffix, readable in `runs.worker_id`.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".to_owned());
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &suffix[suffix.len() - 6..]
    )
}

pub struct Worker {
    pool: PgPool,
    config: WorkerConfig,
    executor: Arc<dyn Executor>,
}

/// How a run's task ended, for the main loop's bookkeeping.
enum Ended {
    Recorded,
    LeaseLost,
    GivenBack,
}

impl Worker {
    pub fn new(pool: PgPool, config: WorkerConfig, executor: Arc<dyn Executor>) -> Worker {
        Worker {
            pool,
            config,
            executor,
        }
    }

    /// Claims and runs work until `shutdown` fires, then drains (see the module docs).
    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = &self.config;
        tracing::info!(worker_id = %cfg.worker_id, max_concurrent = cfg.max_concurrent,
                       lease_ttl_s = cfg.lease_ttl.as_secs_f64(), "worker started");
        let give_back = CancellationToken::new();
        let (completer, completer_task) =
            Completer::start(self.pool.clone(), cfg.worker_id.clone());
        let mut in_flight: JoinSet<Ended> = JoinSet::new();
        let mut waker = Waker::new(self.pool.clone(), RUNS_CHANNEL);
        let rescue_every = (cfg.lease_ttl / 2).min(cfg.poll_interval);
        let mut last_rescue: Option<Instant> = None;

        while !shutdown.is_cancelled() {
            waker.listen().await;
            if last_rescue.is_none_or(|t| t.elapsed() >= rescue_every) {
                self.rescue().await;
                last_rescue = Some(Instant::now());
            }
            // Runs often finish together (their outcomes commit in one batch): count every
            // finished one, so the next claim takes all the free slots at once.
            while in_flight.try_join_next().is_some() {}
            let free = cfg.max_concurrent.saturating_sub(in_flight.len());
            let mut claimed_all = false;
            if free > 0 {
                match lease::claim_many(&self.pool, &cfg.worker_id, free as i64, cfg.lease_ttl)
                    .await
                {
                    Ok(runs) => {
                        claimed_all = runs.len() == free;
                        for run in runs {
                            self.spawn_run(
                                &mut in_flight,
                                run,
                                &completer,
                                give_back.child_token(),
                            );
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming runs failed; retrying"),
                }
            }
            // With every slot just filled there may be more queued: wait only for a free slot.
            let wait =
                rescue_every.saturating_sub(last_rescue.map_or(Duration::ZERO, |t| t.elapsed()));
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if claimed_all {
                        gather_free_slots(&mut in_flight, cfg.max_concurrent).await;
                    }
                }
                () = waker.wait(), if !claimed_all || in_flight.len() < cfg.max_concurrent => {}
                () = tokio::time::sleep(wait) => {}
            }
        }

        tracing::info!(worker_id = %cfg.worker_id, in_flight = in_flight.len(),
                       timeout_s = cfg.shutdown_timeout.as_secs_f64(),
                       "worker stopping: no new claims; waiting for runs in flight");
        let drained = tokio::time::timeout(cfg.shutdown_timeout, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(worker_id = %cfg.worker_id, still_running = in_flight.len(),
                           "shutdown timeout reached; giving the remaining runs back");
            give_back.cancel();
            while in_flight.join_next().await.is_some() {}
        }
        drop(completer);
        if let Err(e) = completer_task.await {
            tracing::error!(error = %e, "the outcome writer failed");
        }
        tracing::info!(worker_id = %cfg.worker_id, "worker stopped");
    }

    async fn rescue(&self) {
        match lease::rescue_expired(&self.pool, self.config.max_attempts, 100).await {
            Ok(rescued) => {
                for r in rescued {
                    metrics::counter!("autoloader_runs_rescued_total", "outcome" => r.status.to_lowercase())
                        .increment(1);
                    tracing::warn!(run_id = %r.run_id, ingestion_id = %r.ingestion_id, tenant_id = %r.tenant_id,
                                   attempt = r.attempt, lost_worker = r.lost_worker.as_deref().unwrap_or(""),
                                   status = %r.status, "recovered a run whose worker lost its lease");
                }
            }
            Err(e) => tracing::warn!(error = %e, "rescuing expired leases failed"),
        }
    }

    fn spawn_run(
        &self,
        set: &mut JoinSet<Ended>,
        run: Claimed,
        completer: &Completer,
        give_back: CancellationToken,
    ) {
        let span = tracing::info_span!("run", run_id = %run.run_id, ingestion_id = %run.ingestion.id,
                                       tenant_id = %run.ingestion.tenant_id, attempt = run.attempt);
        let pool = self.pool.clone();
        let config = self.config.clone();
        let executor = Arc::clone(&self.executor);
        let completer = completer.clone();
        set.spawn(execute(pool, config, executor, completer, run, give_back).instrument(span));
    }
}

/// After a run finished while the queue looked non-empty: lets more runs finish before the next
/// claim, so one claim refills many slots (a claim costs about as much for one run as for fifty),
/// until half the slots are free or `GATHER_FOR` has passed, whichever is first.
async fn gather_free_slots(in_flight: &mut JoinSet<Ended>, max_concurrent: usize) {
    const GATHER_FOR: Duration = Duration::from_millis(2);
    let deadline = tokio::time::Instant::now() + GATHER_FOR;
    while max_concurrent.saturating_sub(in_flight.len()) < max_concurrent.div_ceil(2) {
        tokio::select! {
            joined = in_flight.join_next() => if joined.is_none() { return },
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// Runs one claimed run to an outcome, heartbeating its lease meanwhile.
async fn execute(
    pool: PgPool,
    cfg: WorkerConfig,
    executor: Arc<dyn Executor>,
    completer: Completer,
    run: Claimed,
    give_back: CancellationToken,
) -> Ended {
    let lease = run.lease();
    let worker = cfg.worker_id.as_str();
    if let Some(tick) = run.scheduled_for {
        let late = (run.started_at - tick).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!("autoloader_run_lateness_seconds").record(late);
    }
    tracing::info!(triggered_by = %run.triggered_by, scheduled_for = ?run.scheduled_for, "run claimed");
    let cancel = CancellationToken::new();
    let ctx = RunContext {
        run_id: run.run_id,
        attempt: run.attempt,
        worker_id: cfg.worker_id.clone(),
        triggered_by: run.triggered_by,
        scheduled_for: run.scheduled_for,
        data_interval_start: run.data_interval_start,
        data_interval_end: run.scheduled_for,
        ingestion: run.ingestion.clone(),
        cancel: cancel.clone(),
    };
    let started = Instant::now();
    let work = executor.execute(ctx);
    tokio::pin!(work);
    let mut beat = tokio::time::interval(cfg.heartbeat_interval);
    beat.tick().await; // the claim itself was the first heartbeat

    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            () = give_back.cancelled() => {
                cancel.cancel();
                let reason = format!("requeued: worker {worker} shut down before the run finished");
                return match lease::requeue(&pool, worker, lease, Duration::ZERO, &reason, None).await {
                    Ok(true) => {
                        tracing::warn!("run given back at shutdown");
                        Ended::GivenBack
                    }
                    Ok(false) => lease_lost("giving the run back"),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot give the run back; it is requeued when its lease expires");
                        Ended::GivenBack
                    }
                };
            }
            _ = beat.tick() => match lease::heartbeat(&pool, worker, lease, cfg.lease_ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    cancel.cancel();
                    return lease_lost("heartbeat");
                }
                // The lease may still be ours; the next beat (or the outcome) will tell.
                Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
            },
        }
    };
    let secs = started.elapsed().as_secs_f64();
    metrics::histogram!("autoloader_run_duration_seconds").record(secs);
    record(&pool, &cfg, &completer, &run, lease, result, secs).await
}

async fn record(
    pool: &PgPool,
    cfg: &WorkerConfig,
    completer: &Completer,
    run: &Claimed,
    lease: Lease,
    result: Result<crate::executor::RunOutput, ExecError>,
    secs: f64,
) -> Ended {
    let worker = cfg.worker_id.as_str();
    let (written, status) = match &result {
        Ok(out) => (
            completer.complete(lease, Outcome::Success(*out)).await,
            "success",
        ),
        Err(ExecError::Transient(msg)) if run.attempt <= cfg.retries => {
            let delay = cfg
                .retry_backoff
                .saturating_mul(1 << (run.attempt - 1).clamp(0, 16));
            let reason = format!(
                "retry {} of {} in {}s after a transient error",
                run.attempt,
                cfg.retries,
                delay.as_secs()
            );
            (
                lease::requeue(pool, worker, lease, delay, &reason, Some(msg))
                    .await
                    .map_err(|e| e.to_string()),
                "retrying",
            )
        }
        Err(e) => (
            completer
                .complete(lease, Outcome::Failure(e.to_string()))
                .await,
            "failed",
        ),
    };
    match written {
        Ok(true) => {
            match &result {
                Ok(out) => tracing::info!(
                    duration_s = secs,
                    files = out.files_processed,
                    rows = out.rows_ingested,
                    bytes = out.bytes_read,
                    "run succeeded"
                ),
                Err(e) => {
                    tracing::warn!(duration_s = secs, error = %e, outcome = status, "run failed")
                }
            }
            metrics::counter!("autoloader_scheduled_executions_total", "status" => status)
                .increment(1);
            Ended::Recorded
        }
        Ok(false) => lease_lost("recording the outcome"),
        Err(e) => {
            // The lease runs out and the run is retried elsewhere: the outcome is lost, the run is not.
            tracing::error!(error = %e, outcome = status, "cannot record the run's outcome");
            Ended::Recorded
        }
    }
}

fn lease_lost(during: &str) -> Ended {
    metrics::counter!("autoloader_leases_lost_total").increment(1);
    tracing::warn!(
        during,
        "lease lost: another worker owns this run now; stopping it and recording nothing"
    );
    Ended::LeaseLost
}
