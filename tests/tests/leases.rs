//! Claiming and leases against real PostgreSQL: one claimer per run however many race, late
//! writes of a lost lease change nothing, and lost runs are requeued, then failed.

use std::collections::HashSet;
use std::time::Duration;

use autoloader::runs::lease::RunOutput;
use autoloader::runs::lease::{self, Lease, Outcome};
use autoloader_tests::{manual_run, scheduled_ingestion, tenant};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;
const TTL: Duration = Duration::from_secs(30);

/// Records one outcome under `lease` as `worker`; true when the lease still held.
async fn complete(pool: &PgPool, worker: &str, lease: Lease, outcome: Outcome) -> bool {
    let applied = lease::run_complete(pool, worker, &[(lease, outcome)])
        .await
        .expect("complete");
    applied == vec![lease.run_id]
}

async fn expire_leases(pool: &PgPool) {
    sqlx::query(
        "update runs set lease_expires_at = now() - interval '1 second' where status = 'RUNNING'",
    )
    .execute(pool)
    .await
    .expect("expire");
}

#[derive(Debug, sqlx::FromRow, PartialEq)]
struct Row {
    status: String,
    attempt: i32,
    worker_id: Option<String>,
    rows_ingested: i64,
    reason: Option<String>,
    error: Option<String>,
}

