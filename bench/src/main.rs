//! `bench-scheduler`: benchmarks of Autoloader's scheduling engine against a real PostgreSQL.
//!
//! ```text
//! bench-scheduler burst --schedules 10000 --workers 2   # N schedules due at one instant
//! bench-scheduler claim --runs 20000 --workers 2        # drain queued runs; apalis; pgbench
//! bench-scheduler idle                                  # CPU and RSS of an idle worker
//! bench-scheduler all                                   # what `make bench` runs
//! bench-scheduler report                                # tables from bench/results/raw
//! ```
//!
//! Every benchmark creates its own database(s) (`autoloader_bench_*`) on the cluster of
//! `DATABASE_URL`, applies `autoloader::db::MIGRATOR`, and drops them at the end, also after an
//! error or Ctrl-C. The worker processes it starts (`bench-worker`, `bench-apalis`) are killed
//! when it stops, whatever the reason. Raw results go to `bench/results/raw/*.json`, worker logs
//! to `bench/results/logs/`, and the tables to `bench/results/summary.md`.

mod apscheduler;
mod burst;
mod claim;
mod idle;
mod prototype;
mod report;
mod util;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bench-scheduler",
    about = "Benchmarks of Autoloader's scheduling engine"
)]
struct Cli {
    /// Any database URL of the cluster to use (the benchmarks create their own databases on it;
    /// the role must be allowed to create databases).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Where raw results, logs and the summary go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    results_dir: PathBuf,
    /// RUST_LOG of the worker processes (`info` logs two lines per run, as shipped).
    #[arg(long, default_value = "warn")]
    worker_log: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// N schedules due at the same instant; lateness and time to materialise, start, finish.
    Burst(burst::BurstArgs),
    /// Queued no-op runs drained by Autoloader workers vs apalis-postgres 1.0 vs pgbench -N.
    Claim(claim::ClaimArgs),
    /// CPU and memory of one worker process while nothing is due.
    Idle(idle::IdleArgs),
    /// The spec's reference design: APScheduler 3.11 + SQLAlchemy job store (needs bench/.venv).
    Apscheduler(apscheduler::ApsArgs),
    /// Everything `make bench` runs (sizes below), then the tables.
    All(AllArgs),
    /// What-if drains with batched claims and outcomes (evidence for engine changes).
    Prototype(prototype::ProtoArgs),
    /// Print the tables from the raw results already in the results folder.
    Report,
}

