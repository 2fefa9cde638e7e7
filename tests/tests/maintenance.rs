//! Tables that stay fast, through the engine: a table's facts in the API after each load,
//! maintenance runs queued by hand (one per table at a time, beside loads) and by the scheduler
//! when a table is due, and run by the shipped worker like any run (leases, history, API), with
//! the table read back row by row.

use std::time::Duration;

use autoloader_tests::loader::{ids, Loader, RUN_TIMEOUT};
use autoloader_tests::{s3, wait_for};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// Loads `n` one-row JSON files, each in a run of its own (ids `first..first + n`).
async fn small_loads(w: &Loader, ingestion: Uuid, first: i64, n: i64) {
    for id in first..first + n {
        w.write(
            &format!("f{id:05}.json"),
            format!("{{\"id\": {id}, \"name\": \"row {id}\"}}\n").as_bytes(),
        );
        let run = w.run_by_hand(ingestion).await;
        assert_eq!(run["status"], "SUCCESS", "{run}");
        assert_eq!(run["files_processed"], 1, "{run}");
    }
}

async fn table_facts(w: &Loader, ingestion: Uuid) -> Value {
    let (status, _, body) = w
        .api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{ingestion}/table"),
            &w.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn queue(w: &Loader, ingestion: Uuid, kind: &str) -> (u16, Value) {
    let (status, _, body) = w
        .api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{ingestion}/maintenance"),
            &w.token,
            Some(json!({"kind": kind})),
        )
        .await;
    (status, body)
}

