//! `autoloader-worker` with a test executor: the same process wiring, ticker and worker runtime
//! as the shipped binary, with an executor whose behaviour each ingestion's `description`
//! chooses, a JSON object (the fixtures write it: `autoloader_tests::scheduled_ingestion`):
//!
//! * `test_sleep_ms` (number): how long the run takes; it stops early when cancelled.
//! * `test_sleep_attempts` (number): sleep only on attempts up to this one (default: all).
//! * `test_fail` (`"permanent"` or `"transient"`): fail after sleeping.
//! * `test_rows` (number): rows the run reports.
//! * `test_block_ms` (number): after a first await, keep the run's thread busy this long without
//!   yielding, as a long decoding step would.
//!
//! It lives with the tests, never in a shipped binary.

use std::sync::Arc;
use std::time::Duration;

use autoloader_worker::executor::{ExecError, ExecFuture, Executor, RunContext, RunOutput};
use autoloader_worker::process::{NoFlags, Process};

struct DescriptionExecutor;

impl Executor for DescriptionExecutor {
    fn execute(&self, ctx: RunContext) -> ExecFuture<'_> {
        Box::pin(async move {
            let opts: serde_json::Value = ctx
                .ingestion
                .description
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_default();
            let sleep_ms = opts["test_sleep_ms"].as_u64().unwrap_or(0);
            let sleep_attempts = opts["test_sleep_attempts"].as_i64().unwrap_or(i64::MAX);
            if sleep_ms > 0 && i64::from(ctx.attempt) <= sleep_attempts {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
                    () = ctx.cancel.cancelled() => return Err(ExecError::Permanent("cancelled".into())),
                }
            }
            if let Some(ms) = opts["test_block_ms"].as_u64() {
                // As the loader's decoding does: after an await (its reads), then no yield.
                tokio::task::yield_now().await;
                std::thread::sleep(Duration::from_millis(ms));
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
    let process = match Process::<NoFlags>::start(
        "test-worker",
        "autoloader-worker with the tests' executor",
        "info,autoloader=debug,autoloader_worker=debug",
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    process.serve(Arc::new(DescriptionExecutor)).await;
}
