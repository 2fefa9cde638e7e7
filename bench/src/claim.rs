//! Claim throughput: M queued no-op runs drained by N bench-worker processes (ticker off) at a
//! total concurrency C, versus the same number of jobs drained through apalis-postgres 1.0 at the
//! same concurrency, versus `pgbench -N` at C clients (the one-commit-per-job ceiling).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use tokio::process::Command;

use crate::util::{self, Env, Proc, WaitSampler};

#[derive(Debug, Clone, Args)]
pub struct ClaimArgs {
    /// Queued runs (one manual run on each of this many ingestions).
    #[arg(long, default_value_t = 20_000)]
    pub runs: i64,
    /// bench-worker processes sharing the total concurrency.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Total runs in flight at once, over all processes (and apalis's concurrency, pgbench's clients).
    #[arg(long, default_value_t = 50)]
    pub concurrency: u32,
    /// AUTOLOADER_DB_MAX_CONNECTIONS of each process, and apalis's pool (unset: Autoloader's default, 20).
    #[arg(long)]
    pub pool: Option<u32>,
    /// Repetitions of the Autoloader and apalis drains (the table shows the median).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Skip the apalis-postgres comparison.
    #[arg(long)]
    pub no_apalis: bool,
    /// apalis fetch batch size (unset: the concurrency, as Autoloader claims up to its free slots).
    #[arg(long)]
    pub apalis_batch: Option<usize>,
    /// Skip pgbench.
    #[arg(long)]
    pub no_pgbench: bool,
    /// pgbench duration (-T).
    #[arg(long, default_value_t = 20)]
    pub pgbench_secs: u64,
    /// Give up on one drain after this long.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// `synchronous_commit` of the benchmark databases (`off`: commits do not wait for the WAL
    /// flush, to show how much of the drain is commit latency). Unset: the cluster's setting.
    #[arg(long)]
    pub synchronous_commit: Option<String>,
}

pub fn name(a: &ClaimArgs) -> String {
    let mut n = format!("claim-m{}-w{}-c{}", a.runs, a.workers, a.concurrency);
    if let Some(p) = a.pool {
        n.push_str(&format!("-pool{p}"));
    }
    if let Some(sc) = &a.synchronous_commit {
        n.push_str(&format!("-synccommit-{sc}"));
    }
    n
}

async fn set_sync_commit(env: &Env, a: &ClaimArgs, db: &str) -> Result<()> {
    if let Some(sc) = &a.synchronous_commit {
        if !["on", "off", "local", "remote_write", "remote_apply"].contains(&sc.as_str()) {
            bail!("--synchronous-commit must be on, off, local, remote_write or remote_apply");
        }
        sqlx::raw_sql(&format!(
            "alter database {db} set synchronous_commit = {sc}"
        ))
        .execute(&env.admin)
        .await?;
    }
    Ok(())
}

