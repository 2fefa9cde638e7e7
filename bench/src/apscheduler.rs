//! The spec's reference design, for comparison (optional): APScheduler 3.11 with a SQLAlchemy
//! job store on PostgreSQL and 10 threads, 10k every-minute no-op jobs; lateness per minute.
//! The Python side is `bench/apscheduler/bench_apscheduler.py`, run with the interpreter of the
//! virtualenv `make bench` creates (`bench/.venv`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio::process::Command;

use crate::util::{self, Env};

#[derive(Debug, Clone, Args)]
pub struct ApsArgs {
    /// Python of a virtualenv with bench/apscheduler/requirements.txt installed.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"))]
    pub python: PathBuf,
    /// Every-minute jobs.
    #[arg(long, default_value_t = 10_000)]
    pub jobs: u64,
    /// Executor threads.
    #[arg(long, default_value_t = 10)]
    pub threads: u32,
    /// Minute boundaries measured.
    #[arg(long, default_value_t = 2)]
    pub minutes: u32,
}

pub fn name(a: &ApsArgs) -> String {
    format!("apscheduler-j{}-t{}", a.jobs, a.threads)
}

pub async fn run(env: &Env, a: &ApsArgs) -> Result<serde_json::Value> {
    let db = "autoloader_bench_apscheduler";
    let url = env.create_db(db).await?;
    let r = run_in(a, &url).await;
    env.drop_now(db).await?;
    r
}

async fn run_in(a: &ApsArgs, url: &url::Url) -> Result<serde_json::Value> {
    eprintln!(
        "apscheduler: {} every-minute jobs, {} threads, {} minutes",
        a.jobs, a.threads, a.minutes
    );
    let script = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/apscheduler/bench_apscheduler.py"
    ));
    let sa_url = url
        .as_str()
        .replacen("postgres://", "postgresql+psycopg2://", 1);
    let timeout = 300 + 60 * u64::from(a.minutes);
    let mut cmd = Command::new(&a.python);
    cmd.arg(&script)
        .arg("--url")
        .arg(&sa_url)
        .arg("--jobs")
        .arg(a.jobs.to_string())
        .arg("--threads")
        .arg(a.threads.to_string())
        .arg("--minutes")
        .arg(a.minutes.to_string())
        .arg("--timeout")
        .arg(timeout.to_string());
    let out = util::run_to_end(
        cmd,
        "bench_apscheduler.py",
        Duration::from_secs(timeout + 120),
    )
    .await?;
    let mut v: serde_json::Value =
        serde_json::from_str(out.lines().last().context("no output")?)
            .with_context(|| format!("bench_apscheduler.py printed {out:?}"))?;
    v["benchmark"] = "apscheduler".into();
    Ok(v)
}
