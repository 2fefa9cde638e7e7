//! The worker loop in-process, against real PostgreSQL: what it does with outcomes that arrive
//! together. (Spawned worker processes are in `processes.rs`.)

use std::sync::Arc;
use std::time::Duration;

use autoloader_tests::{manual_run, scheduled_ingestion, tenant};
use autoloader_worker::executor::{ExecFuture, Executor, RunContext, RunOutput};
use autoloader_worker::worker::{Worker, WorkerConfig};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Barrier;
use tokio_util::sync::CancellationToken;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// Every run waits until all `n` have started, so they finish together; the run of the
/// ingestion named `broken` reports a negative row count, which the run table refuses.
struct TogetherExecutor {
    all_started: Barrier,
}

impl Executor for TogetherExecutor {
    fn execute(&self, ctx: RunContext) -> ExecFuture<'_> {
        Box::pin(async move {
            self.all_started.wait().await;
            let rows = if ctx.ingestion.name == "broken" {
                -1
            } else {
                7
            };
            Ok(RunOutput {
                rows_ingested: rows,
                ..RunOutput::default()
            })
        })
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_outcome_postgres_refuses_does_not_hold_back_the_others_written_with_it(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let mut runs = Vec::new();
    for name in ["first", "broken", "third"] {
        let i = scheduled_ingestion(&pool, t, name, "0 0 * * *", json!({})).await;
        runs.push(manual_run(&pool, i).await);
    }
    let config = WorkerConfig {
        worker_id: "w".into(),
        max_concurrent: 3,
        // Long enough that no run is rescued and retried during the test.
        lease_ttl: Duration::from_secs(60),
        heartbeat_interval: Duration::from_secs(20),
        shutdown_timeout: Duration::from_secs(1),
        max_attempts: 3,
        retries: 0,
        retry_backoff: Duration::from_secs(1),
        poll_interval: Duration::from_secs(60),
        default_max_concurrent_runs: None,
        answer_bound: Duration::from_secs(35),
    };
    let executor = Arc::new(TogetherExecutor {
        all_started: Barrier::new(3),
    });
    let stop = CancellationToken::new();
    let worker = tokio::spawn(Worker::new(pool.clone(), config, executor).run(stop.clone()));

    let state = || async {
        sqlx::query_as::<_, (String, i32, i64)>(
            "select status, attempt, rows_ingested from runs where id = any($1) order by id",
        )
        .bind(&runs)
        .fetch_all(&pool)
        .await
        .expect("runs")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut now = state().await;
    while now.iter().filter(|r| r.0 == "SUCCESS").count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the good runs' outcomes were not written: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        now = state().await;
    }
    // The two good runs are written once, on their first attempt; the refused one is still
    // RUNNING, left to its lease.
    assert_eq!(
        now,
        vec![
            ("SUCCESS".to_owned(), 1, 7),
            ("RUNNING".to_owned(), 1, 0),
            ("SUCCESS".to_owned(), 1, 7),
        ]
    );
    stop.cancel();
    worker.await.expect("worker stops");
}
