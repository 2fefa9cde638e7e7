//! What-if measurements for engine changes, run in this process (not the shipped worker loop):
//! the same queued no-op runs as `claim`, drained by loops that use the engine's own lease SQL
//! (`autoloader::runs::lease::run_claim` and `run_complete`, one run per call), changing only how often they talk to
//! the database:
//!
//! * `batch-claim`: each loop claims up to its slots at once, runs them, then writes every
//!   outcome with its own `complete_many` call (concurrently), and claims again;
//! * `batch-claim+batch-outcome`: the same, with one fenced UPDATE for all outcomes of a batch
//!   (`... from unnest(ids, attempts) where id, attempt, worker_id match and status = 'RUNNING'`,
//!   the same fence `complete_many` uses).
//!
//! These rows are evidence for suggested engine changes, not measurements of the engine.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use autoloader::runs::lease::RunOutput;
use autoloader::runs::lease;
use clap::Args;
use serde_json::json;

use crate::util::{self, Env};

#[derive(Debug, Clone, Args)]
pub struct ProtoArgs {
    /// Queued runs.
    #[arg(long, default_value_t = 20_000)]
    pub runs: i64,
    /// Loops (stand-ins for worker processes), each with its own pool.
    #[arg(long, default_value_t = 2)]
    pub loops: usize,
    /// Total slots over all loops.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Pool size of each loop.
    #[arg(long, default_value_t = 20)]
    pub pool: u32,
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

pub async fn run(env: &Env, a: &ProtoArgs) -> Result<serde_json::Value> {
    let mut variants = Vec::new();
    for batched_outcome in [false, true] {
        let db = "autoloader_bench_proto";
        let (url, setup) = env.create_autoloader_db(db).await?;
        let r = drain(env, a, db, &url, setup, batched_outcome).await;
        env.drop_now(db).await?;
        variants.push(r?);
    }
    Ok(json!({
        "benchmark": "prototype",
        "params": {"runs": a.runs, "loops": a.loops, "total_concurrency": a.concurrency, "pool": a.pool},
        "variants": variants,
    }))
}

async fn drain(
    env: &Env,
    a: &ProtoArgs,
    db: &str,
    url: &url::Url,
    setup: sqlx::PgPool,
    batched_outcome: bool,
) -> Result<serde_json::Value> {
    crate::claim::queue_runs(&setup, a.runs).await?;
    setup.close().await;
    drop(setup);
    util::wait_no_backends(&env.admin, db, Duration::from_secs(10)).await?;
    let before = util::pg_counters(&env.admin, db).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.timeout_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..a.loops {
        let slots = a.concurrency / a.loops + usize::from(i < a.concurrency % a.loops);
        let pool = util::pool(url, a.pool).await?;
        let worker = format!("proto-{i}");
        tasks.spawn(async move {
            let mut done = 0u64;
            let mut claims = 0u64;
            loop {
                let runs = lease::run_claim(&pool, &worker, slots as i64, Duration::from_secs(30)).await?;
                claims += 1;
                if runs.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("timed out");
                }
                let out = RunOutput { files_processed: 1, ..RunOutput::default() };
                if batched_outcome {
                    let ids: Vec<uuid::Uuid> = runs.iter().map(|r| r.run_id).collect();
                    let attempts: Vec<i32> = runs.iter().map(|r| r.attempt).collect();
                    let n = sqlx::query(
                        "update runs r set status = 'SUCCESS', finished_at = now(), lease_expires_at = null,
                                files_processed = $3, rows_ingested = $4, bytes_read = $5
                         from unnest($1::uuid[], $2::int4[]) as o(id, attempt)
                         where r.id = o.id and r.attempt = o.attempt and r.worker_id = $6
                           and r.status = 'RUNNING'",
                    )
                    .bind(&ids)
                    .bind(&attempts)
                    .bind(out.files_processed)
                    .bind(out.rows_ingested)
                    .bind(out.bytes_read)
                    .bind(&worker)
                    .execute(&pool)
                    .await?
                    .rows_affected();
                    done += n;
                } else {
                    let mut set = tokio::task::JoinSet::new();
                    for r in &runs {
                        let (pool, worker, l) = (pool.clone(), worker.clone(), r.lease());
                        set.spawn(async move {
                            let batch = [(l, lease::Outcome::Success(out))];
                            lease::run_complete(&pool, &worker, &batch).await.map(|a| !a.is_empty())
                        });
                    }
                    while let Some(r) = set.join_next().await {
                        if r??.then_some(()).is_some() {
                            done += 1;
                        }
                    }
                }
            }
            pool.close().await;
            anyhow::Ok((done, claims))
        });
    }
    let mut done = 0;
    let mut claims = 0;
    while let Some(r) = tasks.join_next().await {
        let (d, c) = r.context("a loop panicked")??;
        done += d;
        claims += c;
    }
    let wall = started.elapsed().as_secs_f64();
    util::wait_no_backends(&env.admin, db, Duration::from_secs(10)).await?;
    let after = util::pg_counters(&env.admin, db).await?;
    if done as i64 != a.runs {
        bail!("{done} of {} runs recorded", a.runs);
    }
    Ok(json!({
        "variant": if batched_outcome { "batch-claim+batch-outcome" } else { "batch-claim, per-run outcome" },
        "runs_per_s": a.runs as f64 / wall,
        "wall_s": wall,
        "claim_statements": claims,
        "runs_per_claim": a.runs as f64 / (claims - a.loops as u64).max(1) as f64,
        "postgres": util::per_job(before, after, a.runs as f64, 0),
    }))
}