async fn row(pool: &PgPool, run: Uuid) -> Row {
    sqlx::query_as(
        "select status, attempt, worker_id, rows_ingested, reason, error from runs where id = $1",
    )
    .bind(run)
    .fetch_one(pool)
    .await
    .expect("run")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn racing_claimers_each_get_different_runs(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let mut queued = HashSet::new();
    for n in 0..60 {
        let i = scheduled_ingestion(&pool, t, &format!("e{n}"), "0 0 * * *", json!({})).await;
        queued.insert(manual_run(&pool, i).await);
    }
    let claimers = (0..12).map(|w| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = lease::run_claim(&pool, &format!("w{w}"), 3, TTL)
                    .await
                    .expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.run_id));
            }
        })
    });
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.expect("claimer"));
    }
    let distinct: HashSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 60, "every run claimed once");
    assert_eq!(distinct, queued);
    let running: i64 =
        sqlx::query_scalar("select count(*) from runs where status = 'RUNNING' and attempt = 1")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(running, 60);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn claims_take_the_oldest_tick_first_and_no_more_than_asked(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let mut runs = Vec::new();
    for n in 0..5 {
        let i = scheduled_ingestion(&pool, t, &format!("e{n}"), "0 0 * * *", json!({})).await;
        let run = Uuid::now_v7();
        // Ticks queued in reverse order of their scheduled time.
        sqlx::query(
            "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for)
             values ($1, $2, $3, 'scheduler', now() - make_interval(mins => $4))",
        )
        .bind(run)
        .bind(i)
        .bind(t)
        .bind(n)
        .execute(&pool)
        .await
        .expect("queue");
        runs.push(run);
    }
    let got = lease::run_claim(&pool, "w", 2, TTL).await.expect("claim");
    let ids: Vec<Uuid> = got.iter().map(|c| c.run_id).collect();
    assert_eq!(ids, vec![runs[4], runs[3]]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_lost_lease_is_fenced_out_of_every_later_write(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 0 * * *", json!({})).await;
    let run = manual_run(&pool, i).await;

    let a = lease::run_claim(&pool, "worker-a", 1, TTL)
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(a.attempt, 1);
    // worker-a freezes; its lease runs out and another process rescues the run.
    expire_leases(&pool).await;
    let rescued = lease::run_rescue_expired(&pool, 3, 100)
        .await
        .expect("rescue");
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0].status, "QUEUED");
    let b = lease::run_claim(&pool, "worker-b", 1, TTL)
        .await
        .expect("claim")
        .remove(0);
    assert_eq!((b.run_id, b.attempt), (run, 2));

    // worker-a wakes up: every write it tries is refused.
    let stale = Lease {
        run_id: run,
        attempt: 1,
    };
    let out = RunOutput {
        files_processed: 9,
        rows_ingested: 999,
        bytes_read: 9,
        bytes_written: 9,
        snapshot_id: Some(9),
    };
    assert!(!lease::run_heartbeat(&pool, "worker-a", stale, TTL)
        .await
        .expect("hb"));
    assert!(!complete(&pool, "worker-a", stale, Outcome::Success(out)).await);
    assert!(!complete(&pool, "worker-a", stale, Outcome::Failure("boom".into())).await);
    assert!(
        !lease::run_requeue(&pool, "worker-a", stale, Duration::ZERO, "x", None)
            .await
            .expect("requeue")
    );
    // Even with the right attempt number, another worker's name does not pass the fence.
    assert!(!complete(&pool, "worker-a", b.lease(), Outcome::Success(out)).await);

    let done = RunOutput {
        files_processed: 1,
        rows_ingested: 10,
        bytes_read: 100,
        bytes_written: 50,
        snapshot_id: Some(7),
    };
    assert!(lease::run_heartbeat(&pool, "worker-b", b.lease(), TTL)
        .await
        .expect("hb"));
    assert!(complete(&pool, "worker-b", b.lease(), Outcome::Success(done)).await);
    let r = row(&pool, run).await;
    assert_eq!(
        (
            r.status.as_str(),
            r.attempt,
            r.worker_id.as_deref(),
            r.rows_ingested
        ),
        ("SUCCESS", 2, Some("worker-b"), 10)
    );
    assert!(
        r.reason
            .as_deref()
            .unwrap_or("")
            .starts_with("requeued: worker worker-a lost its lease at "),
        "{r:?}"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn one_statement_records_outcomes_and_claims_the_next_runs(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let mut ingestions = Vec::new();
    for n in 0..4 {
        ingestions
            .push(scheduled_ingestion(&pool, t, &format!("e{n}"), "0 0 * * *", json!({})).await);
    }
    let first = manual_run(&pool, ingestions[0]).await;
    let lost = manual_run(&pool, ingestions[1]).await;
    let a = lease::run_claim(&pool, "w", 2, TTL).await.expect("claim");
    assert_eq!(a.len(), 2);
    // `lost` is rescued and claimed by another worker: w's outcome for it must not land.
    sqlx::query("update runs set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(lost)
        .execute(&pool)
        .await
        .expect("expire");
    lease::run_rescue_expired(&pool, 3, 100)
        .await
        .expect("rescue");
    let other = lease::run_claim(&pool, "other", 1, TTL)
        .await
        .expect("claim");
    assert_eq!(other[0].run_id, lost);
    let next = manual_run(&pool, ingestions[2]).await;
    let after = manual_run(&pool, ingestions[3]).await;

    let out = RunOutput {
        rows_ingested: 5,
        ..RunOutput::default()
    };
    let done = lease::run_exchange(
        &pool,
        "w",
        &[
            (
                Lease {
                    run_id: first,
                    attempt: 1,
                },
                Outcome::Success(out),
            ),
            (
                Lease {
                    run_id: lost,
                    attempt: 1,
                },
                Outcome::Failure("late".into()),
            ),
        ],
        1,
        TTL,
        None,
    )
    .await
    .expect("exchange");
    assert_eq!(
        done.recorded,
        vec![Lease {
            run_id: first,
            attempt: 1
        }],
        "only the outcome whose lease held"
    );
    let claimed: Vec<Uuid> = done.claimed.iter().map(|c| c.run_id).collect();
    assert_eq!(
        claimed,
        vec![next],
        "the oldest queued run, no more than asked"
    );
    assert_eq!(done.claimed[0].ingestion.id, ingestions[2]);

    assert_eq!(row(&pool, first).await.status, "SUCCESS");
    assert_eq!(row(&pool, first).await.rows_ingested, 5);
    let l = row(&pool, lost).await;
    assert_eq!(
        (l.status.as_str(), l.worker_id.as_deref(), l.attempt),
        ("RUNNING", Some("other"), 2)
    );
    assert_eq!(row(&pool, next).await.status, "RUNNING");
    assert_eq!(row(&pool, after).await.status, "QUEUED");

    // With nothing finished and nothing to claim, it changes nothing.
    let idle = lease::run_exchange(&pool, "w", &[], 0, TTL, None)
        .await
        .expect("exchange");
    assert!(idle.recorded.is_empty() && idle.claimed.is_empty());
    assert_eq!(row(&pool, after).await.status, "QUEUED");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_error_text_postgres_cannot_store_does_not_sink_its_batch(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let good = scheduled_ingestion(&pool, t, "good", "0 0 * * *", json!({})).await;
    let bad = scheduled_ingestion(&pool, t, "bad", "0 0 * * *", json!({})).await;
    let long = scheduled_ingestion(&pool, t, "long", "0 0 * * *", json!({})).await;
    let (good, bad, long) = (
        manual_run(&pool, good).await,
        manual_run(&pool, bad).await,
        manual_run(&pool, long).await,
    );
    lease::run_claim(&pool, "w", 3, TTL).await.expect("claim");
    let lease_of = |run_id| Lease { run_id, attempt: 1 };
    // A parser's error quoting a binary record (NUL bytes, which `text` refuses), and one of 1 MB.
    let binary = "bad record: 'a\0b'".to_owned();
    let huge = "x".repeat(1 << 20);
    let done = lease::run_exchange(
        &pool,
        "w",
        &[
            (lease_of(good), Outcome::Success(RunOutput::default())),
            (lease_of(bad), Outcome::Failure(binary)),
            (lease_of(long), Outcome::Failure(huge)),
        ],
        0,
        TTL,
        None,
    )
    .await
    .expect("the batch is written");
    assert_eq!(done.recorded.len(), 3);
    assert_eq!(row(&pool, good).await.status, "SUCCESS");
    let b = row(&pool, bad).await;
    assert_eq!(b.status, "FAILED");
    assert_eq!(b.error.as_deref(), Some("bad record: 'a\u{FFFD}b'"));
    let l = row(&pool, long).await.error.expect("error");
    assert!(
        l.len() < 17 * 1024 && l.ends_with("[cut at 16 KiB]"),
        "{} bytes",
        l.len()
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_run_that_keeps_losing_its_worker_fails_as_worker_lost(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 0 * * *", json!({})).await;
    let run = manual_run(&pool, i).await;
    for attempt in 1..=3 {
        let c = lease::run_claim(&pool, &format!("w{attempt}"), 1, TTL)
            .await
            .expect("claim");
        assert_eq!(c.len(), 1);
        expire_leases(&pool).await;
        lease::run_rescue_expired(&pool, 3, 100)
            .await
            .expect("rescue");
    }
    let r = row(&pool, run).await;
    assert_eq!(
        (r.status.as_str(), r.attempt, r.reason.as_deref()),
        ("FAILED", 3, Some("worker lost"))
    );
    assert_eq!(
        r.error.as_deref(),
        Some("worker lost: w3 stopped renewing its lease (attempt 3 of 3)")
    );
    assert!(lease::run_claim(&pool, "w4", 1, TTL)
        .await
        .expect("claim")
        .is_empty());
    // A live lease is never rescued.
    let again = manual_run(&pool, i).await;
    lease::run_claim(&pool, "w5", 1, TTL).await.expect("claim");
    assert!(lease::run_rescue_expired(&pool, 3, 100)
        .await
        .expect("rescue")
        .is_empty());
    assert_eq!(row(&pool, again).await.status, "RUNNING");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_retry_waits_out_its_back_off(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 0 * * *", json!({})).await;
    let run = manual_run(&pool, i).await;
    let c = lease::run_claim(&pool, "w", 1, TTL)
        .await
        .expect("claim")
        .remove(0);
    assert!(lease::run_requeue(
        &pool,
        "w",
        c.lease(),
        Duration::from_secs(3600),
        "retry 1 of 1",
        Some("flaky")
    )
    .await
    .expect("requeue"));
    assert!(
        lease::run_claim(&pool, "w", 1, TTL)
            .await
            .expect("claim")
            .is_empty(),
        "not before its back-off"
    );
    sqlx::query("update runs set not_before = now() - interval '1 second' where id = $1")
        .bind(run)
        .execute(&pool)
        .await
        .expect("time passes");
    let again = lease::run_claim(&pool, "w", 1, TTL).await.expect("claim");
    assert_eq!(
        again
            .iter()
            .map(|c| (c.run_id, c.attempt))
            .collect::<Vec<_>>(),
        vec![(run, 2)]
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn batched_outcomes_are_fenced_one_by_one(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let mut runs = Vec::new();
    for n in 0..3 {
        let i = scheduled_ingestion(&pool, t, &format!("e{n}"), "0 0 * * *", json!({})).await;
        runs.push(manual_run(&pool, i).await);
    }
    let claimed = lease::run_claim(&pool, "worker-a", 3, TTL)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    // The first run's lease is lost and the run claimed again by worker-b.
    let lost = claimed
        .iter()
        .find(|c| c.run_id == runs[0])
        .expect("run 0")
        .lease();
    sqlx::query("update runs set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(runs[0])
        .execute(&pool)
        .await
        .expect("expire");
    lease::run_rescue_expired(&pool, 3, 100)
        .await
        .expect("rescue");
    let b = lease::run_claim(&pool, "worker-b", 1, TTL)
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(b.run_id, runs[0]);

    let out = RunOutput {
        files_processed: 2,
        rows_ingested: 20,
        bytes_read: 200,
        bytes_written: 0,
        snapshot_id: None,
    };
    let batch: Vec<(Lease, Outcome)> = claimed
        .iter()
        .map(|c| {
            let outcome = if c.run_id == runs[2] {
                Outcome::Failure("boom".into())
            } else {
                Outcome::Success(out)
            };
            (if c.run_id == runs[0] { lost } else { c.lease() }, outcome)
        })
        .collect();
    let mut applied = lease::run_complete(&pool, "worker-a", &batch)
        .await
        .expect("complete");
    applied.sort();
    let mut want = vec![runs[1], runs[2]];
    want.sort();
    assert_eq!(
        applied, want,
        "the stale lease's outcome is dropped, the others written"
    );
    let r0 = row(&pool, runs[0]).await;
    assert_eq!(
        (
            r0.status.as_str(),
            r0.worker_id.as_deref(),
            r0.rows_ingested
        ),
        ("RUNNING", Some("worker-b"), 0)
    );
    let r1 = row(&pool, runs[1]).await;
    assert_eq!((r1.status.as_str(), r1.rows_ingested), ("SUCCESS", 20));
    let r2 = row(&pool, runs[2]).await;
    assert_eq!(
        (r2.status.as_str(), r2.error.as_deref()),
        ("FAILED", Some("boom"))
    );
}

/// The fence writes a run's rejections with a commit that carries files, and leaves them alone
/// for one that carries none (a later attempt that found nothing new): what an earlier attempt
/// recorded of the same run stays.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_commit_without_files_keeps_the_rejections_an_earlier_attempt_recorded(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 0 * * *", json!({})).await;
    let run = manual_run(&pool, i).await;
    let a = lease::run_claim(&pool, "worker-a", 1, TTL)
        .await
        .expect("claim")
        .remove(0);
    let fence = lease::Fence {
        run_id: run,
        attempt: a.attempt,
        worker_id: "worker-a".into(),
    };
    let rejected = lease::Rejections {
        files: 2,
        records: 0,
        first: Some(json!([{"file": "f", "record": null, "column": null, "reason": "bad"}])),
    };
    let counters = |pool: PgPool| async move {
        sqlx::query_as::<_, (i64, Option<serde_json::Value>)>(
            "select files_rejected, rejected_records from runs where id = $1",
        )
        .bind(run)
        .fetch_one(&pool)
        .await
        .expect("run")
    };
    let mut tx = pool.begin().await.expect("tx");
    assert!(lease::run_fence(&mut tx, &fence, Some(&rejected))
        .await
        .expect("fence"));
    tx.commit().await.expect("commit");
    assert_eq!(counters(pool.clone()).await.0, 2);

    let mut tx = pool.begin().await.expect("tx");
    assert!(lease::run_fence(&mut tx, &fence, None)
        .await
        .expect("fence"));
    tx.commit().await.expect("commit");
    let (files, first) = counters(pool.clone()).await;
    assert_eq!(files, 2, "kept");
    assert_eq!(first, rejected.first);

    let mut tx = pool.begin().await.expect("tx");
    assert!(
        lease::run_fence(&mut tx, &fence, Some(&lease::Rejections::default()))
            .await
            .expect("fence")
    );
    tx.commit().await.expect("commit");
    assert_eq!(
        counters(pool).await,
        (0, None),
        "a commit with files writes its own"
    );
}