pub async fn run(env: &Env, a: &ClaimArgs) -> Result<serde_json::Value> {
    let mut ours = Vec::new();
    for i in 0..a.repeat {
        eprintln!("claim: autoloader drain {} of {}", i + 1, a.repeat);
        let db = "autoloader_bench_claim";
        let (url, setup) = env.create_autoloader_db(db).await?;
        set_sync_commit(env, a, db).await?;
        let r = drain_autoloader(env, a, db, &url, setup).await;
        env.drop_now(db).await?;
        ours.push(r?);
    }
    let mut apalis = Vec::new();
    let mut apalis_error = None;
    if !a.no_apalis {
        for i in 0..a.repeat {
            eprintln!("claim: apalis-postgres drain {} of {}", i + 1, a.repeat);
            let db = "autoloader_bench_apalis";
            let url = env.create_db(db).await?;
            set_sync_commit(env, a, db).await?;
            let r = drain_apalis(env, a, db, &url).await;
            env.drop_now(db).await?;
            match r {
                Ok(v) => apalis.push(v),
                Err(e) => {
                    eprintln!("claim: apalis-postgres failed: {e:#}");
                    apalis_error = Some(format!("{e:#}"));
                    break;
                }
            }
        }
    }
    let pgbench = if a.no_pgbench {
        None
    } else {
        eprintln!(
            "claim: pgbench -N -c {} -j 2 -T {}",
            a.concurrency, a.pgbench_secs
        );
        let db = "autoloader_bench_pgbench";
        let url = env.create_db(db).await?;
        let r = pgbench(a, &url).await;
        env.drop_now(db).await?;
        Some(r?)
    };

    let ours_rate = median(ours.iter().map(|r| r["runs_per_s"].as_f64().unwrap_or(0.0)));
    let apalis_rate = (!apalis.is_empty()).then(|| {
        median(
            apalis
                .iter()
                .map(|r| r["jobs_per_s"].as_f64().unwrap_or(0.0)),
        )
    });
    let pgbench_tps = pgbench.as_ref().and_then(|p| p["tps"].as_f64());
    Ok(json!({
        "benchmark": "claim",
        "params": {
            "runs": a.runs,
            "processes": a.workers,
            "total_concurrency": a.concurrency,
            "db_max_connections": a.pool.unwrap_or(20),
            "apalis_batch_size": a.apalis_batch.unwrap_or(a.concurrency as usize),
            "repeat": a.repeat,
            "synchronous_commit": a.synchronous_commit.clone().unwrap_or_else(|| "cluster (on)".to_owned()),
            "worker_log": env.worker_log,
        },
        "autoloader_runs_per_s": ours_rate,
        "apalis_jobs_per_s": apalis_rate,
        "pgbench_tps": pgbench_tps,
        "ratio_vs_apalis": apalis_rate.map(|x| ours_rate / x),
        "ratio_vs_pgbench": pgbench_tps.map(|x| ours_rate / x),
        "apalis_error": apalis_error,
        "autoloader": ours,
        "apalis": apalis,
        "pgbench": pgbench,
    }))
}

fn median(xs: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = xs.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// One tenant, `m` ingestions without schedules and one manual QUEUED run on each (v7 ids, as
/// the API makes them), vacuumed and analysed.
pub async fn queue_runs(setup: &sqlx::PgPool, m: i64) -> Result<()> {
    let tenant = uuid::Uuid::now_v7();
    sqlx::query("insert into tenants (id, name) values ($1, 'bench')")
        .bind(tenant)
        .execute(setup)
        .await?;
    // Ingestions without schedules (no tick rows), one manual QUEUED run each, v7 ids as the API
    // would make them.
    let ingestion_ids: Vec<uuid::Uuid> = (0..m).map(|_| uuid::Uuid::new_v4()).collect();
    let run_ids: Vec<uuid::Uuid> = (0..m).map(|_| uuid::Uuid::now_v7()).collect();
    sqlx::query(
        "insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                                 destination_table)
         select i.id, $1, 'bench-' || g, 'local', 'file:///tmp/bench/' || g || '/', 'json',
                'bench.t' || g
         from unnest($2::uuid[]) with ordinality as i(id, g)",
    )
    .bind(tenant)
    .bind(&ingestion_ids)
    .execute(setup)
    .await
    .context("inserting ingestions")?;
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by)
         select r.id, r.ingestion_id, $1, 'manual'
         from unnest($2::uuid[], $3::uuid[]) as r(id, ingestion_id)",
    )
    .bind(tenant)
    .bind(&run_ids)
    .bind(&ingestion_ids)
    .execute(setup)
    .await
    .context("inserting queued runs")?;
    util::vacuum_analyze(setup, &["ingestions", "runs"]).await?;
    let queued: i64 = sqlx::query_scalar("select count(*) from runs where status = 'QUEUED'")
        .fetch_one(setup)
        .await?;
    if queued != m {
        bail!("expected {m} queued runs, found {queued}");
    }
    Ok(())
}

