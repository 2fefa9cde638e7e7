//! What every benchmark needs: its own database, child processes that die with the harness,
//! CPU and memory of processes from /proc, PostgreSQL's counters and a wait-event sampler.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::process::{Child, Command};

/// Every database a benchmark created, dropped at the end whatever happened.
static CREATED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Where the harness runs: the cluster, the binaries, the results folder.
#[derive(Debug, Clone)]
pub struct Env {
    /// The URL the harness was given (any database of the cluster).
    pub base_url: url::Url,
    /// A pool on the cluster's `postgres` database: create/drop databases, read statistics.
    pub admin: PgPool,
    pub bin_dir: PathBuf,
    pub results_dir: PathBuf,
    /// `RUST_LOG` for the worker processes.
    pub worker_log: String,
}

impl Env {
    pub async fn new(database_url: &str, results_dir: PathBuf, worker_log: String) -> Result<Env> {
        let base_url = url::Url::parse(database_url).context("DATABASE_URL is not a URL")?;
        let admin = PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url_for(&base_url, "postgres").as_str())
            .await
            .context("connecting to the cluster's `postgres` database")?;
        let bin_dir = std::env::current_exe()?
            .parent()
            .context("the harness binary has no folder")?
            .to_owned();
        std::fs::create_dir_all(results_dir.join("raw"))?;
        std::fs::create_dir_all(results_dir.join("logs"))?;
        Ok(Env {
            base_url,
            admin,
            bin_dir,
            results_dir,
            worker_log,
        })
    }

    pub fn url(&self, db: &str) -> url::Url {
        url_for(&self.base_url, db)
    }

    /// Drops `db` if a crashed run left it, creates it afresh and remembers to drop it.
    pub async fn create_db(&self, db: &str) -> Result<url::Url> {
        drop_db(&self.admin, db).await?;
        sqlx::raw_sql(&format!("create database {db}"))
            .execute(&self.admin)
            .await
            .with_context(|| format!("creating database {db}"))?;
        CREATED.lock().expect("not poisoned").push(db.to_owned());
        Ok(self.url(db))
    }

    /// Creates `db` and applies Autoloader's migrations; returns a small pool on it.
    pub async fn create_autoloader_db(&self, db: &str) -> Result<(url::Url, PgPool)> {
        let url = self.create_db(db).await?;
        let pool = pool(&url, 4).await?;
        autoloader::db::MIGRATOR
            .run(&pool)
            .await
            .context("applying autoloader::db::MIGRATOR")?;
        Ok((url, pool))
    }

    /// Drops every database this process created (also after errors and Ctrl-C).
    pub async fn drop_created(&self) {
        let names: Vec<String> = std::mem::take(&mut *CREATED.lock().expect("not poisoned"));
        for db in names {
            if let Err(e) = drop_db(&self.admin, &db).await {
                eprintln!("warning: could not drop database {db}: {e:#}");
            }
        }
    }

    pub async fn drop_now(&self, db: &str) -> Result<()> {
        drop_db(&self.admin, db).await?;
        CREATED.lock().expect("not poisoned").retain(|d| d != db);
        Ok(())
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    pub fn log_file(&self, name: &str) -> Result<std::fs::File> {
        Ok(std::fs::File::create(
            self.results_dir.join("logs").join(name),
        )?)
    }

    /// Writes one benchmark's raw result.
    pub fn save(&self, name: &str, value: &serde_json::Value) -> Result<PathBuf> {
        let path = self.results_dir.join("raw").join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(value)?)?;
        Ok(path)
    }
}

pub fn url_for(base: &url::Url, db: &str) -> url::Url {
    let mut u = base.clone();
    u.set_path(&format!("/{db}"));
    u
}

pub async fn pool(url: &url::Url, size: u32) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url.as_str())
        .await
        .with_context(|| format!("connecting to {}", url.path()))
}

async fn drop_db(admin: &PgPool, db: &str) -> Result<()> {
    sqlx::raw_sql(&format!("drop database if exists {db} with (force)"))
        .execute(admin)
        .await
        .with_context(|| format!("dropping database {db}"))?;
    Ok(())
}

/// A child process that is killed when this handle is dropped (error, Ctrl-C), and also when the
/// harness itself dies (PR_SET_PDEATHSIG).
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn spawn(mut cmd: Command, name: &str, log: std::fs::File) -> Result<Proc> {
        cmd.kill_on_drop(true)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.as_std().get_program()))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            // SAFETY: sending a signal to our own child.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "warning: {} did not stop within {grace:?}; killing it",
                self.name
            );
            let _ = self.child.kill().await;
        }
    }

    /// Fails when the process has already exited (a crashed worker must not go unnoticed).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited early with {status}; see bench/results/logs",
                self.name
            );
        }
        Ok(())
    }
}

pub async fn stop_all(procs: &mut [Proc]) {
    let stops = procs.iter_mut().map(|p| p.stop(Duration::from_secs(20)));
    futures_join_all(stops).await;
}