/// The table's facts follow every commit: before the first there is no table; after each load
/// the snapshot, data-file and small-file counts, the schema (and its history of ids) and the
/// partition spec are those of the table as committed. Another tenant sees none of it.
#[sqlx::test(migrator = "MIGRATOR")]
async fn the_table_api_shows_the_tables_facts_after_each_load(pool: PgPool) {
    let w = Loader::new(pool, "table-facts").await;
    let ingestion = w.ingestion("json", "raw.events", json!({})).await;
    let before = table_facts(&w, ingestion).await;
    assert_eq!(before["created"], false, "{before}");
    assert_eq!(
        before["iceberg_table"],
        format!("{}.raw.events", w.namespace),
        "{before}"
    );
    assert_eq!(before["data_file_count"], 0);

    let _worker = w.worker("loader", &[]);
    small_loads(&w, ingestion, 1, 2).await;
    // A third file with a new column: the schema evolves, and its history shows both ids.
    w.write(
        "f00003.json",
        b"{\"id\": 3, \"name\": \"row 3\", \"extra\": true}\n",
    );
    assert_eq!(w.run_by_hand(ingestion).await["status"], "SUCCESS");

    let t = table_facts(&w, ingestion).await;
    assert_eq!(t["created"], true, "{t}");
    assert_eq!(t["snapshot_count"], 3, "{t}");
    assert_eq!(t["data_file_count"], 3, "{t}");
    assert_eq!(t["total_records"], 3, "{t}");
    assert_eq!(
        t["small_file_count"], 3,
        "every file is far below 75% of 128 MiB: {t}"
    );
    assert_eq!(t["small_file_bytes"], 96 << 20, "{t}");
    assert_eq!(t["schema_ids"], json!([0, 1]), "{t}");
    assert_eq!(t["current_schema_id"], 1, "{t}");
    let columns: Vec<&str> = t["schema"]["fields"]
        .as_array()
        .expect("schema fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(columns, ["id", "name", "extra"], "{t}");
    assert_eq!(
        t["partition_spec"]["fields"],
        json!([]),
        "unpartitioned: {t}"
    );
    assert!(t["total_bytes"].as_i64().expect("bytes") > 0, "{t}");
    assert!(
        t["location"]
            .as_str()
            .is_some_and(|l| l.ends_with("/raw/events")),
        "{t}"
    );
    assert_eq!(t["last_maintenance"]["compact"], Value::Null, "{t}");

    // psql shows the same facts.
    let (files, small): (i64, i64) =
        sqlx::query_as("select data_files, small_files from table_facts where iceberg_table = $1")
            .bind(format!("{}.raw.events", w.namespace))
            .fetch_one(&w.pool)
            .await
            .expect("facts row");
    assert_eq!((files, small), (3, 3));

    let (_, other) = w.api.tenant("other-team").await;
    let (status, _, _) = w
        .api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{ingestion}/table"),
            &other,
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// A maintenance run is queued by hand: 202 with the run (its kind and table); a second one of
/// the table, of any kind, is refused with a 409 naming the first while it is active. Loads of
/// the ingestion are not held up by it (no-overlap is a rule of loads). A bad kind is a 422
/// naming the field.
#[sqlx::test(migrator = "MIGRATOR")]
async fn maintenance_is_queued_by_hand_one_per_table_beside_loads(pool: PgPool) {
    let w = Loader::new(pool, "maintenance-queue").await;
    let ingestion = w.ingestion("json", "raw.events", json!({})).await;
    let twin = w
        .ingestion(
            "json",
            "raw.events",
            json!({"name": "twin of the same table"}),
        )
        .await;

    let (status, run) = queue(&w, ingestion, "compact").await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["kind"], "compact");
    assert_eq!(run["status"], "QUEUED");
    assert_eq!(run["triggered_by"], "manual");
    assert_eq!(
        run["maintained_table"],
        format!("{}.raw.events", w.namespace)
    );

    // One maintenance run per table: the other ingestion of the same table is refused too.
    for (id, kind) in [(ingestion, "expire_snapshots"), (twin, "remove_orphans")] {
        let (status, body) = queue(&w, id, kind).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["active_run_id"], run["id"], "{body}");
    }
    // A load is not held up by the queued maintenance run...
    let load = w.api.trigger(&w.token, ingestion).await;
    assert_eq!(load["kind"], "load");
    // ...while a second load still is.
    let (status, _, body) = w
        .api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{ingestion}/run"),
            &w.token,
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["active_run_id"], load["id"], "{body}");

    for bad in [
        json!({"kind": "load"}),
        json!({"kind": "vacuum"}),
        json!({"kind": 3}),
    ] {
        let (status, _, body) = w
            .api
            .call(
                "POST",
                &format!("/api/v1/ingestions/{ingestion}/maintenance"),
                &w.token,
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["errors"][0]["field"], "kind", "{bad}: {body}");
    }
    let (status, _, body) = w
        .api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{ingestion}/maintenance"),
            &w.token,
            Some(json!({"kind": "compact", "now": true})),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    // The run history shows the maintenance run beside the load.
    let (_, _, history) = w
        .api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{ingestion}/runs"),
            &w.token,
            None,
        )
        .await;
    let mut kinds: Vec<&str> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["compact", "load"], "{history}");

    // PostgreSQL itself refuses a second active maintenance run of the table.
    let second = sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, kind, maintained_table)
         select $1, id, tenant_id, 'manual', 'expire_snapshots', $2 from ingestions where id = $3",
    )
    .bind(Uuid::now_v7())
    .bind(format!("{}.raw.events", w.namespace))
    .bind(twin)
    .execute(&w.pool)
    .await
    .expect_err("a second active maintenance run");
    assert!(
        second
            .to_string()
            .contains("runs_one_maintenance_per_table"),
        "{second}"
    );
}

/// Runs of `ingestion` of `kind`, as the API lists them: (status, run).
async fn runs_of_kind(w: &Loader, ingestion: Uuid, kind: &str) -> Vec<Value> {
    let (_, _, history) = w
        .api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{ingestion}/runs?page_size=100"),
            &w.token,
            None,
        )
        .await;
    history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| r["kind"] == kind)
        .cloned()
        .collect()
}

