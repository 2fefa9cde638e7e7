//! `autoloader-api`: serves the admin API. Applies pending migrations at start unless told not to.

use std::net::SocketAddr;

use anyhow::Context;
use autoloader::config::DatabaseConfig;
use clap::Parser;

/// Autoloader's admin API: ingestions, schedules, runs and health checks over HTTP.
#[derive(Debug, Parser)]
#[command(name = "autoloader-api", version)]
struct Cli {
    #[command(flatten)]
    database: DatabaseConfig,

    /// Address and port to listen on.
    #[arg(long, env = "AUTOLOADER_API_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,

    /// Token that authorises the tenant administration endpoints (/api/v1/admin/...).
    /// Unset: those endpoints are refused.
    #[arg(long, env = "AUTOLOADER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// Do not apply database migrations at start (apply them with `make migrate` or
    /// `autoloader-api --migrate-only` instead).
    #[arg(long, env = "AUTOLOADER_SKIP_MIGRATIONS", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    skip_migrations: bool,

    /// Apply pending migrations, then exit.
    #[arg(long, conflicts_with = "skip_migrations")]
    migrate_only: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    autoloader::config::load_dotenv();
    let cli = Cli::parse();
    autoloader::telemetry::init("info");

    let pool = autoloader::db::connect(&cli.database, "autoloader-api").await?;
    if !cli.skip_migrations {
        autoloader::db::migrate(&pool).await?;
        tracing::info!("database schema is up to date");
    }
    if cli.migrate_only {
        return Ok(());
    }
    if cli.admin_token.is_none() {
        tracing::warn!("AUTOLOADER_ADMIN_TOKEN is unset: tenant administration is disabled");
    }

    let listener = tokio::net::TcpListener::bind(cli.addr)
        .await
        .with_context(|| format!("cannot listen on {}", cli.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "autoloader-api listening");
    let app = autoloader_api::app(autoloader_api::AppState { pool });
    let shutdown = autoloader::process::shutdown_on_signals();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("autoloader-api stopped");
    Ok(())
}