async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    for f in set {
        f.await;
    }
}

/// Clock ticks per second of /proc/PID/stat times.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// (VmHWM, VmRSS) of a process in MiB.
pub fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// PIDs of the client backends connected to `db` (PostgreSQL runs on this machine).
pub async fn backend_pids(admin: &PgPool, db: &str) -> Result<Vec<u32>> {
    let pids: Vec<i32> = sqlx::query_scalar(
        "select pid from pg_stat_activity where datname = $1 and backend_type = 'client backend'
           and pid <> pg_backend_pid()",
    )
    .bind(db)
    .fetch_all(admin)
    .await?;
    Ok(pids.into_iter().map(|p| p as u32).collect())
}

/// Total CPU seconds of the backends connected to `db` right now (since each started).
pub async fn backends_cpu(admin: &PgPool, db: &str) -> Result<(usize, f64)> {
    let pids = backend_pids(admin, db).await?;
    let cpu = pids.iter().filter_map(|p| cpu_seconds(*p)).sum();
    Ok((pids.len(), cpu))
}

/// Waits (bounded) until no client is connected to `db`, so its statistics are flushed.
pub async fn wait_no_backends(admin: &PgPool, db: &str, limit: Duration) -> Result<()> {
    let until = Instant::now() + limit;
    loop {
        if backend_pids(admin, db).await?.is_empty() {
            return Ok(());
        }
        if Instant::now() > until {
            eprintln!("warning: clients still connected to {db} after {limit:?}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until `n` connections to `db` by `app` sit in `LISTEN` (the loops are up).
pub async fn wait_listening(
    admin: &PgPool,
    db: &str,
    app: &str,
    n: i64,
    procs: &mut [Proc],
    limit: Duration,
) -> Result<()> {
    let until = Instant::now() + limit;
    loop {
        let listening: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where datname = $1 and application_name = $2 and query ilike 'listen%'",
        )
        .bind(db)
        .bind(app)
        .fetch_one(admin)
        .await?;
        if listening >= n {
            return Ok(());
        }
        for p in procs.iter_mut() {
            p.check_alive()?;
        }
        if Instant::now() > until {
            bail!("only {listening} of {n} LISTEN connections after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counters of one database and the cluster's WAL, to attribute work per job.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PgCounters {
    pub xact_commit: i64,
    pub xact_rollback: i64,
    pub tup_inserted: i64,
    pub tup_updated: i64,
    pub tup_deleted: i64,
    pub tup_fetched: i64,
    /// Cluster-wide (other databases write too; the bench database dominates during a run).
    pub wal_bytes: f64,
    pub wal_sync: i64,
}

pub async fn pg_counters(admin: &PgPool, db: &str) -> Result<PgCounters> {
    sqlx::query("select pg_stat_clear_snapshot()")
        .execute(admin)
        .await?;
    let row: (i64, i64, i64, i64, i64, i64, f64, i64) = sqlx::query_as(
        "select d.xact_commit, d.xact_rollback, d.tup_inserted, d.tup_updated, d.tup_deleted,
                d.tup_fetched, w.wal_bytes::float8, w.wal_sync
         from pg_stat_database d, pg_stat_wal w where d.datname = $1",
    )
    .bind(db)
    .fetch_one(admin)
    .await?;
    Ok(PgCounters {
        xact_commit: row.0,
        xact_rollback: row.1,
        tup_inserted: row.2,
        tup_updated: row.3,
        tup_deleted: row.4,
        tup_fetched: row.5,
        wal_bytes: row.6,
        wal_sync: row.7,
    })
}

/// Per-job deltas of two snapshots; `own_commits` are the harness's own polls to subtract.
pub fn per_job(
    before: PgCounters,
    after: PgCounters,
    jobs: f64,
    own_commits: i64,
) -> serde_json::Value {
    let commits = (after.xact_commit - before.xact_commit - own_commits).max(0);
    serde_json::json!({
        "commits": commits,
        "commits_per_job": commits as f64 / jobs,
        "rollbacks": after.xact_rollback - before.xact_rollback,
        "tup_inserted_per_job": (after.tup_inserted - before.tup_inserted) as f64 / jobs,
        "tup_updated_per_job": (after.tup_updated - before.tup_updated) as f64 / jobs,
        "tup_deleted_per_job": (after.tup_deleted - before.tup_deleted) as f64 / jobs,
        "wal_bytes_per_job": (after.wal_bytes - before.wal_bytes) / jobs,
        "wal_syncs_per_job": (after.wal_sync - before.wal_sync) as f64 / jobs,
    })
}

/// Samples what the backends connected to a database are doing, every `every`, until stopped:
/// a poor man's profiler of where the database side of a run's time goes.
pub struct WaitSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, BTreeMap<String, u64>)>,
}

impl WaitSampler {
    pub fn start(admin: PgPool, db: String, every: Duration) -> WaitSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut samples = 0u64;
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            while !flag.load(Ordering::Relaxed) {
                let rows: Result<Vec<(String, i64)>, _> = sqlx::query_as(
                    "select coalesce(state, '?') || ' / ' ||
                            coalesce(wait_event_type || ':' || wait_event, 'on CPU'), count(*)
                     from pg_stat_activity
                     where datname = $1 and backend_type = 'client backend'
                       and query not ilike 'listen%'
                     group by 1",
                )
                .bind(&db)
                .fetch_all(&admin)
                .await;
                if let Ok(rows) = rows {
                    samples += 1;
                    for (k, n) in rows {
                        *counts.entry(k).or_default() += n as u64;
                    }
                }
                tokio::time::sleep(every).await;
            }
            (samples, counts)
        });
        WaitSampler { stop, task }
    }

    /// Average number of backends in each state over the samples.
    pub async fn finish(self) -> serde_json::Value {
        self.stop.store(true, Ordering::Relaxed);
        let Ok((samples, counts)) = self.task.await else {
            return serde_json::Value::Null;
        };
        let mut out = serde_json::Map::new();
        out.insert("samples".into(), samples.into());
        let mut avg = serde_json::Map::new();
        for (k, n) in counts {
            avg.insert(
                k,
                serde_json::json!(round3(n as f64 / samples.max(1) as f64)),
            );
        }
        out.insert("avg_backends".into(), avg.into());
        out.into()
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Runs a command to completion with a time limit, returning stdout; fails with its stderr.
pub async fn run_to_end(mut cmd: Command, what: &str, limit: Duration) -> Result<String> {
    cmd.kill_on_drop(true).stdin(Stdio::null());
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| format!("{what} did not finish within {limit:?}"))?
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Facts about the machine and the cluster, recorded with every result.
pub async fn machine(admin: &PgPool) -> Result<serde_json::Value> {
    let settings: Vec<(String, String)> = sqlx::query_as(
        "select name, current_setting(name) from pg_settings where name in
         ('max_connections', 'shared_buffers', 'synchronous_commit', 'fsync', 'wal_level',
          'full_page_writes', 'commit_delay', 'max_wal_size', 'checkpoint_timeout',
          'work_mem', 'shared_preload_libraries', 'autovacuum', 'wal_sync_method',
          'random_page_cost') order by name",
    )
    .fetch_all(admin)
    .await?;
    let version: String = sqlx::query_scalar("show server_version")
        .fetch_one(admin)
        .await?;
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1).map(|s| s.trim().to_owned()))
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let engine_dirty = !git(&["status", "--porcelain", "--", "src", "migrations"]).is_empty();
    Ok(serde_json::json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu_model,
        "mem_gib": round3(mem_kb / 1024.0 / 1024.0),
        "loadavg_at_start": load.trim(),
        "postgres": version,
        "git_head": git(&["rev-parse", "--short", "HEAD"]),
        "engine_has_uncommitted_changes": engine_dirty,
        "settings": settings.into_iter().collect::<BTreeMap<_, _>>(),
    }))
}

