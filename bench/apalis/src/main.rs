//! The apalis-postgres 1.0 side of the claim-throughput benchmark.
//!
//! Given an empty database of its own, it applies apalis-postgres's migrations, pushes `--jobs`
//! jobs in bulk (`apalis_postgres::queries::push_tasks`, one multi-row insert per chunk), then
//! runs one worker with a no-op handler at `--concurrency` (`.concurrency(C).parallelize(
//! tokio::spawn)`, as apalis's README does) and polls `apalis.jobs` until every job is `Done` or
//! `--timeout-secs` passes. It prints one JSON object on stdout; the times come from the database's
//! clock (`lock_at` of the first fetch to `done_at` of the last job) and from this process's.
//! `bench-scheduler claim` runs it; it can also be run alone.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use apalis::prelude::*;
use apalis_postgres::{Config, PgTask, PostgresStorage};
use clap::Parser;
use sqlx::postgres::PgPoolOptions;

#[derive(Debug, Parser)]
#[command(name = "bench-apalis")]
struct Cli {
    /// URL of the (empty) database to use; the harness creates and drops it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Jobs to push and drain.
    #[arg(long, default_value_t = 20_000)]
    jobs: u64,
    /// Jobs in flight at once in the worker.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Jobs one fetch takes (apalis `Config::batch_size`; apalis's default is 10).
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Pool size of the worker process (Autoloader's default is 20).
    #[arg(long, default_value_t = 20)]
    pool_size: u32,
    /// Give up after this long.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

const QUEUE: &str = "bench-noop";

async fn noop(_job: u64) -> Result<(), BoxDynError> {
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let pool = PgPoolOptions::new()
        .max_connections(cli.pool_size)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&cli.database_url)
        .await
        .context("connecting")?;
    PostgresStorage::setup(&pool)
        .await
        .context("applying apalis-postgres migrations")?;

    // Push in bulk: chunks of 5 000 jobs, one multi-row insert (UNNEST) and one commit each.
    let push_started = Instant::now();
    let mut next = 0u64;
    while next < cli.jobs {
        let end = (next + 5_000).min(cli.jobs);
        let tasks: Vec<PgTask> = (next..end)
            .map(|i| TaskBuilder::new(serde_json::to_vec(&i).expect("a u64 serialises")).build())
            .collect();
        let mut tx = pool.begin().await?;
        apalis_postgres::queries::push_tasks(&mut *tx, QUEUE, tasks)
            .await
            .context("pushing jobs")?;
        tx.commit().await?;
        next = end;
    }
    let push_s = push_started.elapsed().as_secs_f64();
    sqlx::query("analyze apalis.jobs").execute(&pool).await?;
    // `run_at` has whole-second precision and is claimable only once `run_at < now()`.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let backend = PostgresStorage::<u64>::new(&pool)
        .with_config(Config::default().queue(QUEUE).batch_size(cli.batch_size));
    let worker = WorkerBuilder::new("bench-apalis")
        .backend(backend)
        .concurrency(cli.concurrency)
        .parallelize(tokio::spawn)
        .build(noop);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(cli.timeout_secs);
    let mut polls = 0u64;
    let poll_loop = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            polls += 1;
            let done: i64 = sqlx::query_scalar(
                "select count(*) from apalis.jobs where job_type = $1 and status = 'Done'",
            )
            .bind(QUEUE)
            .fetch_one(&pool)
            .await?;
            if done as u64 >= cli.jobs {
                return anyhow::Ok(done);
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out after {}s with {done} of {} jobs done",
                    cli.timeout_secs,
                    cli.jobs
                );
            }
        }
    };
    // The worker runs in this task: `tokio::spawn` of `worker.run()` does not type-check with
    // apalis 1.0 (a higher-ranked lifetime on its boxed error); dropping it stops it.
    let done = tokio::select! {
        r = worker.run() => bail!("the apalis worker stopped before every job was done: {r:?}"),
        r = poll_loop => r?,
    };
    let wall_s = started.elapsed().as_secs_f64();

    let (span_s,): (f64,) = sqlx::query_as(
        "select extract(epoch from max(done_at) - min(lock_at))::float8 from apalis.jobs where job_type = $1",
    )
    .bind(QUEUE)
    .fetch_one(&pool)
    .await?;
    // Every job fetched by one get_jobs call shares its lock_at, every job acknowledged by one
    // handle_results statement its done_at.
    let (fetches, per_fetch, acks, per_ack): (i64, f64, i64, f64) = sqlx::query_as(
        "select (select count(distinct lock_at) from apalis.jobs where job_type = $1)::int8,
                (select count(*) from apalis.jobs where job_type = $1)::float8
                    / greatest((select count(distinct lock_at) from apalis.jobs where job_type = $1), 1),
                (select count(distinct done_at) from apalis.jobs where job_type = $1)::int8,
                (select count(*) from apalis.jobs where job_type = $1)::float8
                    / greatest((select count(distinct done_at) from apalis.jobs where job_type = $1), 1)",
    )
    .bind(QUEUE)
    .fetch_one(&pool)
    .await?;
    let out = serde_json::json!({
        "system": "apalis-postgres 1.0",
        "jobs": cli.jobs,
        "done": done,
        "concurrency": cli.concurrency,
        "batch_size": cli.batch_size,
        "pool_size": cli.pool_size,
        "push_s": push_s,
        "wall_s": wall_s,
        "db_span_s": span_s,
        "jobs_per_s": cli.jobs as f64 / span_s,
        "polls": polls,
        "batches": {
            "fetch_statements": fetches, "jobs_per_fetch_avg": per_fetch,
            "ack_statements": acks, "jobs_per_ack_avg": per_ack,
        },
    });
    println!("{out}");
    pool.close().await;
    Ok(())
}