/// With `maintenance: auto` (the default), the scheduler queues a table's maintenance when it is
/// due: snapshot expiry and orphan removal once per cleanup interval, compaction once the table
/// has enough small files. The worker runs them like any run, and compaction leaves the same
/// rows in fewer files. An ingestion with `maintenance: manual` gets none.
#[sqlx::test(migrator = "MIGRATOR")]
async fn the_scheduler_queues_maintenance_when_a_table_is_due(pool: PgPool) {
    let w = Loader::new(pool, "maintenance-auto").await;
    let ingestion = w
        .ingestion("json", "raw.events", json!({"schedule_enabled": false}))
        .await;
    let manual = w
        .ingestion(
            "json",
            "raw.quiet",
            json!({"schedule_enabled": false, "options": {"maintenance": "manual"}}),
        )
        .await;
    {
        // Loads first, with the scheduler of maintenance off.
        let _loader = w.worker("loader", &[("AUTOLOADER_MAINTENANCE", "false")]);
        small_loads(&w, ingestion, 1, 6).await;
        // The same files into a table of its own.
        assert_eq!(w.run_by_hand(manual).await["status"], "SUCCESS");
    }
    let _worker = w.worker(
        "maintainer",
        &[
            ("AUTOLOADER_COMPACT_MIN_FILES", "5"),
            ("AUTOLOADER_COMPACTION_INTERVAL", "1s"),
        ],
    );
    let done = wait_for("every kind of maintenance run", RUN_TIMEOUT * 2, || async {
        let mut finished = Vec::new();
        for kind in ["expire_snapshots", "remove_orphans", "compact"] {
            let runs = runs_of_kind(&w, ingestion, kind).await;
            match runs.first() {
                Some(r) if r["status"] == "SUCCESS" || r["status"] == "FAILED" => {
                    finished.push(r.clone())
                }
                _ => return None,
            }
        }
        Some(finished)
    })
    .await;
    for run in &done {
        assert_eq!(run["status"], "SUCCESS", "{run}");
        assert_eq!(run["triggered_by"], "scheduler", "{run}");
        assert!(run["maintenance"].is_object(), "{run}");
    }
    let compact = &done[2];
    assert_eq!(compact["maintenance"]["files_read"], 6, "{compact}");
    assert_eq!(compact["maintenance"]["files_written"], 1, "{compact}");
    let t = table_facts(&w, ingestion).await;
    assert_eq!(t["data_file_count"], 1, "{t}");
    assert_eq!(t["small_file_count"], 1, "{t}");
    assert_eq!(t["last_maintenance"]["compact"]["id"], compact["id"], "{t}");
    let table = w.table("raw.events").await.expect("table");
    assert_eq!(ids(&table.rows), (1..=6).collect::<Vec<_>>());
    if let Some(read) =
        s3::iceberg_read(&w.url, &w.warehouse, &format!("{}.raw.events", w.namespace))
    {
        let mut got: Vec<i64> = read["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .filter_map(|r| r["id"].as_i64())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (1..=6).collect::<Vec<_>>(), "pyiceberg: {read}");
    }
    // Each kind once per interval, and never for the table whose ingestion says manual.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for kind in ["expire_snapshots", "remove_orphans"] {
        assert_eq!(runs_of_kind(&w, ingestion, kind).await.len(), 1, "{kind}");
    }
    let quiet: i64 =
        sqlx::query_scalar("select count(*) from runs where ingestion_id = $1 and kind <> 'load'")
            .bind(manual)
            .fetch_one(&w.pool)
            .await
            .expect("count");
    assert_eq!(quiet, 0);
}

