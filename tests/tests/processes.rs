//! The engine as it runs in production: real worker processes (the `test-worker` binary: the
//! shipped wiring with a test executor) against real PostgreSQL, killed, frozen and stopped.

use std::time::Duration;

use autoloader_tests::{
    database_url, manual_run, scheduled_ingestion, tenant, wait_for, WorkerProcess,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;
const BIN: &str = env!("CARGO_BIN_EXE_test-worker");
const LONG: Duration = Duration::from_secs(30);

#[derive(Debug, sqlx::FromRow)]
struct Run {
    status: String,
    attempt: i32,
    worker_id: Option<String>,
    reason: Option<String>,
}

async fn run_row(pool: &PgPool, run: Uuid) -> Run {
    sqlx::query_as("select status, attempt, worker_id, reason from runs where id = $1")
        .bind(run)
        .fetch_one(pool)
        .await
        .expect("run")
}

/// Waits until `run` is in `status` (and, if given, held or finished by `worker`).
async fn wait_status(
    pool: &PgPool,
    run: Uuid,
    status: &str,
    worker: Option<&str>,
    timeout: Duration,
) -> Run {
    wait_for(
        &format!("run {run} to be {status} ({worker:?})"),
        timeout,
        || async {
            let r = run_row(pool, run).await;
            (r.status == status && (worker.is_none() || r.worker_id.as_deref() == worker))
                .then_some(r)
        },
    )
    .await
}

fn long_first_attempt() -> serde_json::Value {
    json!({ "test_sleep_ms": 600_000, "test_sleep_attempts": 1 })
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn three_workers_run_every_due_tick_exactly_once_despite_a_kill(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    for n in 0..200 {
        scheduled_ingestion(
            &pool,
            t,
            &format!("events-{n}"),
            "0 * * * *",
            json!({"test_sleep_ms": 20}),
        )
        .await;
    }
    let tick: DateTime<Utc> = sqlx::query_scalar("select date_trunc('hour', now())")
        .fetch_one(&pool)
        .await
        .expect("now");
    sqlx::query("update schedule_ticks set next_fire_at = $1, recompute = false")
        .bind(tick)
        .execute(&pool)
        .await
        .expect("all due");

    let url = database_url(&pool);
    let env = [
        ("SCHEDULER_TICK_BATCH_SIZE", "5"),
        ("SCHEDULER_MISFIRE_GRACE_TIME", "7200"),
    ];
    let mut doomed = WorkerProcess::spawn(BIN, &url, "worker-1", &env);
    let _w2 = WorkerProcess::spawn(BIN, &url, "worker-2", &env);
    let _w3 = WorkerProcess::spawn(BIN, &url, "worker-3", &env);

    // Kill one as soon as the tickers are under way, while it may hold tick rows and runs.
    wait_for("the first runs", LONG, || async {
        let n: i64 = sqlx::query_scalar("select count(*) from runs")
            .fetch_one(&pool)
            .await
            .expect("count");
        (n > 0).then_some(())
    })
    .await;
    doomed.signal("KILL");
    doomed.wait_exit(LONG).await;

    let done = wait_for("every tick to finish", Duration::from_secs(60), || async {
        let (finished, rows): (i64, i64) = sqlx::query_as(
            "select count(*) filter (where status = 'SUCCESS'), count(*) from runs where scheduled_for = $1",
        )
        .bind(tick)
        .fetch_one(&pool)
        .await
        .expect("count");
        (finished == 200).then_some(rows)
    })
    .await;
    assert_eq!(done, 200, "one run per tick: none lost, none doubled");
    let distinct: i64 = sqlx::query_scalar(
        "select count(distinct ingestion_id) from runs where scheduled_for = $1",
    )
    .bind(tick)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(distinct, 200);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_killed_workers_run_is_recovered_by_another(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 0 1 1 *", long_first_attempt()).await;
    let run = manual_run(&pool, i).await;
    let url = database_url(&pool);

    let mut a = WorkerProcess::spawn(BIN, &url, "worker-a", &[]);
    wait_status(&pool, run, "RUNNING", Some("worker-a"), LONG).await;
    a.signal("KILL");
    a.wait_exit(LONG).await;

    let _b = WorkerProcess::spawn(BIN, &url, "worker-b", &[]);
    // Lease TTL is 2 s in these tests: recovery, the second claim and the run fit well inside 15 s.
    let done = wait_status(
        &pool,
        run,
        "SUCCESS",
        Some("worker-b"),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(done.attempt, 2);
    let reason = done.reason.unwrap_or_default();
    assert!(
        reason.starts_with("requeued: worker worker-a lost its lease at "),
        "{reason}"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_frozen_worker_wakes_up_fenced_out(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 0 1 1 *", long_first_attempt()).await;
    let run = manual_run(&pool, i).await;
    let url = database_url(&pool);

    let a = WorkerProcess::spawn(BIN, &url, "worker-a", &[]);
    wait_status(&pool, run, "RUNNING", Some("worker-a"), LONG).await;
    a.signal("STOP");
    let _b = WorkerProcess::spawn(BIN, &url, "worker-b", &[]);
    let done = wait_status(&pool, run, "SUCCESS", Some("worker-b"), LONG).await;
    assert_eq!(done.attempt, 2);

    a.signal("CONT");
    wait_for("worker-a to notice it lost the lease", LONG, || async {
        a.log().contains("lease lost").then_some(())
    })
    .await;
    let after = run_row(&pool, run).await;
    assert_eq!(
        (
            after.status.as_str(),
            after.attempt,
            after.worker_id.as_deref()
        ),
        ("SUCCESS", 2, Some("worker-b"))
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sigterm_waits_for_runs_in_flight_and_claims_nothing_new(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let mut runs = Vec::new();
    for n in 0..3 {
        let i = scheduled_ingestion(
            &pool,
            t,
            &format!("e{n}"),
            "0 0 1 1 *",
            json!({"test_sleep_ms": 1500}),
        )
        .await;
        runs.push(manual_run(&pool, i).await);
    }
    let mut a = WorkerProcess::spawn(BIN, &database_url(&pool), "worker-a", &[]);
    for r in &runs {
        wait_status(&pool, *r, "RUNNING", Some("worker-a"), LONG).await;
    }
    a.signal("TERM");
    let late = scheduled_ingestion(&pool, t, "late", "0 0 1 1 *", json!({})).await;
    let late_run = manual_run(&pool, late).await;

    assert_eq!(a.wait_exit(LONG).await, Some(0));
    for r in &runs {
        let row = run_row(&pool, *r).await;
        assert_eq!(
            (row.status.as_str(), row.worker_id.as_deref()),
            ("SUCCESS", Some("worker-a"))
        );
    }
    assert_eq!(
        run_row(&pool, late_run).await.status,
        "QUEUED",
        "a stopping worker claims nothing new"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sigterm_past_the_timeout_gives_leases_back_for_another_worker(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let mut runs = Vec::new();
    for n in 0..3 {
        let i = scheduled_ingestion(
            &pool,
            t,
            &format!("e{n}"),
            "0 0 1 1 *",
            long_first_attempt(),
        )
        .await;
        runs.push(manual_run(&pool, i).await);
    }
    let url = database_url(&pool);
    let mut a = WorkerProcess::spawn(
        BIN,
        &url,
        "worker-a",
        &[("SCHEDULER_SHUTDOWN_TIMEOUT", "0.5")],
    );
    for r in &runs {
        wait_status(&pool, *r, "RUNNING", Some("worker-a"), LONG).await;
    }
    a.signal("TERM");
    assert_eq!(a.wait_exit(LONG).await, Some(0));
    for r in &runs {
        let row = run_row(&pool, *r).await;
        assert_eq!(row.status, "QUEUED", "given back, not left to expire");
        assert_eq!(
            row.reason.as_deref(),
            Some("requeued: worker worker-a shut down before the run finished")
        );
    }

    let _b = WorkerProcess::spawn(BIN, &url, "worker-b", &[]);
    for r in &runs {
        let done = wait_status(&pool, *r, "SUCCESS", Some("worker-b"), LONG).await;
        assert_eq!(done.attempt, 2);
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_second_signal_exits_at_once(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 0 1 1 *", long_first_attempt()).await;
    let run = manual_run(&pool, i).await;
    let mut a = WorkerProcess::spawn(
        BIN,
        &database_url(&pool),
        "worker-a",
        &[("SCHEDULER_SHUTDOWN_TIMEOUT", "600")],
    );
    wait_status(&pool, run, "RUNNING", Some("worker-a"), LONG).await;
    a.signal("TERM");
    wait_for("the first signal to be seen", LONG, || async {
        a.log().contains("shutdown requested").then_some(())
    })
    .await;
    a.signal("TERM");
    assert_eq!(a.wait_exit(Duration::from_secs(10)).await, Some(130));
    // It left without a word: the lease stays until it expires and another worker recovers it.
    assert_eq!(run_row(&pool, run).await.status, "RUNNING");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn after_a_full_outage_late_ticks_follow_the_misfire_rules(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 * * * *", json!({})).await;
    // Every process was down for ten hours.
    let first: DateTime<Utc> = sqlx::query_scalar(
        "update schedule_ticks set next_fire_at = date_trunc('hour', now()) - interval '10 hours',
                recompute = false
         returning next_fire_at",
    )
    .fetch_one(&pool)
    .await
    .expect("outage");

    let _w = WorkerProcess::spawn(
        BIN,
        &database_url(&pool),
        "worker-a",
        &[("SCHEDULER_MISFIRE_GRACE_TIME", "18000")],
    );
    let h = chrono::Duration::hours;
    let rows: Vec<(String, DateTime<Utc>, Option<String>)> = wait_for("the late ticks to be handled", LONG, || async {
        let rows: Vec<(String, DateTime<Utc>, Option<String>)> = sqlx::query_as(
            "select status, scheduled_for, reason from runs where ingestion_id = $1 order by scheduled_for",
        )
        .bind(i)
        .fetch_all(&pool)
        .await
        .expect("runs");
        (rows.len() == 2 && rows[1].0 == "SUCCESS").then_some(rows)
    })
    .await;
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("MISSED", first + h(5)));
    assert!(rows[0]
        .2
        .as_deref()
        .unwrap_or("")
        .starts_with("6 tick(s) from "));
    assert_eq!(rows[1].1, first + h(10));
    assert!(rows[1]
        .2
        .as_deref()
        .unwrap_or("")
        .starts_with("coalesced 5 late ticks"));
    let next: DateTime<Utc> =
        sqlx::query_scalar("select next_run_time from ingestions where id = $1")
            .bind(i)
            .fetch_one(&pool)
            .await
            .expect("next");
    assert_eq!(next, first + h(11));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn schedule_edits_reach_a_running_ticker_without_a_restart(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 2 1 1 *", json!({})).await;
    // The safety poll is 60 s in these tests: only a notification explains a reaction within 20 s
    // (the bound is loose because the machine is shared; it takes milliseconds).
    let _w = WorkerProcess::spawn(BIN, &database_url(&pool), "worker-a", &[]);
    let next_run = |pool: PgPool| async move {
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "select next_run_time from ingestions where id = $1",
        )
        .bind(i)
        .fetch_one(&pool)
        .await
        .expect("next")
    };
    let yearly = wait_for("the first next_run_time", LONG, || async {
        next_run(pool.clone()).await
    })
    .await;
    assert!(yearly - Utc::now() > chrono::Duration::days(1), "{yearly}");

    sqlx::query("update ingestions set schedule_cron = '* * * * *' where id = $1")
        .bind(i)
        .execute(&pool)
        .await
        .expect("edit");
    wait_for(
        "the edit to reach the ticker",
        Duration::from_secs(20),
        || async {
            next_run(pool.clone())
                .await
                .filter(|n| *n - Utc::now() <= chrono::Duration::seconds(61))
        },
    )
    .await;

    // A tick made due by hand runs promptly.
    sqlx::query("update schedule_ticks set next_fire_at = date_trunc('minute', now()) where ingestion_id = $1")
        .bind(i)
        .execute(&pool)
        .await
        .expect("due");
    wait_for("the due tick to run", Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from runs where ingestion_id = $1 and status = 'SUCCESS'",
        )
        .bind(i)
        .fetch_one(&pool)
        .await
        .expect("count");
        (n >= 1).then_some(())
    })
    .await;

    sqlx::query("update ingestions set schedule_enabled = false where id = $1")
        .bind(i)
        .execute(&pool)
        .await
        .expect("disable");
    assert_eq!(next_run(pool.clone()).await, None);
    let ticks: i64 = sqlx::query_scalar("select count(*) from schedule_ticks")
        .fetch_one(&pool)
        .await
        .expect("n");
    assert_eq!(
        ticks, 0,
        "a disabled schedule has no tick for any ticker to fire"
    );
}

/// A run whose work holds its thread for longer than the lease (a long decoding step) keeps its
/// lease: the heartbeat runs on a task of its own, not on the task doing the work.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_run_that_holds_its_thread_past_the_lease_keeps_its_lease(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    // Leases of 2 s (the harness's), work that blocks its thread for 5 s.
    let ingestion = scheduled_ingestion(
        &pool,
        t,
        "busy",
        "0 0 1 1 *",
        json!({ "test_block_ms": 5000 }),
    )
    .await;
    let run = manual_run(&pool, ingestion).await;
    // Two workers: whichever runs it, the other would rescue it if its lease ran out.
    let _w1 = WorkerProcess::spawn(BIN, &database_url(&pool), "busy-1", &[]);
    let _w2 = WorkerProcess::spawn(BIN, &database_url(&pool), "busy-2", &[]);
    let done = wait_status(&pool, run, "SUCCESS", None, LONG).await;
    assert_eq!(done.attempt, 1, "never rescued: {done:?}");
}
