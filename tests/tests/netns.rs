//! Worker hosts that lose the network. Each test makes a lab (`autoloader_tests::netns`): a
//! bridge, a PostgreSQL cluster listening on it, and hosts (network namespaces on veth pairs),
//! runs the shipped worker binary inside the hosts, and cuts a host's link: packets dropped,
//! nothing reset, so the host's connections go half-open, as when a switch or a route fails.
//!
//! Each test prints one `RECOVERY` line with what it measured (`scripts/bench-netns.sh` reports
//! the medians of several runs in BENCHMARKS.md). Nothing here asserts a time: leases are short
//! (4 s, heartbeats every second) so that each test takes seconds, and every wait is for a
//! condition.
//!
//! Without root or `ip`, each test prints a SKIPPED banner and returns (and fails on CI).

use std::time::Duration;

use chrono::{DateTime, Utc};

use autoloader_tests::loader::{ids, Loader};
use autoloader_tests::netns::{fast_settings, Host, Lab, LEASE_TTL};
use autoloader_tests::{s3, wait_for, WorkerProcess};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// One lab at a time: the tests cut links and wait out leases, and a machine busy with four
/// clusters at once would blur what they measure.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TABLE: &str = "events.clicks";
const WAIT: Duration = Duration::from_secs(60);

/// A loader world whose database is the lab's: the API in the test process, the workers in
/// the lab's hosts.
async fn world(lab: &Lab, name: &str) -> Loader {
    let (pool, url) = lab.database("netns").await;
    let mut w = Loader::new(pool, name).await;
    w.url = url;
    w
}

/// A JSON-lines file of ids `from..to`.
fn ids_file(w: &Loader, name: &str, from: i64, to: i64) {
    let body: String = (from..to).map(|i| format!("{{\"id\": {i}}}\n")).collect();
    w.write(name, body.as_bytes());
}

/// A worker of the lab's `host`, with the tests' short leases and bounds and `extra`.
fn worker(w: &Loader, host: &Host, extra: &[(&str, &str)]) -> WorkerProcess {
    let mut env = fast_settings();
    env.push(("SCHEDULER_POLL_INTERVAL", "2"));
    env.extend_from_slice(extra);
    w.worker_in(&host.prefix(), &host.name, &env)
}

/// (status, worker, attempt) of a run.
async fn run_row(pool: &PgPool, run: Uuid) -> (String, Option<String>, i32) {
    sqlx::query_as("select status, worker_id, attempt from runs where id = $1")
        .bind(run)
        .fetch_one(pool)
        .await
        .expect("run row")
}

/// Waits until `host`'s log says `needle`.
async fn logged(worker: &WorkerProcess, needle: &str) {
    wait_for(
        &format!("{} to log {needle:?}", worker.name),
        WAIT,
        || async { worker.log().contains(needle).then_some(()) },
    )
    .await
}

/// Waits until `host` has claimed `run`; returns when it did, by the database's clock.
async fn claimed_by(pool: &PgPool, run: Uuid, host: &Host) -> DateTime<Utc> {
    wait_for(
        &format!("run {run} to run on {}", host.name),
        WAIT,
        || async {
            let (worker, started): (Option<String>, Option<DateTime<Utc>>) =
                sqlx::query_as("select worker_id, started_at from runs where id = $1")
                    .bind(run)
                    .fetch_one(pool)
                    .await
                    .expect("run row");
            started.filter(|_| worker.as_deref() == Some(host.name.as_str()))
        },
    )
    .await
}

/// Seconds from `from` to `to`.
fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// Triggers a run; returns its id.
async fn trigger(w: &Loader, ingestion: Uuid) -> Uuid {
    let run = w.api.trigger(&w.token, ingestion).await;
    run["id"].as_str().expect("id").parse().expect("uuid")
}

/// Every id of the table, as the Iceberg scan and pyiceberg read it, is `want`, once.
async fn holds_exactly(w: &Loader, want: std::ops::Range<i64>) {
    let want: Vec<i64> = want.collect();
    let t = w.table(TABLE).await.expect("the table");
    assert_eq!(ids(&t.rows), want, "every row exactly once (Iceberg scan)");
    let id = format!("{}.{TABLE}", w.namespace);
    if let Some(py) = s3::iceberg_read(&w.url, &w.warehouse, &id) {
        assert_eq!(py["row_count"], want.len(), "pyiceberg: {py}");
        let rows = py["rows"].as_array().expect("rows");
        assert_eq!(ids(rows), want, "every row exactly once (pyiceberg)");
    }
}

