//! Run retention against real PostgreSQL: finished runs past the retention are deleted, batch by
//! batch; queued and running runs, recent runs and the ledger of loaded files stay.

use std::time::Duration as StdDuration;

use autoloader_tests::{
    database_url, scheduled_ingestion, tenant, uuid_v7_at, wait_for, WorkerProcess,
};
use autoloader_worker::retention;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;
const BIN: &str = env!("CARGO_BIN_EXE_test-worker");

/// A run of `ingestion` made at `made` (its UUIDv7 id says so) in `status`, finished at
/// `finished` when given.
async fn run(
    pool: &PgPool,
    ingestion: Uuid,
    made: DateTime<Utc>,
    status: &str,
    finished: Option<DateTime<Utc>>,
) -> Uuid {
    let id = uuid_v7_at(made);
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, queued_at,
                           status, attempt, worker_id, started_at, lease_expires_at, finished_at,
                           reason)
         select $1, i.id, i.tenant_id, 'scheduler', $3, $3, $4,
                case when $4 in ('SKIPPED', 'QUEUED') then 0 else 1 end,
                case when $4 in ('SKIPPED', 'QUEUED') then null else 'w' end,
                case when $4 in ('SKIPPED', 'QUEUED') then null else $3 end,
                case when $4 = 'RUNNING' then now() + interval '1 minute' end, $5,
                case when $4 = 'SKIPPED' then 'previous run still active' end
         from ingestions i where i.id = $2",
    )
    .bind(id)
    .bind(ingestion)
    .bind(made)
    .bind(status)
    .bind(finished)
    .execute(pool)
    .await
    .expect("run");
    id
}

async fn remaining(pool: &PgPool) -> Vec<Uuid> {
    sqlx::query_scalar("select id from runs order by id")
        .fetch_all(pool)
        .await
        .expect("runs")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn finished_runs_past_the_retention_are_pruned_and_nothing_else(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let a = scheduled_ingestion(&pool, t, "a", "0 * * * *", json!({})).await;
    let b = scheduled_ingestion(&pool, t, "b", "0 * * * *", json!({})).await;
    let c = scheduled_ingestion(&pool, t, "c", "0 * * * *", json!({})).await;
    let now = Utc::now();
    let days = |n: i64| now - Duration::days(n);
    // Past a 30-day retention: three finished runs of different outcomes.
    let mut old = Vec::new();
    for (n, status) in [(100, "SUCCESS"), (90, "FAILED"), (40, "SKIPPED")] {
        old.push(
            run(
                &pool,
                a,
                days(n),
                status,
                Some(days(n) + Duration::minutes(1)),
            )
            .await,
        );
    }
    // Kept: made long ago but finished recently, made long ago and still running or queued,
    // recent ones.
    let kept = vec![
        run(&pool, a, days(200), "CANCELLED", Some(days(2))).await,
        run(&pool, b, days(300), "RUNNING", None).await,
        run(&pool, c, days(300), "QUEUED", None).await,
        run(
            &pool,
            a,
            days(29),
            "SUCCESS",
            Some(days(29) + Duration::minutes(1)),
        )
        .await,
        run(&pool, a, now, "SUCCESS", Some(now)).await,
    ];
    // The ledger names a pruned run; its file must stay loaded.
    sqlx::query(
        "insert into loaded_files (ingestion_id, path, size_bytes, last_modified, run_id, attempt,
                                   snapshot_id, rows_loaded)
         values ($1, 'file:///in/a.json', 10, now(), $2, 1, 7, 1)",
    )
    .bind(a)
    .bind(old[0])
    .execute(&pool)
    .await
    .expect("ledger");

    // Batches of two: the sweep goes on until a batch comes back short.
    let go = CancellationToken::new();
    assert_eq!(retention::prune(&pool, 30, 2, &go).await.expect("prune"), 3);
    let mut want = kept.clone();
    want.sort();
    assert_eq!(remaining(&pool).await, want);
    let ledger: i64 = sqlx::query_scalar("select count(*) from loaded_files where run_id = $1")
        .bind(old[0])
        .fetch_one(&pool)
        .await
        .expect("ledger");
    assert_eq!(ledger, 1, "the ledger keeps the files of pruned runs");

    assert_eq!(retention::prune(&pool, 30, 2, &go).await.expect("prune"), 0);
    // A shorter retention reaches the run that finished two days ago, and the 29-day-old one.
    assert_eq!(
        retention::prune(&pool, 1, 100, &go).await.expect("prune"),
        2
    );
    let mut open = vec![kept[1], kept[2], kept[4]];
    open.sort();
    assert_eq!(remaining(&pool).await, open);
}

/// `SCHEDULER_RUN_RETENTION_DAYS` reaches a worker process: it sweeps when it starts, batch after
/// batch (5,000 runs each) until nothing past the retention is left.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_worker_with_a_retention_prunes_every_old_run_at_start(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let a = scheduled_ingestion(&pool, t, "a", "0 0 1 1 *", json!({})).await;
    let now = Utc::now();
    let recent = run(&pool, a, now, "SUCCESS", Some(now)).await;
    // 12,000 finished runs from 60 to 40 days ago, ids UUIDv7 of their tick.
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status,
                           attempt, worker_id, started_at, finished_at)
         select (lpad(to_hex((extract(epoch from at) * 1000)::bigint), 12, '0') || '7'
                 || lpad(to_hex(g % 4096), 3, '0') || '8' || lpad(to_hex(g), 15, '0'))::uuid,
                i.id, i.tenant_id, 'scheduler', at, 'SUCCESS', 1, 'w', at, at
         from ingestions i,
              lateral (select g, now() - interval '60 days' + make_interval(mins => g * 2) as at
                       from generate_series(1, 12000) g) s
         where i.id = $1",
    )
    .bind(a)
    .execute(&pool)
    .await
    .expect("old runs");
    let url = database_url(&pool);

    let _pruner = WorkerProcess::spawn(
        BIN,
        &url,
        "pruner",
        &[("SCHEDULER_RUN_RETENTION_DAYS", "30")],
    );
    wait_for(
        "the old runs to be pruned",
        StdDuration::from_secs(30),
        || async { (remaining(&pool).await == vec![recent]).then_some(()) },
    )
    .await;
}
