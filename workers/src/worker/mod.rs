//! The worker runtime: claims queued runs, executes them under a heartbeated lease, records the
//! outcome fenced by that lease, rescues runs whose worker died, and shuts down gracefully.
//!
//! One loop per process goes to the database for the whole worker: each statement writes the
//! outcomes of the runs that finished since the last one and claims runs for the slots free,
//! finished ones included ([`lease::run_exchange`]). Run tasks execute, heartbeat, and hand their
//! outcome to the loop ([`outcomes`]).
//!
//! Invariants it keeps (the database enforces the rest):
//! * never more than `max_concurrent` runs executing in this process: it claims only as many runs
//!   as it has free slots. A run whose executor returned frees its slot at once and stays RUNNING
//!   in the table until the loop's next statement writes its outcome;
//! * every write about a run after its claim is fenced by the lease (see [`lease`]); a worker
//!   that finds its lease gone cancels the run's executor and records nothing;
//! * a run whose lease this worker could not renew for a whole lease TTL (the database did not
//!   answer: a partition, a dead connection) is stopped the same way: its lease may be another
//!   worker's by now, and the work it would finish is no longer this worker's to write. Every
//!   statement the loop and the heartbeats send waits for its answer a bounded time
//!   ([`autoloader::db::answered`]), so no run, slot or outcome waits on a quiet connection;
//! * an outcome the database did not answer for is kept and sent again with the next statement:
//!   written if the lease still holds, refused by the fence if the run was rescued meanwhile;
//! * at shutdown it stops claiming, waits up to `shutdown_timeout` for in-flight runs, then gives
//!   the leases of the rest back (QUEUED again, for another worker) before it returns.

mod outcomes;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use autoloader::config::SchedulerConfig;
use autoloader::runs::lease::{self, Claimed, Lease, Outcome};

use crate::executor::{ExecError, ExecFuture, Executor, IngestionSpec, RunContext, RunOutput};
use crate::wake::{Waker, RUNS_CHANNEL};
use outcomes::Finished;

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
    /// The cap on a tenant's RUNNING runs across the fleet when its own is not set
    /// (`AUTOLOADER_DEFAULT_MAX_CONCURRENT_RUNS`); `None`: no cap.
    pub default_max_concurrent_runs: Option<i32>,
    /// Longest wait for the answer to one of the loop's statements (claims, outcomes, rescue,
    /// give-backs) before its connection is dropped
    /// ([`autoloader::config::DatabaseConfig::answer_bound`]).
    pub answer_bound: Duration,
}

impl WorkerConfig {
    /// The worker settings of `s`, for the process named `worker_id`.
    pub fn from_settings(s: &SchedulerConfig, worker_id: String) -> WorkerConfig {
        WorkerConfig {
            worker_id,
            max_concurrent: s.max_workers as usize,
            lease_ttl: s.lease_ttl,
            heartbeat_interval: s.heartbeat_interval,
            shutdown_timeout: s.shutdown_timeout,
            max_attempts: s.max_attempts,
            retries: s.retries,
            retry_backoff: s.retry_backoff,
            poll_interval: s.poll_interval,
            default_max_concurrent_runs: None,
            answer_bound: Duration::from_secs(35),
        }
    }
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

/// How a run's task ended, for the main loop's count of runs executing.
enum Ended {
    /// Its outcome went to the loop (already counted when the loop received it).
    Finished,
    /// Requeued (given back at shutdown, or a retry), or its lease was lost: no outcome.
    Released,
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
        let (finished_tx, mut finished_rx) = mpsc::unbounded_channel();
        let mut in_flight: JoinSet<Ended> = JoinSet::new();
        // Runs whose executor has not returned: the slots in use.
        let mut executing = 0usize;
        // Outcomes received and not yet written.
        let mut finished: Vec<Finished> = Vec::new();
        let mut waker = Waker::new(self.pool.clone(), RUNS_CHANNEL);
        let rescue_every = (cfg.lease_ttl / 2).min(cfg.poll_interval);
        let mut last_rescue: Option<Instant> = None;
        // Whether a claim may find work: false once a claim came back short (or failed), true
        // again on a notification, a rescue or the timer.
        let mut maybe_queued = true;
        // After a failed statement: when to try again.
        let mut retry_at: Option<tokio::time::Instant> = None;