/// Every file under a local directory, recursively, as paths relative to it.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A worker killed after writing a run's data files and before committing them leaves them
/// behind; another worker finishes the run (a new attempt). Orphan removal, queued through the
/// API, deletes the killed attempt's files at once (that attempt can never commit) and keeps the
/// committed attempt's, and it never touches another table whose location lies inside this
/// table's (`raw.events.data` lies in `raw.events`'s `data/`): both tables read back whole.
#[sqlx::test(migrator = "MIGRATOR")]
async fn orphans_of_a_killed_attempt_go_and_nothing_else_does(pool: PgPool) {
    let w = Loader::new(pool, "maintenance-orphans").await;
    let warehouse = std::path::PathBuf::from(
        w.warehouse
            .strip_prefix("file://")
            .expect("a local warehouse"),
    );
    let events = w
        .ingestion("json", "raw.events", json!({"schedule_enabled": false}))
        .await;
    let nested = w
        .ingestion(
            "json",
            "raw.events.data",
            json!({"schedule_enabled": false}),
        )
        .await;
    for id in 1..=3 {
        w.write(
            &format!("f{id}.json"),
            format!("{{\"id\": {id}}}\n").as_bytes(),
        );
    }
    {
        let _w = w.worker("nested-loader", &[]);
        assert_eq!(w.run_by_hand(nested).await["status"], "SUCCESS");
    }
    let events_dir = warehouse.join(&w.namespace).join("raw").join("events");
    let nested_files = files_under(&events_dir.join("data").join("data"));
    assert!(!nested_files.is_empty(), "the nested table's data files");

    // The first attempt writes its data files, then waits before its commit: killed there.
    let mut doomed = w.worker("doomed", &[("AUTOLOADER_FAILPOINT", "pause-before-commit")]);
    let run = w.api.trigger(&w.token, events).await;
    let run_id = run["id"].as_str().expect("run id").to_owned();
    let first_attempt = format!("run-{run_id}-a1-");
    wait_for("the first attempt's data files", RUN_TIMEOUT, || async {
        files_under(&events_dir.join("data"))
            .iter()
            .any(|f| f.contains(&first_attempt) && f.ends_with(".parquet"))
            .then_some(())
    })
    .await;
    doomed.signal("KILL");
    let _ = doomed.wait_exit(Duration::from_secs(10)).await;
    let _worker = w.worker("finisher", &[]);
    let finished = w.finished(&run_id).await;
    assert_eq!(finished["status"], "SUCCESS", "{finished}");
    assert_eq!(finished["attempt"], 2, "{finished}");
    let of_attempt = |n: u32| {
        let prefix = format!("run-{run_id}-a{n}-");
        files_under(&events_dir.join("data"))
            .into_iter()
            .filter(move |f| f.contains(&prefix))
            .collect::<Vec<_>>()
    };
    let doomed_files = of_attempt(1).len();
    assert!(doomed_files > 0, "the killed attempt left its files");
    let committed = of_attempt(2);
    assert!(!committed.is_empty());

    let (status, queued) = queue(&w, events, "remove_orphans").await;
    assert_eq!(status, 202, "{queued}");
    let done = w.finished(queued["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["kind"], "remove_orphans");
    assert_eq!(
        done["maintenance"]["files_deleted"].as_u64(),
        Some(doomed_files as u64),
        "exactly the killed attempt's files: {done}"
    );
    assert!(
        of_attempt(1).is_empty(),
        "the killed attempt's files are gone"
    );
    assert_eq!(
        of_attempt(2),
        committed,
        "the committed attempt's files stay"
    );
    assert_eq!(
        files_under(&events_dir.join("data").join("data")),
        nested_files,
        "the nested table's files stay"
    );
    assert_eq!(
        ids(&w.table("raw.events").await.expect("events").rows),
        [1, 2, 3]
    );
    assert_eq!(
        ids(&w.table("raw.events.data").await.expect("nested").rows),
        [1, 2, 3]
    );
    if let Some(read) = s3::iceberg_read(
        &w.url,
        &w.warehouse,
        &format!("{}.raw.events.data", w.namespace),
    ) {
        assert_eq!(read["row_count"], 3, "pyiceberg: {read}");
    }
}
