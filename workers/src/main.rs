//! `autoloader-worker`: fires due schedule ticks and executes queued runs, loading each
//! ingestion's new files into its Iceberg table.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use autoloader::config::{DatabaseConfig, FileRootsConfig, RoleConfig, SchedulerConfig};
use autoloader_worker::ingest::{IngestConfig, IngestExecutor};
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

    #[command(flatten)]
    file_roots: FileRootsConfig,

    /// Directory new Iceberg tables' data and metadata go under (relative paths are taken from
    /// the working directory). The catalog itself is in PostgreSQL, schema `iceberg_catalog`.
    #[arg(long, env = "AUTOLOADER_WAREHOUSE", default_value = ".local/warehouse")]
    warehouse: PathBuf,

    /// Test hook: `after-commit` stops the worker dead right after a snapshot commits, before the
    /// run's outcome is recorded, to exercise crash recovery. Never set it in production.
    #[arg(long, env = "AUTOLOADER_FAILPOINT", hide = true)]
    failpoint: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    autoloader::config::load_dotenv();
    let cli = Cli::parse();
    autoloader::telemetry::init("info");
    if let Err(e) = cli.scheduler.validate() {
        bail!(e);
    }
    let file_roots = cli.file_roots.resolve().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&cli.warehouse)
        .with_context(|| format!("creating the warehouse {}", cli.warehouse.display()))?;
    let warehouse = cli
        .warehouse
        .canonicalize()
        .with_context(|| format!("resolving the warehouse {}", cli.warehouse.display()))?;
    let failpoint_after_commit = match cli.failpoint.as_deref() {
        None | Some("") => false,
        Some("after-commit") => true,
        Some(other) => bail!("AUTOLOADER_FAILPOINT: unknown failpoint '{other}'"),
    };
    let pool = autoloader::db::connect(&cli.database, "autoloader-worker").await?;
    let executor = IngestExecutor::new(
        pool.clone(),
        IngestConfig {
            database_url: cli.database.database_url.clone(),
            warehouse,
            file_roots,
            failpoint_after_commit,
        },
    );
    tracing::info!(warehouse = %cli.warehouse.display(), "ingestion executor ready");
    let shutdown = autoloader::process::shutdown_on_signals();
    autoloader::process::run(
        pool,
        &cli.scheduler,
        &cli.role,
        Arc::new(executor),
        shutdown,
    )
    .await;
    Ok(())
}