        while !shutdown.is_cancelled() {
            waker.listen().await;
            if last_rescue.is_none_or(|t| t.elapsed() >= rescue_every) {
                self.rescue().await;
                last_rescue = Some(Instant::now());
                maybe_queued = true;
            }
            executing = executing.saturating_sub(reap(&mut in_flight));
            executing =
                executing.saturating_sub(outcomes::take_ready(&mut finished_rx, &mut finished));
            // A statement that writes outcomes claims too, whatever the queue looked like: the
            // claim costs little there, and picks up runs that became claimable silently (a
            // retry's back-off ending).
            let claim = if maybe_queued || !finished.is_empty() {
                cfg.max_concurrent.saturating_sub(executing)
            } else {
                0
            };
            if claim > 0 || !finished.is_empty() {
                // A claimed lease lasts a TTL from the statement's start at the latest.
                let asked = Instant::now();
                let runs = self.exchange(&mut finished, claim).await;
                match &runs {
                    Ok(r) if claim > 0 => maybe_queued = r.len() == claim,
                    Ok(_) => {}
                    Err(unanswered) => {
                        // Look again soon, not only at the next notification or poll; and
                        // after a failed or quiet connection, LISTEN on a fresh one.
                        if *unanswered {
                            waker.reset();
                        }
                        maybe_queued = false;
                        retry_at = Some(tokio::time::Instant::now() + RETRY_AFTER_ERROR);
                    }
                }
                for run in runs.unwrap_or_default() {
                    executing += 1;
                    let held_until = asked + cfg.lease_ttl;
                    self.spawn_run(
                        &mut in_flight,
                        run,
                        held_until,
                        &finished_tx,
                        give_back.child_token(),
                    );
                }
            }
            let wait =
                rescue_every.saturating_sub(last_rescue.map_or(Duration::ZERO, |t| t.elapsed()));
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(f) = finished_rx.recv() => {
                    executing = executing.saturating_sub(1);
                    finished.push(f);
                    // Runs claimed together tend to finish together: let the ones that are
                    // ready hand over their outcomes too before the next write. A yield costs
                    // microseconds; a batch split in two costs a commit.
                    tokio::task::yield_now().await;
                }
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if matches!(joined, Ok(Ended::Released) | Err(_)) {
                        executing = executing.saturating_sub(1);
                    }
                }
                () = waker.wait() => maybe_queued = true,
                () = tokio::time::sleep(wait) => maybe_queued = true,
                () = sleep_until_some(retry_at) => {
                    retry_at = None;
                    maybe_queued = true;
                }
            }
        }

        tracing::info!(worker_id = %cfg.worker_id, in_flight = in_flight.len(),
                       timeout_s = cfg.shutdown_timeout.as_secs_f64(),
                       "worker stopping: no new claims; waiting for runs in flight");
        let deadline = tokio::time::Instant::now() + cfg.shutdown_timeout;
        let drained = self
            .record_until_idle(
                &mut in_flight,
                &mut finished_rx,
                &mut finished,
                Some(deadline),
            )
            .await;
        if !drained {
            tracing::warn!(worker_id = %cfg.worker_id, still_running = in_flight.len(),
                           "shutdown timeout reached; giving the remaining runs back");
            give_back.cancel();
            self.record_until_idle(&mut in_flight, &mut finished_rx, &mut finished, None)
                .await;
        }
        tracing::info!(worker_id = %cfg.worker_id, "worker stopped");
    }

    /// Writes outcomes, claiming nothing, until every run's task has ended and every outcome is
    /// written (true), or until `deadline` passes (false). The deadline is only looked at between
    /// statements, so an outcome being written is never abandoned halfway.
    async fn record_until_idle(
        &self,
        in_flight: &mut JoinSet<Ended>,
        finished_rx: &mut mpsc::UnboundedReceiver<Finished>,
        finished: &mut Vec<Finished>,
        deadline: Option<tokio::time::Instant>,
    ) -> bool {
        loop {
            outcomes::take_ready(finished_rx, finished);
            if !finished.is_empty()
                && matches!(self.exchange(finished, 0).await, Err(true))
                && in_flight.is_empty()
            {
                for f in finished.drain(..) {
                    outcomes::report(
                        &f,
                        Err("the database did not answer before the worker stopped"),
                    );
                }
            }
            if in_flight.is_empty() {
                // Every task has ended, so every outcome was sent and taken above.
                return true;
            }
            tokio::select! {
                Some(f) = finished_rx.recv() => {
                    finished.push(f);
                    tokio::task::yield_now().await;
                }
                Some(_) = in_flight.join_next() => {}
                () = sleep_until_some(deadline) => return false,
            }
        }
    }

    /// Writes the waiting outcomes and claims up to `claim` runs in one statement
    /// ([`lease::run_exchange`]), reports each outcome and empties `finished`. Returns the runs
    /// claimed, or that the statement failed (logged): `Err(true)` when the database did not
    /// answer (the connection failed, or said nothing in time) or is away (shutting down, a
    /// standby not yet promoted), whose outcomes stay in `finished` to be sent again (the fence
    /// decides then), `Err(false)` when it refused the statement, whose outcomes are dropped
    /// (their runs' leases run out and the runs are retried elsewhere).
    async fn exchange(
        &self,
        finished: &mut Vec<Finished>,
        claim: usize,
    ) -> Result<Vec<Claimed>, bool> {
        let cfg = &self.config;
        let outcomes: Vec<(Lease, Outcome)> = finished
            .iter()
            .map(|f| (f.lease, f.outcome.clone()))
            .collect();
        let batch = outcomes.len();
        let (worker, ttl, cap) = (
            cfg.worker_id.clone(),
            cfg.lease_ttl,
            cfg.default_max_concurrent_runs,
        );
        let result = autoloader::db::answered(&self.pool, cfg.answer_bound, move |db| {
            Box::pin(async move {
                lease::run_exchange(db, &worker, &outcomes, claim as i64, ttl, cap).await
            })
        })
        .await;
        if batch > 0 {
            metrics::histogram!("autoloader_outcome_batch_size").record(batch as f64);
        }
        match result {
            Ok(done) => {
                let recorded: HashSet<Lease> = done.recorded.into_iter().collect();
                for f in finished.drain(..) {
                    outcomes::report(&f, Ok(recorded.contains(&f.lease)));
                }
                metrics::counter!("autoloader_runs_claimed_total")
                    .increment(done.claimed.len() as u64);
                Ok(done.claimed)
            }
            Err(sqlx::Error::Database(e))
                if finished.len() > 1 && !autoloader::db::unavailable_code(e.code().as_deref()) =>
            {
                // PostgreSQL refused the statement (not the connection): one outcome it cannot
                // store must not sink the others. Write them one by one; the claim waits.
                tracing::warn!(error = %e, outcomes = finished.len(),
                               "writing a batch of outcomes failed; writing them one by one");
                for f in finished.drain(..) {
                    let one = vec![(f.lease, f.outcome.clone())];
                    let (worker, ttl) = (cfg.worker_id.clone(), cfg.lease_ttl);
                    let alone = autoloader::db::answered(&self.pool, cfg.answer_bound, move |db| {
                        Box::pin(async move {
                            lease::run_exchange(db, &worker, &one, 0, ttl, None).await
                        })
                    })
                    .await
                    .map(|d| d.recorded.contains(&f.lease));
                    match alone {
                        Ok(recorded) => outcomes::report(&f, Ok(recorded)),
                        Err(e) => outcomes::report(&f, Err(&e.to_string())),
                    }
                }
                Err(false)
            }
            Err(e) => {
                let msg = e.to_string();
                metrics::counter!("autoloader_database_errors_total", "statement" => "run_exchange")
                    .increment(1);
                if claim > 0 || !finished.is_empty() {
                    tracing::warn!(error = %msg, outcomes = finished.len(),
                                   "the database did not take the claim or outcomes; trying again shortly");
                }
                if !matches!(e, sqlx::Error::Database(_)) || autoloader::db::unavailable(&e) {
                    // No answer (the connection failed or went quiet: perhaps written, perhaps
                    // not), or the database is away (a failover, a restart): the outcomes are
                    // sent again with the next statement, a second from now, instead of waiting
                    // for their leases to run out and their runs to execute again. Fenced by
                    // their leases, they change nothing if a run was rescued meanwhile.
                    return Err(true);
                }
                for f in finished.drain(..) {
                    outcomes::report(&f, Err(&msg));
                }
                Err(false)
            }
        }
    }

    async fn rescue(&self) {
        let max_attempts = self.config.max_attempts;
        let rescued = autoloader::db::answered(&self.pool, self.config.answer_bound, move |db| {
            Box::pin(lease::run_rescue_expired(db, max_attempts, 100))
        });
        match rescued.await {
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
        held_until: Instant,
        finished: &mpsc::UnboundedSender<Finished>,
        give_back: CancellationToken,
    ) {
        let span = tracing::info_span!("run", run_id = %run.run_id, ingestion_id = %run.ingestion.id,
                                       tenant_id = %run.ingestion.tenant_id, attempt = run.attempt);
        let pool = self.pool.clone();
        let config = self.config.clone();
        let executor = Arc::clone(&self.executor);
        let finished = finished.clone();
        let lease = Held {
            run,
            until: held_until,
        };
        set.spawn(execute(pool, config, executor, finished, lease, give_back).instrument(span));
    }
}