async fn drain_autoloader(
    env: &Env,
    a: &ClaimArgs,
    db: &str,
    url: &url::Url,
    setup: sqlx::PgPool,
) -> Result<serde_json::Value> {
    let m = a.runs;
    queue_runs(&setup, m).await?;
    setup.close().await;
    drop(setup);
    util::wait_no_backends(&env.admin, db, Duration::from_secs(10)).await?;
    let before = util::pg_counters(&env.admin, db).await?;
    let poll = util::pool(url, 1).await?;
    let mut own_commits = 0i64;

    // Spread the concurrency over the processes.
    let n = a.workers.max(1);
    let mut procs = Vec::new();
    let sampler = WaitSampler::start(env.admin.clone(), db.to_owned(), Duration::from_millis(100));
    let wall = Instant::now();
    for i in 0..n {
        let share = a.concurrency as usize / n + usize::from(i < a.concurrency as usize % n);
        let mut vars = vec![
            ("SCHEDULER_MAX_WORKERS", share.max(1).to_string()),
            ("AUTOLOADER_NO_TICKER", "true".to_owned()),
            ("AUTOLOADER_WORKER_ID", format!("bench-{i}")),
        ];
        if let Some(p) = a.pool {
            vars.push(("AUTOLOADER_DB_MAX_CONNECTIONS", p.to_string()));
        }
        let cmd = util::worker_command(env, url, &vars);
        procs.push(Proc::spawn(
            cmd,
            &format!("bench-worker {i}"),
            env.log_file(&format!("{}-worker{i}.log", name(a)))?,
        )?);
    }
    let res = async {
        let deadline = wall + Duration::from_secs(a.timeout_secs);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let done: i64 =
                sqlx::query_scalar("select count(*) from runs where status = 'SUCCESS'")
                    .fetch_one(&poll)
                    .await?;
            own_commits += 1;
            if done >= m {
                break;
            }
            for p in procs.iter_mut() {
                p.check_alive()?;
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out after {}s: {done} of {m} runs done",
                    a.timeout_secs
                );
            }
        }
        anyhow::Ok(())
    }
    .await;
    let wall_s = wall.elapsed().as_secs_f64();
    let waits = sampler.finish().await;
    let procs_cpu: f64 = procs
        .iter()
        .filter_map(|p| p.pid())
        .filter_map(util::cpu_seconds)
        .sum();
    let (nbackends, backends_cpu) = util::backends_cpu(&env.admin, db).await?;
    util::stop_all(&mut procs).await;
    res?;
    poll.close().await;
    util::wait_no_backends(&env.admin, db, Duration::from_secs(10)).await?;
    let after = util::pg_counters(&env.admin, db).await?;

    let q = util::pool(url, 1).await?;
    let (span_s, first_s, lat_p50, lat_p99): (f64, f64, f64, f64) = sqlx::query_as(
        "select extract(epoch from max(finished_at) - min(started_at))::float8,
                extract(epoch from min(started_at) - min(queued_at))::float8,
                percentile_cont(0.5) within group (order by extract(epoch from finished_at - started_at))::float8,
                percentile_cont(0.99) within group (order by extract(epoch from finished_at - started_at))::float8
         from runs",
    )
    .fetch_one(&q)
    .await?;
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("select coalesce(worker_id, '?'), count(*) from runs group by 1 order by 1")
            .fetch_all(&q)
            .await?;
    let batches = util::batch_sizes(&q).await?;
    q.close().await;
    Ok(json!({
        "system": "autoloader",
        "runs": m,
        "db_span_s": span_s,
        "runs_per_s": m as f64 / span_s,
        "wall_s_incl_startup": wall_s,
        "queued_to_first_claim_s": first_s,
        "claim_to_outcome_p50_s": lat_p50,
        "claim_to_outcome_p99_s": lat_p99,
        "runs_per_worker": per_worker.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "batches": batches,
        "cpu": {
            "worker_processes_s": procs_cpu,
            "postgres_backends_s": backends_cpu,
            "postgres_backends": nbackends,
            "cpu_ms_per_run_workers": procs_cpu * 1000.0 / m as f64,
            "cpu_ms_per_run_postgres": backends_cpu * 1000.0 / m as f64,
            "cores_busy": (procs_cpu + backends_cpu) / wall_s,
        },
        "postgres": util::per_job(before, after, m as f64, own_commits),
        "wait_events": waits,
    }))
}

