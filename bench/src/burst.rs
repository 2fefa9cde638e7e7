//! Burst: N schedules all due at the same instant T, W worker processes (ticker + workers each).
//!
//! Setup: N enabled ingestions with a custom daily cron inserted with `generate_series` (the
//! insert trigger creates their tick rows with `recompute = true`); the tick rows are parked a
//! day ahead (`recompute = false`), the W processes start and reach their `LISTEN`, and then one
//! UPDATE sets every tick's `next_fire_at = T`, a couple of seconds ahead. From T on, the harness
//! only polls the run count; every time it reports comes from the database's clock.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Timelike, Utc};
use clap::Args;
use serde_json::json;

use crate::util::{self, Env, Proc, WaitSampler};

#[derive(Debug, Clone, Args)]
pub struct BurstArgs {
    /// Schedules due at the same instant.
    #[arg(long, default_value_t = 10_000)]
    pub schedules: i64,
    /// bench-worker processes (each runs a ticker and workers).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// SCHEDULER_MAX_WORKERS of each process.
    #[arg(long, default_value_t = 50)]
    pub max_workers: u32,
    /// AUTOLOADER_DB_MAX_CONNECTIONS of each process (unset: the shipped default, 20).
    #[arg(long)]
    pub pool: Option<u32>,
    /// SCHEDULER_TICK_BATCH_SIZE of each process (unset: the shipped default, 2000).
    #[arg(long)]
    pub tick_batch: Option<i64>,
    /// Give up waiting for the runs after this long.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
}

pub fn name(a: &BurstArgs) -> String {
    let mut n = format!("burst-n{}-w{}-c{}", a.schedules, a.workers, a.max_workers);
    if let Some(p) = a.pool {
        n.push_str(&format!("-pool{p}"));
    }
    if let Some(b) = a.tick_batch {
        n.push_str(&format!("-tb{b}"));
    }
    n
}

pub async fn run(env: &Env, a: &BurstArgs) -> Result<serde_json::Value> {
    let db = "autoloader_bench_burst";
    let (url, setup) = env.create_autoloader_db(db).await?;
    let result = run_in(env, a, db, &url, setup).await;
    env.drop_now(db).await?;
    result
}

async fn run_in(
    env: &Env,
    a: &BurstArgs,
    db: &str,
    url: &url::Url,
    setup: sqlx::PgPool,
) -> Result<serde_json::Value> {
    let n = a.schedules;
    eprintln!(
        "burst: {n} schedules, {} processes x {} runs",
        a.workers, a.max_workers
    );
    let t0 = Instant::now();
    // A daily schedule whose hour is twelve hours away from now: it fires once at T (set by
    // hand below) and never again during the run, and its next fire instant is cheap to work out.
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
    .bind(n)
    .execute(&setup)
    .await
    .context("inserting ingestions")?;
    // The insert trigger made one tick row each, to be recomputed; park them a day ahead.
    let ticks = sqlx::query(
        "update schedule_ticks set next_fire_at = now() + interval '1 day', recompute = false",
    )
    .execute(&setup)
    .await?
    .rows_affected();
    if ticks as i64 != n {
        bail!("expected {n} tick rows, found {ticks}");
    }
    util::vacuum_analyze(&setup, &["ingestions", "schedule_ticks", "runs"]).await?;
    let setup_s = t0.elapsed().as_secs_f64();

    // Start the processes and wait until each has its ticker and worker LISTENing.
    let mut vars = vec![
        ("SCHEDULER_MAX_WORKERS", a.max_workers.to_string()),
        ("SCHEDULER_MISFIRE_GRACE_TIME", "3600".to_owned()),
    ];
    if let Some(p) = a.pool {
        vars.push(("AUTOLOADER_DB_MAX_CONNECTIONS", p.to_string()));
    }
    if let Some(b) = a.tick_batch {
        vars.push(("SCHEDULER_TICK_BATCH_SIZE", b.to_string()));
    }
    let mut procs = Vec::new();
    for i in 0..a.workers {
        let mut vars = vars.clone();
        vars.push(("AUTOLOADER_WORKER_ID", format!("bench-{i}")));
        let cmd = util::worker_command(env, url, &vars);
        procs.push(Proc::spawn(
            cmd,
            &format!("bench-worker {i}"),
            env.log_file(&format!("{}-worker{i}.log", name(a)))?,
        )?);
    }
    let res = measure(env, a, db, url, setup, &mut procs, setup_s).await;
    util::stop_all(&mut procs).await;
    res
}

/// rows, successes, skipped or missed, workers, then the times and percentiles of `measure`.
type BurstRow = (
    i64,
    i64,
    i64,
    i64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
);

