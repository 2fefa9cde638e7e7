//! `autoloader-worker`: fires due schedule ticks and executes queued runs, loading each
//! ingestion's new files into its Iceberg table.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use autoloader::config::{DatabaseConfig, FileRootsConfig, RoleConfig, SchedulerConfig};
use autoloader_worker::ingest::warehouse::split_s3;
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

    /// Where new Iceberg tables' data and metadata go: a local directory (relative paths are
    /// taken from the working directory; `file:///abs/dir` also works) or an S3 prefix
    /// `s3://bucket/prefix` (also `s3a://`), with S3 configured by the `AWS_*` variables. The
    /// catalog itself is in PostgreSQL, schema `iceberg_catalog`.
    #[arg(long, env = "AUTOLOADER_WAREHOUSE", default_value = ".local/warehouse")]
    warehouse: String,

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
    let warehouse = warehouse_url(&cli.warehouse)?;
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
            warehouse: warehouse.clone(),
            file_roots,
            failpoint_after_commit,
        },
    );
    tracing::info!(warehouse = %warehouse, "ingestion executor ready");
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

/// The warehouse as the catalog takes it: an S3 URL as given (less a trailing `/`, which would
/// double the one before each table's path), or a local directory, created if missing, as
/// `file:///abs/path`.
fn warehouse_url(value: &str) -> anyhow::Result<String> {
    if let Some((bucket, _)) = split_s3(value) {
        if bucket.is_empty() {
            bail!("AUTOLOADER_WAREHOUSE {value}: no bucket (expected s3://bucket/prefix)");
        }
        return Ok(value.trim_end_matches('/').to_owned());
    }
    let dir = match value.strip_prefix("file://") {
        Some(path) => path,
        None if value.contains("://") => bail!(
            "AUTOLOADER_WAREHOUSE {value}: unsupported scheme (expected a local directory, \
             file:///abs/dir or s3://bucket/prefix)"
        ),
        None => value,
    };
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the warehouse {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving the warehouse {}", dir.display()))?;
    Ok(format!("file://{}", dir.display()))
}
