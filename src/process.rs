//! What an `autoloader-worker` process is: a ticker, a worker pool, or both, sharing one
//! database pool and one shutdown signal. Shared by the shipped binary and the test binaries, so
//! tests drive exactly the loops production runs, with only the executor swapped.

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::{RoleConfig, SchedulerConfig};
use crate::executor::Executor;
use crate::worker::{default_worker_id, Worker};

/// Runs the loops `role` asks for until `shutdown` fires and they have drained.
pub async fn run(
    pool: PgPool,
    scheduler: &SchedulerConfig,
    role: &RoleConfig,
    executor: Arc<dyn Executor>,
    shutdown: CancellationToken,
) {
    let worker_id = role.worker_id.clone().unwrap_or_else(default_worker_id);
    tracing::info!(%worker_id, ticker = !role.no_ticker, workers = !role.ticker_only, "scheduler starting");
    let mut tasks = tokio::task::JoinSet::new();
    if !role.no_ticker {
        tasks.spawn(crate::ticker::run(
            pool.clone(),
            scheduler.ticker(),
            shutdown.clone(),
        ));
    }
    if !role.ticker_only {
        let worker = Worker::new(pool.clone(), scheduler.worker(worker_id.clone()), executor);
        tasks.spawn(worker.run(shutdown.clone()));
    }
    if let Some(days) = scheduler.run_retention_days {
        tasks.spawn(crate::retention::run(pool.clone(), days, shutdown.clone()));
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            // A loop that panicked must not leave the process half alive.
            tracing::error!(error = %e, "a scheduler loop died; stopping the process");
            shutdown.cancel();
        }
    }
    tracing::info!(%worker_id, "scheduler stopped");
}

/// A token cancelled by the first SIGTERM or Ctrl-C. A second signal exits the process at once
/// (status 130), leaving any leases to expire and be recovered by other workers.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers; stop this process with SIGKILL");
                return;
            }
        };
        signals.next().await;
        tracing::info!("shutdown requested; signal again to exit at once");
        cancel.cancel();
        signals.next().await;
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    token
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