/// After the partitioned host is healed: with no other host, a run queued now is claimed by
/// it (it went back to work by itself); returns how long after `healed` the claim was seen.
async fn back_to_work(
    w: &Loader,
    ingestion: Uuid,
    host: &Host,
    healed: DateTime<Utc>,
    next: i64,
) -> f64 {
    ids_file(w, "later.json", next, next + 50);
    let run = trigger(w, ingestion).await;
    let claimed = claimed_by(&w.pool, run, host).await;
    let finished = w.finished(&run.to_string()).await;
    assert_eq!(finished["status"], "SUCCESS", "{finished}");
    secs(healed, claimed)
}

fn recovery(test: &str, fields: &[(&str, f64)]) {
    let measured: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v:.2}")).collect();
    println!(
        "RECOVERY test={test} lease_ttl={} heartbeat=1 {}",
        LEASE_TTL.as_secs(),
        measured.join(" ")
    );
}

/// A host cut off mid-run for longer than the lease: it stops the run when a whole lease
/// passed without an answered heartbeat (writing nothing: no commit, no outcome), another host
/// rescues the run after the lease and completes it, and the table holds every row once. Healed,
/// the host goes back to work by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_longer_than_the_lease_moves_the_run_to_another_host() {
    let _one = SERIAL.lock().await;
    let Some(lab) =
        Lab::new("netns::a_partition_longer_than_the_lease_moves_the_run_to_another_host").await
    else {
        return;
    };
    let w = world(&lab, "netns-long").await;
    ids_file(&w, "a.json", 0, 100);
    let ingestion = w.ingestion("json", TABLE, json!({})).await;
    let (a, b) = (lab.host("a"), lab.host("b"));
    let on_a = worker(&w, &a, &[("AUTOLOADER_FAILPOINT", "pause-before-commit")]);
    let run = trigger(&w, ingestion).await;
    logged(&on_a, "failpoint pause-before-commit").await;
    let on_b = worker(&w, &b, &[]);
    logged(&on_b, "worker started").await;

    a.cut();
    let cut = Utc::now();
    let elsewhere = claimed_by(&w.pool, run, &b).await;
    let done = w.finished(&run.to_string()).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let (_, by, attempt) = run_row(&w.pool, run).await;
    assert_eq!((by.as_deref(), attempt), (Some(b.name.as_str()), 2));
    logged(&on_a, "stopping the run and recording nothing").await;
    holds_exactly(&w, 0..100).await;
    let t = w.table(TABLE).await.expect("table");
    assert_eq!(t.snapshots, 1, "the cut-off host never committed");

    drop(on_b);
    a.heal();
    let healed = Utc::now();
    let back = back_to_work(&w, ingestion, &a, healed, 100).await;
    holds_exactly(&w, 0..150).await;
    recovery(
        "longer_than_lease",
        &[
            ("cut_to_running_elsewhere_s", secs(cut, elsewhere)),
            ("heal_to_claiming_s", back),
        ],
    );
}

/// A host cut off after its commit and before its outcome is written: its run is rescued by
/// another host, which finds the snapshot already committed and loads nothing twice. Healed, the
/// host sends its late outcome, the fence refuses it (the host logs the lost lease), and the
/// host goes back to work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_outcome_after_a_partition_is_refused_by_the_fence() {
    let _one = SERIAL.lock().await;
    let Some(lab) =
        Lab::new("netns::a_late_outcome_after_a_partition_is_refused_by_the_fence").await
    else {
        return;
    };
    let w = world(&lab, "netns-late").await;
    ids_file(&w, "a.json", 0, 100);
    let ingestion = w.ingestion("json", TABLE, json!({})).await;
    let (a, b) = (lab.host("a"), lab.host("b"));
    let on_a = worker(&w, &a, &[("AUTOLOADER_FAILPOINT", "pause-after-commit")]);
    let run = trigger(&w, ingestion).await;
    logged(&on_a, "failpoint pause-after-commit").await;
    a.cut();
    let cut = Utc::now();
    let on_b = worker(&w, &b, &[]);

    let elsewhere = claimed_by(&w.pool, run, &b).await;
    let done = w.finished(&run.to_string()).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let (_, by, attempt) = run_row(&w.pool, run).await;
    assert_eq!((by.as_deref(), attempt), (Some(b.name.as_str()), 2));
    holds_exactly(&w, 0..100).await;
    assert_eq!(
        w.table(TABLE).await.expect("table").snapshots,
        1,
        "committed once"
    );
    assert!(
        !on_a.log().contains("lease lost"),
        "the outcome waits while the host is cut off"
    );

    drop(on_b);
    a.heal();
    let healed = Utc::now();
    logged(&on_a, "recording the outcome").await;
    let refused = secs(healed, Utc::now());
    assert!(on_a.log().contains("lease lost"), "{}", on_a.log());
    let (status, by, attempt) = run_row(&w.pool, run).await;
    assert_eq!(
        (status.as_str(), by.as_deref(), attempt),
        ("SUCCESS", Some(b.name.as_str()), 2),
        "the late outcome changed nothing"
    );
    let back = back_to_work(&w, ingestion, &a, healed, 100).await;
    holds_exactly(&w, 0..150).await;
    recovery(
        "late_outcome",
        &[
            ("cut_to_running_elsewhere_s", secs(cut, elsewhere)),
            ("heal_to_outcome_refused_s", refused),
            ("heal_to_claiming_s", back),
        ],
    );
}

