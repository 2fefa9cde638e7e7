//! `autoloader-worker` with a no-op executor: the same process wiring, ticker and worker runtime as
//! the shipped binary (`workers/src/main.rs`), with an executor that succeeds at once, so that a
//! benchmark measures the scheduling engine and nothing else. Every setting is the shipped
//! worker's flag or environment variable (`bench-worker --help`).
//!
//! It lives with the benchmarks, never in a shipped binary.

use std::sync::Arc;

use autoloader_worker::executor::{ExecFuture, Executor, RunContext, RunOutput};
use autoloader_worker::process::{NoFlags, Process};

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
    // `RUST_LOG` wins; the harness sets it (`--worker-log`, default `warn`).
    let process = match Process::<NoFlags>::start(
        "bench-worker",
        "autoloader-worker with a no-op executor, for benchmarks",
        "warn",
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    process.serve(Arc::new(NoOp)).await;
}
