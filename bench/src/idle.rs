//! Idle: S enabled schedules, none due for an hour, one bench-worker (ticker + workers). After a
//! settle period, CPU (utime + stime from /proc/PID/stat) over a window, as % of one core, and
//! peak / current RSS (VmHWM / VmRSS from /proc/PID/status); the same CPU for the PostgreSQL
//! backends serving that process, and the commits it made in the window.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Timelike, Utc};
use clap::Args;
use serde_json::json;

use crate::util::{self, Env, Proc};

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Enabled schedules, none due within the window.
    #[arg(long, default_value_t = 10_000)]
    pub schedules: i64,
    /// Seconds to let the process settle before measuring.
    #[arg(long, default_value_t = 10)]
    pub settle_secs: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 60)]
    pub window_secs: u64,
    /// SCHEDULER_MAX_WORKERS of the process.
    #[arg(long, default_value_t = 50)]
    pub max_workers: u32,
}

pub fn name(a: &IdleArgs) -> String {
    format!("idle-s{}-w{}", a.schedules, a.window_secs)
}

pub async fn run(env: &Env, a: &IdleArgs) -> Result<serde_json::Value> {
    let db = "autoloader_bench_idle";
    let (url, setup) = env.create_autoloader_db(db).await?;
    let r = run_in(env, a, db, &url, setup).await;
    env.drop_now(db).await?;
    r
}

async fn run_in(
    env: &Env,
    a: &IdleArgs,
    db: &str,
    url: &url::Url,
    setup: sqlx::PgPool,
) -> Result<serde_json::Value> {
    eprintln!(
        "idle: {} schedules, settle {}s, window {}s",
        a.schedules, a.settle_secs, a.window_secs
    );
    let now: DateTime<Utc> = sqlx::query_scalar("select now()").fetch_one(&setup).await?;
    let cron = format!("0 {} * * *", (now.hour() + 12) % 24);
    let tenant = uuid::Uuid::now_v7();
    sqlx::query("insert into tenants (id, name) values ($1, 'bench')")
        .bind(tenant)
        .execute(&setup)
        .await?;
    sqlx::query(
        "insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                                 destination_table, schedule_frequency, schedule_cron,
                                 schedule_enabled)
         select gen_random_uuid(), $1, 'bench-' || g, 'local', 'file:///tmp/bench/' || g || '/',
                'json', 'bench.t' || g, 'custom', $2, true
         from generate_series(1, $3) g",
    )
    .bind(tenant)
    .bind(&cron)
    .bind(a.schedules)
    .execute(&setup)
    .await
    .context("inserting ingestions")?;
    sqlx::query(
        "update schedule_ticks set next_fire_at = now() + interval '1 hour', recompute = false",
    )
    .execute(&setup)
    .await?;
    util::vacuum_analyze(&setup, &["ingestions", "schedule_ticks", "runs"]).await?;
    setup.close().await;
    drop(setup);
    util::wait_no_backends(&env.admin, db, Duration::from_secs(10)).await?;

    let cmd = util::worker_command(
        env,
        url,
        &[
            ("SCHEDULER_MAX_WORKERS", a.max_workers.to_string()),
            ("AUTOLOADER_WORKER_ID", "bench-idle".to_owned()),
        ],
    );
    let mut procs = vec![Proc::spawn(
        cmd,
        "bench-worker (idle)",
        env.log_file(&format!("{}-worker.log", name(a)))?,
    )?];
    let r = measure(env, a, db, &mut procs).await;
    util::stop_all(&mut procs).await;
    r
}

async fn measure(
    env: &Env,
    a: &IdleArgs,
    db: &str,
    procs: &mut [Proc],
) -> Result<serde_json::Value> {
    util::wait_listening(
        &env.admin,
        db,
        "bench-worker",
        2,
        procs,
        Duration::from_secs(60),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(a.settle_secs)).await;
    procs[0].check_alive()?;
    let pid = procs[0].pid().context("the worker has no pid")?;
    let pids0 = util::backend_pids(&env.admin, db).await?;
    let cpu0 = util::cpu_seconds(pid).context("reading /proc/PID/stat")?;
    let backends0: Vec<(u32, f64)> = pids0
        .iter()
        .filter_map(|p| util::cpu_seconds(*p).map(|c| (*p, c)))
        .collect();
    let counters0 = util::pg_counters(&env.admin, db).await?;
    let t = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(a.window_secs)).await;
    procs[0].check_alive()?;
    let window = t.elapsed().as_secs_f64();
    let cpu1 = util::cpu_seconds(pid).context("reading /proc/PID/stat")?;
    let (hwm, rss) = util::memory_mib(pid).context("reading /proc/PID/status")?;
    let pids1 = util::backend_pids(&env.admin, db).await?;
    let mut backends_cpu = 0.0;
    for p in &pids1 {
        let now = util::cpu_seconds(*p).unwrap_or(0.0);
        let then = backends0
            .iter()
            .find(|(q, _)| q == p)
            .map_or(0.0, |(_, c)| *c);
        backends_cpu += now - then;
    }
    // Backend statistics are flushed when a backend goes idle (at most once a second, or after
    // 10 s idle), so the window's commits are read as they stand, a lower bound.
    let counters1 = util::pg_counters(&env.admin, db).await?;
    let worker_pct = (cpu1 - cpu0) / window * 100.0;
    Ok(json!({
        "benchmark": "idle",
        "params": {
            "schedules": a.schedules,
            "settle_s": a.settle_secs,
            "window_s": a.window_secs,
            "scheduler_max_workers": a.max_workers,
            "worker_log": env.worker_log,
            "clk_tck": util::clk_tck(),
        },
        "window_s": window,
        "worker_cpu_s": cpu1 - cpu0,
        "worker_cpu_pct_of_core": worker_pct,
        "worker_vm_hwm_mib": hwm,
        "worker_vm_rss_mib": rss,
        "postgres_backends": pids1.len(),
        "postgres_backends_cpu_s": backends_cpu,
        "postgres_backends_cpu_pct_of_core": backends_cpu / window * 100.0,
        "commits_in_window_lower_bound": counters1.xact_commit - counters0.xact_commit,
        "goals": {
            "cpu_pct_max": 0.5,
            "rss_mib_max": 50.0,
            "cpu_met": worker_pct <= 0.5,
            "rss_met": hwm <= 50.0,
        }
    }))
}