/// A cut shorter than the lease, mid-run: the run finishes on its host, in its first attempt,
/// nobody rescues it, and the table holds every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_heals_within_the_lease_loses_and_duplicates_nothing() {
    let _one = SERIAL.lock().await;
    let Some(lab) =
        Lab::new("netns::a_partition_that_heals_within_the_lease_loses_and_duplicates_nothing")
            .await
    else {
        return;
    };
    let w = world(&lab, "netns-short").await;
    ids_file(&w, "a.json", 0, 100);
    let ingestion = w.ingestion("json", TABLE, json!({})).await;
    let (a, b) = (lab.host("a"), lab.host("b"));
    let on_a = worker(&w, &a, &[("AUTOLOADER_FAILPOINT", "pause-before-commit")]);
    let run = trigger(&w, ingestion).await;
    logged(&on_a, "failpoint pause-before-commit").await;
    let on_b = worker(&w, &b, &[]);
    logged(&on_b, "worker started").await;

    a.cut();
    // The partition itself: a quarter of the lease.
    tokio::time::sleep(LEASE_TTL / 4).await;
    a.heal();
    let done = w.finished(&run.to_string()).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let (_, by, attempt) = run_row(&w.pool, run).await;
    assert_eq!(
        (by.as_deref(), attempt),
        (Some(a.name.as_str()), 1),
        "finished where it started, in its first attempt"
    );
    holds_exactly(&w, 0..100).await;
    let t = w.table(TABLE).await.expect("table");
    assert_eq!(t.snapshots, 1);
    let runs: i64 = sqlx::query_scalar("select count(*) from runs where ingestion_id = $1")
        .bind(ingestion)
        .fetch_one(&w.pool)
        .await
        .expect("count");
    assert_eq!(runs, 1);
    assert!(!on_a.log().contains("stopping the run"), "{}", on_a.log());
    assert!(!on_b.log().contains("recovered a run"), "{}", on_b.log());
}

/// A host that loses the database while idle, for longer than the lease and every bound on its
/// statements, keeps no slot or connection stuck: healed, its one slot takes run after run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_loses_the_database_while_idle_keeps_no_stuck_slots() {
    let _one = SERIAL.lock().await;
    let Some(lab) =
        Lab::new("netns::a_host_that_loses_the_database_while_idle_keeps_no_stuck_slots").await
    else {
        return;
    };
    let w = world(&lab, "netns-idle").await;
    ids_file(&w, "a.json", 0, 100);
    let ingestion = w.ingestion("json", TABLE, json!({})).await;
    let a = lab.host("a");
    let on_a = worker(
        &w,
        &a,
        &[
            ("SCHEDULER_MAX_WORKERS", "1"),
            ("AUTOLOADER_DB_MAX_CONNECTIONS", "4"),
        ],
    );
    let first = w.run_by_hand(ingestion).await;
    assert_eq!(first["status"], "SUCCESS", "{first}");

    a.cut();
    // The outage: longer than the lease and than every bound on a statement, so each of the
    // worker's loops meets a quiet connection.
    tokio::time::sleep(LEASE_TTL * 3 / 2).await;
    a.heal();
    let healed = Utc::now();
    let back = back_to_work(&w, ingestion, &a, healed, 100).await;
    ids_file(&w, "again.json", 150, 200);
    let again: Value = w.run_by_hand(ingestion).await;
    assert_eq!(again["status"], "SUCCESS", "{again}");
    holds_exactly(&w, 0..200).await;
    assert!(
        on_a.log().contains("the database went quiet"),
        "{}",
        on_a.log()
    );
    recovery("idle", &[("heal_to_claiming_s", back)]);
}