/// A worker process's command line: the shipped worker's settings as environment variables.
pub fn worker_command(env: &Env, url: &url::Url, vars: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env.bin("bench-worker"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url.as_str())
        .env("RUST_LOG", &env.worker_log)
        .env("AUTOLOADER_LOG_FORMAT", "json");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// `vacuum analyze` each table (one statement each: VACUUM refuses a transaction block).
pub async fn vacuum_analyze(pool: &PgPool, tables: &[&str]) -> Result<()> {
    for t in tables {
        sqlx::raw_sql(&format!("vacuum analyze {t}"))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Sizes of the claim and outcome statements, read back from the runs table: every run claimed
/// by one statement shares its `started_at` (the transaction's `now()`) and worker, and every
/// outcome written by one statement shares its `finished_at`.
pub async fn batch_sizes(pool: &PgPool) -> Result<serde_json::Value> {
    let q = |col: &str| {
        format!(
            "select count(*)::int8, coalesce(avg(n), 0)::float8,
                    coalesce(percentile_cont(0.5) within group (order by n), 0)::float8,
                    coalesce(max(n), 0)::int8
             from (select count(*) as n from runs where {col} is not null
                   group by worker_id, {col}) b"
        )
    };
    let claims: (i64, f64, f64, i64) = sqlx::query_as(&q("started_at")).fetch_one(pool).await?;
    let outcomes: (i64, f64, f64, i64) = sqlx::query_as(&q("finished_at")).fetch_one(pool).await?;
    Ok(serde_json::json!({
        "claim_statements": claims.0, "runs_per_claim_avg": claims.1,
        "runs_per_claim_p50": claims.2, "runs_per_claim_max": claims.3,
        "outcome_statements": outcomes.0, "runs_per_outcome_write_avg": outcomes.1,
        "runs_per_outcome_write_p50": outcomes.2, "runs_per_outcome_write_max": outcomes.3,
    }))
}
