//! `autoloader-worker`: fires due schedule ticks and executes queued runs, loading each
//! ingestion's new files into its Iceberg table.

use std::sync::Arc;

use autoloader::config::{EgressConfig, FileRootsConfig, LimitsConfig, SecretKeyConfig};
use autoloader_worker::ingest::warehouse_url;
use autoloader_worker::ingest::{Failpoint, IngestConfig, IngestExecutor};
use autoloader_worker::process::Process;
use clap::Args;

/// The loader's own flags.
#[derive(Debug, Args)]
struct LoaderFlags {
    #[command(flatten)]
    file_roots: FileRootsConfig,

    #[command(flatten)]
    egress: EgressConfig,

    #[command(flatten)]
    limits: LimitsConfig,

    #[command(flatten)]
    secrets: SecretKeyConfig,

    /// Where new Iceberg tables' data and metadata go: a local directory (relative paths are
    /// taken from the working directory; `file:///abs/dir` also works) or an S3 prefix
    /// `s3://bucket/prefix` (also `s3a://`), with S3 configured by the `AWS_*` variables. The
    /// catalog itself is in PostgreSQL, schema `iceberg_catalog`.
    #[arg(long, env = "AUTOLOADER_WAREHOUSE", default_value = ".local/warehouse")]
    warehouse: String,

    /// Let S3 sources that give no keys of their own use this worker's credentials (its `AWS_*`
    /// variables or instance role). Only for a single-tenant deployment: otherwise any tenant
    /// could read whatever the worker can. Unset: such sources are read anonymously.
    #[arg(long, env = "AUTOLOADER_ALLOW_WORKER_CREDENTIALS", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    allow_worker_credentials: bool,

    /// Test hook: `after-commit` stops the worker dead right after a snapshot commits, before the
    /// run's outcome is recorded, to exercise crash recovery; `pause-before-commit` waits 3 s
    /// before each commit, so another writer commits first; `pause-after-commit` waits 1 s after
    /// each commit, before the outcome. Never set it in production.
    #[arg(long, env = "AUTOLOADER_FAILPOINT", hide = true)]
    failpoint: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let process = Process::<LoaderFlags>::start(
        "autoloader-worker",
        "Autoloader worker: fires due schedule ticks and executes queued runs. Run as many as you \
         like, on as many machines as you like; PostgreSQL decides who does what.",
        "info",
    )
    .await?;
    let flags = &process.flags.executor;
    let file_roots = flags.file_roots.resolve().map_err(anyhow::Error::msg)?;
    let warehouse = warehouse_url(&flags.warehouse).map_err(anyhow::Error::msg)?;
    let failpoint = Failpoint::parse(flags.failpoint.as_deref()).map_err(anyhow::Error::msg)?;
    let executor = Arc::new(IngestExecutor::new(
        process.pool.clone(),
        IngestConfig {
            // The catalog's own pool: the same session settings as every other connection.
            database_url: autoloader::db::url_with_session_settings(&process.flags.database),
            warehouse: warehouse.clone(),
            file_roots,
            allow_worker_credentials: flags.allow_worker_credentials,
            egress: flags.egress.resolve().map_err(anyhow::Error::msg)?,
            limits: flags.limits.limits(),
            secrets: flags
                .secrets
                .resolve()
                .map_err(anyhow::Error::msg)?
                .map(Arc::new),
            failpoint,
            maintenance: process.flags.maintenance,
        },
    ));
    tracing::info!(warehouse = %warehouse, "ingestion executor ready");
    // The loader also answers dry runs (`dry_runs`): the API links no loader.
    process
        .serve_with_dry_runs(executor.clone(), Some(executor))
        .await;
    Ok(())
}
