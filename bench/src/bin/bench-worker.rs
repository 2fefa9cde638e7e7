//! `autoloader-worker` with a no-op executor: the same process wiring, ticker and worker runtime as
//! the shipped binary (`workers/src/main.rs`), with an executor that succeeds at once, so that a
//! benchmark measures the scheduling engine and nothing else. Every setting is the shipped
//! worker's flag or environment variable (`bench-worker --help`).
//!
//! It lives with the benchmarks, never in a shipped binary.

use std::sync::Arc;

use autoloader::config::{DatabaseConfig, RoleConfig, SchedulerConfig};
use autoloader::executor::{ExecFuture, Executor, RunContext, RunOutput};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "bench-worker")]
struct Cli {
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    scheduler: SchedulerConfig,
    #[command(flatten)]
    role: RoleConfig,
}

/// Succeeds at once, reporting one file and no rows.
struct NoOp;

impl Executor for NoOp {
    fn execute(&self, _ctx: RunContext) -> ExecFuture<'_> {
        Box::pin(async {
            Ok(RunOutput {
                files_processed: 1,
                ..RunOutput::default()
            })
        })
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // `RUST_LOG` wins; the harness sets it (`--worker-log`, default `warn`).
    autoloader::telemetry::init("warn");
    if let Err(e) = cli.scheduler.validate() {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let pool = match autoloader::db::connect(&cli.database, "bench-worker").await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let shutdown = autoloader::process::shutdown_on_signals();
    autoloader::process::run(pool, &cli.scheduler, &cli.role, Arc::new(NoOp), shutdown).await;
}