/// How long the loop waits before going to the database again after a statement failed.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Sleeps until `at`, or forever when there is no `at`.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Joins the tasks that have already ended; returns how many ended without handing over an
/// outcome (their slots were still counted as executing).
fn reap(in_flight: &mut JoinSet<Ended>) -> usize {
    let mut released = 0;
    while let Some(joined) = in_flight.try_join_next() {
        if matches!(joined, Ok(Ended::Released) | Err(_)) {
            released += 1;
        }
    }
    released
}

/// A claimed run, and until when (by this process's clock) its lease certainly holds: a TTL from
/// the start of the last statement that set it.
struct Held {
    run: Claimed,
    until: Instant,
}

/// Runs one claimed run to an outcome, heartbeating its lease meanwhile, and hands the outcome to
/// the worker's loop (or requeues the run itself: a retry, a give-back). A run whose lease could
/// not be renewed for a whole TTL is stopped without an outcome.
async fn execute(
    pool: PgPool,
    cfg: WorkerConfig,
    executor: Arc<dyn Executor>,
    finished: mpsc::UnboundedSender<Finished>,
    held: Held,
    give_back: CancellationToken,
) -> Ended {
    let Held {
        run,
        until: mut held_until,
    } = held;
    let lease = run.lease();
    let worker = cfg.worker_id.as_str();
    if let Some(tick) = run.scheduled_for {
        let late = (run.started_at - tick).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!("autoloader_run_lateness_seconds").record(late);
    }
    tracing::info!(triggered_by = %run.triggered_by, scheduled_for = ?run.scheduled_for, "run claimed");
    let cancel = CancellationToken::new();
    let started = Instant::now();
    // The loader's input is the definition parsed; one that does not parse fails the run.
    // The work runs on a task of its own: however long one of its steps keeps a thread, this
    // task still heartbeats (on another of the runtime's threads).
    let work = match IngestionSpec::parse(&run.ingestion) {
        Ok(ingestion) => {
            let executor = executor.clone();
            let ctx = RunContext {
                run_id: run.run_id,
                attempt: run.attempt,
                worker_id: cfg.worker_id.clone(),
                triggered_by: run.triggered_by,
                kind: run.kind,
                maintained_table: run.maintained_table.clone(),
                scheduled_for: run.scheduled_for,
                data_interval_start: run.data_interval_start,
                data_interval_end: run.scheduled_for,
                ingestion,
                cancel: cancel.clone(),
            };
            let work: ExecFuture<'static> = Box::pin(async move { executor.execute(ctx).await });
            work
        }
        Err(e) => Box::pin(std::future::ready(Err(e))),
    };
    // The first poll runs here: a run done at once (nothing to load) needs no task of its own,
    // and spawning one for every run costs quick runs a fifth of their throughput. A run that is
    // not done moves to a task of its own, so a step that holds its thread cannot hold up the
    // heartbeat. (The lease's TTL covers the first poll, up to the executor's first await.)
    let mut work = work;
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(work.as_mut().poll(cx))).await;
    let result = match first {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => {
            let mut work = tokio::spawn(work.instrument(tracing::Span::current()));
            let work_ended =
                |joined: Result<Result<RunOutput, ExecError>, tokio::task::JoinError>| {
                    joined.unwrap_or_else(|e| {
                        Err(ExecError::Permanent(if e.is_panic() {
                            "the run's executor panicked (see the worker's log)".to_owned()
                        } else {
                            "the run's executor was cancelled".to_owned()
                        }))
                    })
                };
            let mut beat = tokio::time::interval(cfg.heartbeat_interval);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            beat.tick().await; // the claim itself was the first heartbeat
            loop {
                tokio::select! {
                    biased;
                    joined = &mut work => break work_ended(joined),
                    () = tokio::time::sleep_until(held_until.into()) => {
                        // Not one heartbeat answered for a whole TTL (the database was out of
                        // reach, or this process stalled): the lease may have expired and the run
                        // be another worker's. Whatever the executor would still write is no
                        // longer this worker's to write (and its commit would be refused by the
                        // fence): stop it, record nothing. Then offer the run back, briefly, so
                        // that another worker need not wait for the lease to expire.
                        cancel.cancel();
                        work.abort();
                        metrics::counter!("autoloader_runs_stopped_unreachable_total").increment(1);
                        tracing::error!(lease_ttl_s = cfg.lease_ttl.as_secs_f64(),
                            "the database has not answered a heartbeat for a whole lease TTL; \
                             stopping the run and recording nothing");
                        let reason = format!("requeued: worker {worker} could not renew its lease for a whole TTL");
                        match requeue(&pool, &cfg, cfg.heartbeat_interval, lease, Duration::ZERO, reason, None).await {
                            Ok(true) => tracing::warn!("run given back"),
                            Ok(false) => lease_lost("giving the run back"),
                            Err(e) => tracing::warn!(error = %e,
                                "cannot give the run back; another worker takes it when its lease expires"),
                        }
                        return Ended::Released;
                    }
                    () = give_back.cancelled() => {
                        cancel.cancel();
                        work.abort();
                        let reason = format!("requeued: worker {worker} shut down before the run finished");
                        let given = requeue(&pool, &cfg, cfg.answer_bound, lease, Duration::ZERO, reason, None).await;
                        match given {
                            Ok(true) => tracing::warn!("run given back at shutdown"),
                            Ok(false) => lease_lost("giving the run back"),
                            Err(e) => tracing::error!(error = %e, "cannot give the run back; it is requeued when its lease expires"),
                        }
                        return Ended::Released;
                    }
                    _ = beat.tick() => match heartbeat(&pool, &cfg, lease, held_until).await {
                        Ok(sent) => {
                            held_until = sent + cfg.lease_ttl;
                            metrics::counter!("autoloader_heartbeats_total").increment(1);
                        }
                        Err(None) => {
                            cancel.cancel();
                            work.abort();
                            lease_lost("heartbeat");
                            return Ended::Released;
                        }
                        // The lease may still be ours; the next beat (or the outcome) will tell.
                        Err(Some(e)) => {
                            metrics::counter!("autoloader_database_errors_total", "statement" => "run_heartbeat")
                                .increment(1);
                            tracing::warn!(error = %e, "heartbeat failed")
                        }
                    },
                }
            }
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let status = if result.is_ok() { "success" } else { "failed" };
    metrics::histogram!("autoloader_run_duration_seconds", "status" => status).record(secs);
    let outcome = match result {
        Ok(out) => Outcome::Success(out),
        Err(ExecError::Transient(msg)) if run.attempt <= cfg.retries => {
            retry(&pool, &cfg, &run, &msg, secs).await;
            return Ended::Released;
        }
        Err(e) => Outcome::Failure(e.to_string()),
    };
    let handed = finished.send(Finished {
        lease,
        outcome,
        secs,
        span: tracing::Span::current(),
    });
    match handed {
        Ok(()) => Ended::Finished,
        // Only when the loop is gone, which waits for every run first.
        Err(_) => {
            tracing::error!("cannot record the run's outcome: the worker is stopping");
            Ended::Released
        }
    }
}

/// Requeues a run after a transient error, claimable after the back-off. The error that failed
/// the run (a database failover, a network cut) may fail this write too: it is tried again every
/// second while the lease lasts, since past it the run is rescued anyway (and the write, fenced by
/// the lease, would change nothing).
async fn retry(pool: &PgPool, cfg: &WorkerConfig, run: &Claimed, error: &str, secs: f64) {
    let delay = cfg
        .retry_backoff
        .saturating_mul(1 << (run.attempt - 1).clamp(0, 16));
    let reason = format!(
        "retry {} of {} in {}s after a transient error",
        run.attempt,
        cfg.retries,
        delay.as_secs()
    );
    let give_up = Instant::now() + cfg.lease_ttl;
    loop {
        let written = requeue(
            pool,
            cfg,
            cfg.answer_bound,
            run.lease(),
            delay,
            reason.clone(),
            Some(error.to_owned()),
        )
        .await;
        match written {
            Ok(true) => {
                tracing::warn!(duration_s = secs, error, outcome = "retrying", "run failed");
                metrics::counter!("autoloader_scheduled_executions_total", "status" => "retrying")
                    .increment(1);
                return;
            }
            Ok(false) => return lease_lost("recording the outcome"),
            Err(e) if Instant::now() + RETRY_WRITE_EVERY < give_up => {
                metrics::counter!("autoloader_database_errors_total", "statement" => "run_requeue")
                    .increment(1);
                tracing::warn!(error = %e, "cannot requeue the run for its retry yet; trying again");
                tokio::time::sleep(RETRY_WRITE_EVERY).await;
            }
            Err(e) => {
                return tracing::error!(error = %e, outcome = "retrying", "cannot record the run's outcome; it is requeued when its lease expires")
            }
        }
    }
}

/// How often a retry's requeue is tried again while the database does not answer.
const RETRY_WRITE_EVERY: Duration = Duration::from_secs(1);

/// Renews `lease`, waiting for the answer no longer than a heartbeat interval nor past
/// `held_until` (a later beat tries again, on a fresh connection). `Ok`: renewed, for a TTL from
/// the returned instant; `Err(None)`: the lease is gone; `Err(Some)`: no answer, or an error.
async fn heartbeat(
    pool: &PgPool,
    cfg: &WorkerConfig,
    lease: Lease,
    held_until: Instant,
) -> Result<Instant, Option<sqlx::Error>> {
    let sent = Instant::now();
    let bound = cfg
        .heartbeat_interval
        .min(held_until.saturating_duration_since(sent))
        .max(Duration::from_millis(1));
    let (worker, ttl) = (cfg.worker_id.clone(), cfg.lease_ttl);
    let renewed = autoloader::db::answered(pool, bound, move |db| {
        Box::pin(async move { lease::run_heartbeat(db, &worker, lease, ttl).await })
    })
    .await;
    match renewed {
        Ok(true) => Ok(sent),
        Ok(false) => Err(None),
        Err(e) => Err(Some(e)),
    }
}

/// [`lease::run_requeue`], waiting at most `bound` for the answer.
async fn requeue(
    pool: &PgPool,
    cfg: &WorkerConfig,
    bound: Duration,
    lease: Lease,
    delay: Duration,
    reason: String,
    error: Option<String>,
) -> Result<bool, sqlx::Error> {
    let worker = cfg.worker_id.clone();
    autoloader::db::answered(pool, bound, move |db| {
        Box::pin(async move {
            lease::run_requeue(db, &worker, lease, delay, &reason, error.as_deref()).await
        })
    })
    .await
}

fn lease_lost(during: &str) {
    metrics::counter!("autoloader_leases_lost_total").increment(1);
    tracing::warn!(
        during,
        "lease lost: another worker owns this run now; stopping it and recording nothing"
    );
}
