//! `autoloader-worker`: fires due schedule ticks and executes queued runs.
//!
//! Loading files into Iceberg (the ingestion executor) is not built yet. Until it is, every run
//! this worker claims fails with an error that says so: the schedule, the run history, leases and
//! recovery all work, and no run pretends to have loaded anything.

use std::sync::Arc;

use anyhow::bail;
use autoloader::config::{DatabaseConfig, RoleConfig, SchedulerConfig};
use autoloader::executor::{ExecError, ExecFuture, Executor, RunContext};
use clap::Parser;

/// Autoloader worker: fires due schedule ticks and executes queued runs. Run as many as you like,
/// on as many machines as you like; PostgreSQL decides who does what.
#[derive(Debug, Parser)]
#[command(name = "autoloader-worker", version)]
struct Cli {
    #[command(flatten)]
    database: DatabaseConfig,

    #[command(flatten)]
    scheduler: SchedulerConfig,

    #[command(flatten)]
    role: RoleConfig,
}

/// Stands in for the ingestion executor until it is built: fails every run, saying why.
struct NotBuiltYet;

impl Executor for NotBuiltYet {
    fn execute(&self, _ctx: RunContext) -> ExecFuture<'_> {
        Box::pin(async {
            Err(ExecError::Permanent(
                "the ingestion executor is not built yet: no files were loaded".to_owned(),
            ))
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    autoloader::config::load_dotenv();
    let cli = Cli::parse();
    autoloader::telemetry::init("info");
    if let Err(e) = cli.scheduler.validate() {
        bail!(e);
    }
    let pool = autoloader::db::connect(&cli.database, "autoloader-worker").await?;
    let shutdown = autoloader::process::shutdown_on_signals();
    autoloader::process::run(
        pool,
        &cli.scheduler,
        &cli.role,
        Arc::new(NotBuiltYet),
        shutdown,
    )
    .await;
    Ok(())
}
