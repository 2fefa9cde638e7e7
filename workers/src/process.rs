//! What a worker process is: a ticker, a worker pool, or both, sharing one database pool and one
//! shutdown signal. Every worker binary (the shipped `autoloader-worker`, the tests'
//! `test-worker`, the benchmarks' `bench-worker`) is [`Process::start`], an executor, and
//! [`Process::serve`], so tests and benchmarks drive exactly the loops production runs, with only
//! the executor (and its own flags) swapped.

use std::sync::Arc;

use autoloader::config::{
    DatabaseConfig, MaintenanceConfig, QuotaConfig, RoleConfig, SchedulerConfig,
    WorkerMetricsConfig,
};
use clap::{Args, CommandFactory, FromArgMatches, Parser};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::dry_runs::DryRunner;
use crate::executor::Executor;
use crate::ticker::TickerConfig;
use crate::worker::{default_worker_id, Worker, WorkerConfig};

/// The flags of a worker process: the database, the scheduler's settings, which loops to run,
/// and the executor's own flags (`X`).
#[derive(Debug, Parser)]
pub struct Flags<X: Args> {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub scheduler: SchedulerConfig,
    #[command(flatten)]
    pub role: RoleConfig,
    /// Tenants' quotas: the claim honours `AUTOLOADER_DEFAULT_MAX_CONCURRENT_RUNS`.
    #[command(flatten)]
    pub quotas: QuotaConfig,
    /// Table maintenance: the scheduler of maintenance runs (with the ticker) and the defaults
    /// of the settings the loader's maintenance runs use.
    #[command(flatten)]
    pub maintenance: MaintenanceConfig,
    #[command(flatten)]
    pub metrics: WorkerMetricsConfig,
    #[command(flatten)]
    pub executor: X,
}

/// No flags of the executor's own.
#[derive(Debug, Clone, Copy, Args)]
pub struct NoFlags;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Database(#[from] autoloader::db::Error),
}

/// A worker process that has read its flags and connected to the database.
pub struct Process<X: Args> {
    pub flags: Flags<X>,
    pub pool: PgPool,
}

impl<X: Args + FromArgMatches> Process<X> {
    /// Reads `.env` and the flags (exits with usage on bad ones, as clap does), sets up logging
    /// (`RUST_LOG`, else `default_log`), checks the settings against each other and connects.
    /// `name` names the binary in `--help` and the database connections in `pg_stat_activity`.
    pub async fn start(
        name: &'static str,
        about: &'static str,
        default_log: &str,
    ) -> Result<Process<X>, StartError> {
        autoloader::config::load_dotenv();
        let matches = Flags::<X>::command()
            .name(name)
            .bin_name(name)
            .about(about)
            .version(env!("CARGO_PKG_VERSION"))
            .get_matches();
        let flags = Flags::<X>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        autoloader::telemetry::init(default_log);
        flags.scheduler.validate().map_err(StartError::Settings)?;
        let pool = autoloader::db::connect(&flags.database, name).await?;
        Ok(Process { flags, pool })
    }

    /// Runs the loops until SIGTERM or Ctrl-C, then drains them (see [`run`]).
    pub async fn serve(self, executor: Arc<dyn Executor>) {
        self.serve_with_dry_runs(executor, None).await
    }

    /// As [`Process::serve`], also answering dry runs with `dry_runs` (unless the process is
    /// `--ticker-only`).
    pub async fn serve_with_dry_runs(
        self,
        executor: Arc<dyn Executor>,
        dry_runs: Option<Arc<dyn DryRunner>>,
    ) {
        let shutdown = autoloader::signals::shutdown_on_signals();
        if let Some(addr) = self.flags.metrics.metrics_addr {
            if let Err(e) = crate::metrics_http::start(addr, shutdown.clone()).await {
                // A worker asked to serve its metrics and unable to is misconfigured: say so and
                // stop, rather than run unobserved.
                tracing::error!(%addr, error = %e, "cannot serve the worker's metrics (AUTOLOADER_WORKER_METRICS_ADDR)");
                std::process::exit(1);
            }
        }
        run(
            self.pool,
            &self.flags,
            Work { executor, dry_runs },
            shutdown,
        )
        .await;
    }
}

/// What a process's workers do: execute runs, and (with a dry runner) answer dry runs.
pub struct Work {
    pub executor: Arc<dyn Executor>,
    pub dry_runs: Option<Arc<dyn DryRunner>>,
}

/// Runs the loops `flags.role` asks for until `shutdown` fires and they have drained.
pub async fn run<X: Args>(pool: PgPool, flags: &Flags<X>, work: Work, shutdown: CancellationToken) {
    let Flags {
        scheduler,
        role,
        quotas,
        maintenance,
        database,
        ..
    } = flags;
    let answer_bound = database.answer_bound();
    let Work { executor, dry_runs } = work;
    let worker_id = role.worker_id.clone().unwrap_or_else(default_worker_id);
    tracing::info!(%worker_id, ticker = !role.no_ticker, workers = !role.ticker_only, "scheduler starting");
    let mut tasks = tokio::task::JoinSet::new();
    if !role.no_ticker {
        tasks.spawn(crate::ticker::run(
            pool.clone(),
            TickerConfig::from_settings(scheduler),
            answer_bound,
            shutdown.clone(),
        ));
    }
    if !role.ticker_only {
        let mut config = WorkerConfig::from_settings(scheduler, worker_id.clone());
        config.default_max_concurrent_runs = quotas.default_max_concurrent_runs;
        config.answer_bound = answer_bound;
        let worker = Worker::new(pool.clone(), config, executor);
        tasks.spawn(worker.run(shutdown.clone()));
        if let Some(runner) = dry_runs {
            tasks.spawn(crate::dry_runs::run(
                pool.clone(),
                worker_id.clone(),
                runner,
                shutdown.clone(),
            ));
        }
    }
    if !role.no_ticker && maintenance.auto {
        tasks.spawn(crate::maintenance::run(
            pool.clone(),
            *maintenance,
            shutdown.clone(),
        ));
    }
    // Always: dry runs' rows are pruned whether or not runs are.
    tasks.spawn(crate::retention::run(
        pool.clone(),
        scheduler.run_retention_days,
        shutdown.clone(),
    ));
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            // A loop that panicked must not leave the process half alive.
            tracing::error!(error = %e, "a scheduler loop died; stopping the process");
            shutdown.cancel();
        }
    }
    tracing::info!(%worker_id, "scheduler stopped");
}
