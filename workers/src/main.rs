//! `autoloader-worker`: the process that turns schedule ticks into runs and executes them.
//!
//! The scheduling engine (ticker, claiming, leases, recovery) is not built yet: this binary
//! validates its configuration and database connection, then says so and exits non-zero, so no
//! deployment mistakes it for a working scheduler.

use anyhow::bail;
use autoloader::config::{DatabaseConfig, SchedulerConfig};
use clap::Parser;

/// Autoloader worker: fires due schedule ticks and executes queued runs.
#[derive(Debug, Parser)]
#[command(name = "autoloader-worker", version)]
struct Cli {
    #[command(flatten)]
    database: DatabaseConfig,

    #[command(flatten)]
    scheduler: SchedulerConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    autoloader::config::load_dotenv();
    let cli = Cli::parse();
    autoloader::telemetry::init("info");
    if let Err(e) = cli.scheduler.validate() {
        bail!(e);
    }
    let _pool = autoloader::db::connect(&cli.database, "autoloader-worker").await?;
    bail!("the scheduling engine is not built yet; this worker would run nothing")
}