async fn drain_apalis(
    env: &Env,
    a: &ClaimArgs,
    db: &str,
    url: &url::Url,
) -> Result<serde_json::Value> {
    let bin = env.bin("bench-apalis");
    if !util::exists(&bin) {
        bail!(
            "{} is missing (cargo build --release in bench/)",
            bin.display()
        );
    }
    // The push happens inside the process; sample and count only around the drain is not
    // possible from outside, so the per-job counters below include the bulk push (4 commits).
    let before = util::pg_counters(&env.admin, db).await?;
    let sampler = WaitSampler::start(env.admin.clone(), db.to_owned(), Duration::from_millis(100));
    let mut cmd = Command::new(&bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", &env.worker_log)
        .arg("--database-url")
        .arg(url.as_str())
        .arg("--jobs")
        .arg(a.runs.to_string())
        .arg("--concurrency")
        .arg(a.concurrency.to_string())
        .arg("--batch-size")
        .arg(a.apalis_batch.unwrap_or(a.concurrency as usize).to_string())
        .arg("--pool-size")
        .arg(a.pool.unwrap_or(20).to_string())
        .arg("--timeout-secs")
        .arg(a.timeout_secs.to_string());
    let out = util::run_to_end(
        cmd,
        "bench-apalis",
        Duration::from_secs(a.timeout_secs + 120),
    )
    .await;
    let waits = sampler.finish().await;
    let out = out?;
    util::wait_no_backends(&env.admin, db, Duration::from_secs(10)).await?;
    let after = util::pg_counters(&env.admin, db).await?;
    let mut v: serde_json::Value =
        serde_json::from_str(out.lines().last().context("bench-apalis printed nothing")?)
            .with_context(|| format!("bench-apalis printed {out:?}"))?;
    let polls = v["polls"].as_i64().unwrap_or(0);
    let pushes = (a.runs + 4_999) / 5_000;
    // Own commits: pushes, the migrations (roughly 30 statements), polls and the final query.
    v["postgres"] = util::per_job(before, after, a.runs as f64, polls + pushes + 1);
    v["postgres"]["note"] = json!("commits include apalis's migrations (~60) and the bulk push");
    v["wait_events"] = waits;
    Ok(v)
}

async fn pgbench(a: &ClaimArgs, url: &url::Url) -> Result<serde_json::Value> {
    let bin = "/usr/lib/postgresql/15/bin/pgbench";
    let mut init = Command::new(bin);
    init.args(["-i", "-s", "10", "-q"]).arg(url.as_str());
    util::run_to_end(init, "pgbench -i", Duration::from_secs(300)).await?;
    let mut cmd = Command::new(bin);
    cmd.args([
        "-N",
        "-c",
        &a.concurrency.to_string(),
        "-j",
        "2",
        "-T",
        &a.pgbench_secs.to_string(),
    ])
    .arg(url.as_str());
    let out =
        util::run_to_end(cmd, "pgbench -N", Duration::from_secs(a.pgbench_secs + 120)).await?;
    let tps = out
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|x| x.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench output: {out}"))?;
    let latency = out
        .lines()
        .find(|l| l.starts_with("latency average"))
        .map(|l| l.to_owned());
    Ok(json!({
        "system": "pgbench -N (simple-update: 3 updates + 1 insert + 1 select per commit)",
        "scale": 10,
        "clients": a.concurrency,
        "threads": 2,
        "seconds": a.pgbench_secs,
        "tps": tps,
        "latency": latency,
    }))
}
