//! `autoloader-worker` with a test executor: the same process wiring, ticker and worker runtime
//! as the shipped binary, with an executor whose behaviour each ingestion's `options` choose:
//!
//! * `test_sleep_ms` (number): how long the run takes; it stops early when cancelled.
//! * `test_sleep_attempts` (number): sleep only on attempts up to this one (default: all).
//! * `test_fail` (`"permanent"` or `"transient"`): fail after sleeping.
//! * `test_rows` (number): rows the run reports.
//!
//! It lives with the tests, never in a shipped binary.

use std::sync::Arc;
use std::time::Duration;

use autoloader::config::{DatabaseConfig, RoleConfig, SchedulerConfig};
use autoloader::executor::{ExecError, ExecFuture, Executor, RunContext, RunOutput};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "test-worker")]
struct Cli {
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    scheduler: SchedulerConfig,
    #[command(flatten)]
    role: RoleConfig,
}

struct OptionsExecutor;

impl Executor for OptionsExecutor {
    fn execute(&self, ctx: RunContext) -> ExecFuture<'_> {
        Box::pin(async move {
            let opts = &ctx.ingestion.options;
            let sleep_ms = opts["test_sleep_ms"].as_u64().unwrap_or(0);
            let sleep_attempts = opts["test_sleep_attempts"].as_i64().unwrap_or(i64::MAX);
            if sleep_ms > 0 && i64::from(ctx.attempt) <= sleep_attempts {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
                    () = ctx.cancel.cancelled() => return Err(ExecError::Permanent("cancelled".into())),
                }
            }
            match opts["test_fail"].as_str() {
                Some("permanent") => Err(ExecError::Permanent("test failure: permanent".into())),
                Some("transient") => Err(ExecError::Transient("test failure: transient".into())),
                _ => Ok(RunOutput {
                    files_processed: 1,
                    rows_ingested: opts["test_rows"].as_i64().unwrap_or(0),
                    ..RunOutput::default()
                }),
            }
        })
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    autoloader::telemetry::init("info,autoloader=debug");
    if let Err(e) = cli.scheduler.validate() {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let pool = match autoloader::db::connect(&cli.database, "test-worker").await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let shutdown = autoloader::process::shutdown_on_signals();
    autoloader::process::run(
        pool,
        &cli.scheduler,
        &cli.role,
        Arc::new(OptionsExecutor),
        shutdown,
    )
    .await;
}