async fn measure(
    env: &Env,
    a: &BurstArgs,
    db: &str,
    url: &url::Url,
    setup: sqlx::PgPool,
    procs: &mut [Proc],
    setup_s: f64,
) -> Result<serde_json::Value> {
    let n = a.schedules;
    util::wait_listening(
        &env.admin,
        db,
        "bench-worker",
        2 * a.workers as i64,
        procs,
        Duration::from_secs(60),
    )
    .await?;
    // Let the setup connection go (so its statistics are flushed before the baseline).
    setup.close().await;
    drop(setup);
    let poll = util::pool(url, 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = util::pg_counters(&env.admin, db).await?;
    let mut own_commits = 0i64;

    // T: far enough ahead that the UPDATE below commits before it.
    let lead = 2.0 + n as f64 / 25_000.0;
    let t: DateTime<Utc> = sqlx::query_scalar("select now() + make_interval(secs => $1)")
        .bind(lead)
        .fetch_one(&poll)
        .await?;
    sqlx::query("update schedule_ticks set next_fire_at = $1")
        .bind(t)
        .execute(&poll)
        .await?;
    let committed_before_t: bool = sqlx::query_scalar("select now() < $1")
        .bind(t)
        .fetch_one(&poll)
        .await?;
    own_commits += 3;
    if !committed_before_t {
        bail!("setting T took longer than its {lead}s lead; raise the lead");
    }
    let (_, backends_cpu_start) = util::backends_cpu(&env.admin, db).await?;
    let procs_cpu_start: f64 = procs
        .iter()
        .filter_map(|p| p.pid())
        .filter_map(util::cpu_seconds)
        .sum();

    // Wait for T, then poll until every run has finished (bounded).
    let until_t = (t - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_t).await;
    let sampler = WaitSampler::start(env.admin.clone(), db.to_owned(), Duration::from_millis(100));
    let wall = Instant::now();
    let deadline = wall + Duration::from_secs(a.timeout_secs);
    let every = Duration::from_millis(if n >= 50_000 { 500 } else { 200 });
    loop {
        tokio::time::sleep(every).await;
        let (finished, all): (i64, i64) = sqlx::query_as(
            "select count(*) filter (where finished_at is not null), count(*) from runs",
        )
        .fetch_one(&poll)
        .await?;
        own_commits += 1;
        if finished >= n {
            break;
        }
        for p in procs.iter_mut() {
            p.check_alive()?;
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {}s: {finished} of {n} runs finished ({all} rows)",
                a.timeout_secs
            );
        }
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let waits = sampler.finish().await;
    let procs_cpu: f64 = procs
        .iter()
        .filter_map(|p| p.pid())
        .filter_map(util::cpu_seconds)
        .sum::<f64>()
        - procs_cpu_start;
    let (nbackends, backends_cpu_end) = util::backends_cpu(&env.admin, db).await?;
    let procs_mem: Vec<serde_json::Value> = procs
        .iter()
        .filter_map(|p| p.pid())
        .filter_map(util::memory_mib)
        .map(|(hwm, rss)| json!({"vm_hwm_mib": util::round3(hwm), "vm_rss_mib": util::round3(rss)}))
        .collect();

    util::stop_all(procs).await;
    poll.close().await;
    util::wait_no_backends(&env.admin, db, Duration::from_secs(10)).await?;
    let after = util::pg_counters(&env.admin, db).await?;

    let q = util::pool(url, 1).await?;
    let row: BurstRow = sqlx::query_as(
        "select count(*),
                count(*) filter (where status = 'SUCCESS'),
                count(*) filter (where status in ('SKIPPED', 'MISSED')),
                count(distinct worker_id),
                extract(epoch from min(queued_at) - $1)::float8,
                extract(epoch from max(queued_at) - $1)::float8,
                extract(epoch from max(started_at) - $1)::float8,
                extract(epoch from max(finished_at) - $1)::float8,
                percentile_cont(0.5) within group (order by extract(epoch from started_at - scheduled_for))::float8,
                percentile_cont(0.99) within group (order by extract(epoch from started_at - scheduled_for))::float8,
                max(extract(epoch from started_at - scheduled_for))::float8,
                percentile_cont(0.5) within group (order by extract(epoch from queued_at - scheduled_for))::float8,
                percentile_cont(0.99) within group (order by extract(epoch from queued_at - scheduled_for))::float8,
                percentile_cont(0.5) within group (order by extract(epoch from started_at - queued_at))::float8,
                percentile_cont(0.99) within group (order by extract(epoch from started_at - queued_at))::float8
         from runs",
    )
    .bind(t)
    .fetch_one(&q)
    .await?;
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("select coalesce(worker_id, '?'), count(*) from runs group by 1 order by 1")
            .fetch_all(&q)
            .await?;
    let batches = util::batch_sizes(&q).await?;
    q.close().await;
    let (rows, success, skipped_or_missed, _workers_used) = (row.0, row.1, row.2, row.3);
    if success != n {
        eprintln!("warning: {success} of {n} runs succeeded ({rows} rows, {skipped_or_missed} skipped/missed)");
    }
    let all_finished_s = row.7;
    let out = json!({
        "benchmark": "burst",
        "params": {
            "schedules": n,
            "processes": a.workers,
            "scheduler_max_workers": a.max_workers,
            "total_concurrency": a.workers as u32 * a.max_workers,
            "db_max_connections": a.pool.unwrap_or(20),
            "tick_batch_size": a.tick_batch.unwrap_or(2000),
            "misfire_grace_s": 3600,
            "worker_log": env.worker_log,
            "lead_s": 2.0 + n as f64 / 25_000.0,
        },
        "setup_s": setup_s,
        "rows": rows,
        "success": success,
        "skipped_or_missed": skipped_or_missed,
        "first_materialised_s": row.4,
        "all_materialised_s": row.5,
        "all_started_s": row.6,
        "all_finished_s": all_finished_s,
        "lateness_p50_s": row.8,
        "lateness_p99_s": row.9,
        "lateness_max_s": row.10,
        "materialise_lateness_p50_s": row.11,
        "materialise_lateness_p99_s": row.12,
        "queue_wait_p50_s": row.13,
        "queue_wait_p99_s": row.14,
        "runs_per_s": n as f64 / all_finished_s,
        "harness_wall_s": wall_s,
        "runs_per_worker": per_worker.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "batches": batches,
        "cpu": {
            "worker_processes_s": procs_cpu,
            "postgres_backends_s": backends_cpu_end - backends_cpu_start,
            "postgres_backends": nbackends,
            "window_s": all_finished_s,
            "cores_busy": (procs_cpu + backends_cpu_end - backends_cpu_start) / all_finished_s.max(1e-9),
        },
        "worker_memory": procs_mem,
        "postgres": util::per_job(before, after, n as f64, own_commits),
        "wait_events": waits,
    });
    Ok(out)
}