#[derive(Debug, Clone, clap::Args)]
struct AllArgs {
    /// Burst sizes.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    burst_sizes: Vec<i64>,
    /// Worker process counts of the burst.
    #[arg(long, value_delimiter = ',', default_value = "2,4")]
    burst_workers: Vec<usize>,
    /// Queued runs of the claim benchmark.
    #[arg(long, default_value_t = 20_000)]
    claim_runs: i64,
    /// Worker process counts of the claim benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    claim_workers: Vec<usize>,
    /// Repetitions of each claim drain.
    #[arg(long, default_value_t = 3)]
    claim_repeat: usize,
    /// Idle window in seconds.
    #[arg(long, default_value_t = 60)]
    idle_window: u64,
    /// Python of a virtualenv with bench/apscheduler/requirements.txt: also run the APScheduler
    /// comparison (skipped, with a note, when not given).
    #[arg(long)]
    apscheduler_python: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let env = match util::Env::new(
        &cli.database_url,
        cli.results_dir.clone(),
        cli.worker_log.clone(),
    )
    .await
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    };
    let outcome = tokio::select! {
        r = run(&env, &cli.command) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    // Whatever happened: child processes are gone (kill_on_drop), now the databases.
    env.drop_created().await;
    if let Err(e) = outcome {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(env: &util::Env, cmd: &Cmd) -> Result<()> {
    let machine = util::machine(&env.admin).await?;
    if !matches!(cmd, Cmd::Report) {
        env.save("machine", &machine)?;
    }
    match cmd {
        Cmd::Burst(a) => one(env, &burst::name(a), burst::run(env, a).await?)?,
        Cmd::Claim(a) => one(env, &claim::name(a), claim::run(env, a).await?)?,
        Cmd::Idle(a) => one(env, &idle::name(a), idle::run(env, a).await?)?,
        Cmd::Apscheduler(a) => one(env, &apscheduler::name(a), apscheduler::run(env, a).await?)?,
        Cmd::Prototype(a) => one(env, "prototype", prototype::run(env, a).await?)?,
        Cmd::Report => {}
        Cmd::All(all) => {
            // Start from a clean slate so the summary shows this run only.
            for entry in std::fs::read_dir(env.results_dir.join("raw"))? {
                let p = entry?.path();
                if p.extension().is_some_and(|e| e == "json") {
                    std::fs::remove_file(p)?;
                }
            }
            env.save("machine", &machine)?;
            for &n in &all.burst_sizes {
                for &w in &all.burst_workers {
                    let a = burst::BurstArgs {
                        schedules: n,
                        workers: w,
                        max_workers: 50,
                        pool: None,
                        tick_batch: None,
                        timeout_secs: 900,
                    };
                    one(env, &burst::name(&a), burst::run(env, &a).await?)?;
                }
            }
            for (i, &w) in all.claim_workers.iter().enumerate() {
                let a = claim::ClaimArgs {
                    runs: all.claim_runs,
                    workers: w,
                    concurrency: 50,
                    pool: None,
                    repeat: all.claim_repeat,
                    // apalis and pgbench do not depend on the worker process count: run them once.
                    no_apalis: i > 0,
                    apalis_batch: None,
                    no_pgbench: i > 0,
                    pgbench_secs: 20,
                    timeout_secs: 600,
                    synchronous_commit: None,
                };
                one(env, &claim::name(&a), claim::run(env, &a).await?)?;
            }
            // Sensitivity, to show what limits the drain: a pool as large as the slots, and
            // commits that do not wait for the WAL flush (Autoloader and apalis alike).
            let base = claim::ClaimArgs {
                runs: all.claim_runs,
                workers: 2,
                concurrency: 50,
                pool: Some(50),
                repeat: 1,
                no_apalis: true,
                apalis_batch: None,
                no_pgbench: true,
                pgbench_secs: 20,
                timeout_secs: 600,
                synchronous_commit: None,
            };
            one(env, &claim::name(&base), claim::run(env, &base).await?)?;
            let a = claim::ClaimArgs {
                pool: None,
                no_apalis: false,
                synchronous_commit: Some("off".to_owned()),
                ..base
            };
            one(env, &claim::name(&a), claim::run(env, &a).await?)?;
            let a = prototype::ProtoArgs {
                runs: all.claim_runs,
                loops: 2,
                concurrency: 50,
                pool: 20,
                timeout_secs: 300,
            };
            one(env, "prototype", prototype::run(env, &a).await?)?;
            let a = idle::IdleArgs {
                schedules: 10_000,
                settle_secs: 10,
                window_secs: all.idle_window,
                max_workers: 50,
            };
            one(env, &idle::name(&a), idle::run(env, &a).await?)?;
            match &all.apscheduler_python {
                Some(python) => {
                    let a = apscheduler::ApsArgs {
                        python: python.clone(),
                        jobs: 10_000,
                        threads: 10,
                        minutes: 2,
                    };
                    // Optional: a failure here is reported, not fatal.
                    match apscheduler::run(env, &a).await {
                        Ok(v) => one(env, &apscheduler::name(&a), v)?,
                        Err(e) => eprintln!("apscheduler: skipped: {e:#}"),
                    }
                }
                None => eprintln!("apscheduler: skipped (no --apscheduler-python)"),
            }
        }
    }
    let tables = report::tables(&env.results_dir.join("raw"))?;
    println!("\n{tables}");
    std::fs::write(env.results_dir.join("summary.md"), &tables)?;
    eprintln!(
        "tables written to {}",
        env.results_dir.join("summary.md").display()
    );
    Ok(())
}

fn one(env: &util::Env, name: &str, value: serde_json::Value) -> Result<()> {
    let path = env.save(name, &value)?;
    eprintln!("{name}: {}", path.display());
    Ok(())
}
