//! Loading files for real: the shipped `autoloader-worker` binary reads local files (JSON lines,
//! CSV, Parquet) into Iceberg tables in a real SQL catalog, driven through the real API. Each
//! check reads the table back with an Iceberg scan.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autoloader_tests::table::scan;
use autoloader_tests::{database_url, temp_dir, wait_for, worker_bin, TestApi, WorkerProcess};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;
const LONG: Duration = Duration::from_secs(60);

/// One test's world: an API allowing `root`, a source directory under it, a warehouse.
struct World {
    api: TestApi,
    token: String,
    pool: PgPool,
    url: String,
    root: PathBuf,
    source: PathBuf,
    warehouse: PathBuf,
}

impl World {
    async fn new(pool: PgPool, name: &str) -> World {
        let root = temp_dir(name);
        let source = root.join("in");
        std::fs::create_dir_all(&source).expect("source dir");
        let warehouse = temp_dir(&format!("{name}-warehouse"));
        let api = TestApi::spawn_with_roots(pool.clone(), std::slice::from_ref(&root)).await;
        let (_, token) = api.tenant("data-eng").await;
        World {
            api,
            token,
            url: database_url(&pool),
            pool,
            root,
            source,
            warehouse,
        }
    }

    fn worker(&self, name: &str, extra: &[(&str, &str)]) -> WorkerProcess {
        let roots = self.root.display().to_string();
        let warehouse = self.warehouse.display().to_string();
        let mut env = vec![
            ("AUTOLOADER_FILE_ROOTS", roots.as_str()),
            ("AUTOLOADER_WAREHOUSE", warehouse.as_str()),
        ];
        env.extend_from_slice(extra);
        WorkerProcess::spawn(
            worker_bin().to_str().expect("utf-8 path"),
            &self.url,
            name,
            &env,
        )
    }

    fn write(&self, name: &str, content: &[u8]) {
        std::fs::write(self.source.join(name), content).expect("write source file");
    }

    /// Creates an ingestion of `self.source` in `format` into `table` through the API.
    async fn ingestion(&self, format: &str, table: &str, extra: Value) -> Uuid {
        let mut body = json!({
            "name": format!("{format} into {table}"),
            "source_type": "local",
            "source_path": format!("file://{}/", self.source.display()),
            "format_type": format,
            "destination_table": table,
            "schedule_frequency": "custom",
            "schedule_cron": "* * * * *",
            "schedule_enabled": true,
            "schedule_timezone": "UTC",
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let (status, _, res) = self
            .api
            .call("POST", "/api/v1/ingestions", &self.token, Some(body))
            .await;
        assert_eq!(status, 201, "create ingestion: {res}");
        res["id"].as_str().expect("id").parse().expect("uuid")
    }

    /// Triggers a run by hand and waits for it to finish; returns the run as the API shows it.
    async fn run_by_hand(&self, ingestion: Uuid) -> Value {
        let (status, _, run) = self
            .api
            .call(
                "POST",
                &format!("/api/v1/ingestions/{ingestion}/run"),
                &self.token,
                None,
            )
            .await;
        assert_eq!(status, 202, "trigger: {run}");
        self.finished(run["id"].as_str().expect("run id")).await
    }

    async fn finished(&self, run_id: &str) -> Value {
        wait_for("the run to finish", LONG, || async {
            let (_, _, run) = self
                .api
                .call("GET", &format!("/api/v1/runs/{run_id}"), &self.token, None)
                .await;
            matches!(run["status"].as_str(), Some("SUCCESS" | "FAILED")).then_some(run)
        })
        .await
    }

    async fn table(&self, table: &str) -> Option<autoloader_tests::table::Scanned> {
        scan(&self.url, &self.warehouse, table).await
    }

    async fn ledger(&self, ingestion: Uuid) -> Vec<(String, i64)> {
        sqlx::query_as(
            "select path, rows_loaded from loaded_files where ingestion_id = $1 order by path",
        )
        .bind(ingestion)
        .fetch_all(&self.pool)
        .await
        .expect("ledger")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_dir_all(&self.warehouse);
    }
}

fn ids(rows: &[Value]) -> Vec<i64> {
    let mut v: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    v.sort_unstable();
    v
}

/// The spec's end-to-end scenario on local files: a scheduled tick fires, the worker loads
/// the files, the rows are in the table and the run history says the scheduler ran it. A
/// second run after two more files arrive appends exactly those.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_scheduled_run_loads_new_files_and_only_new_files(pool: PgPool) {
    let w = World::new(pool.clone(), "e2e-local").await;
    w.write(
        "a.json",
        b"{\"id\": 1, \"value\": \"test\"}\n{\"id\": 2, \"value\": \"more\"}\n",
    );
    // The spec's own example file is one JSON array, not lines.
    w.write("b.json", br#"[{"id": 3, "value": "array"}]"#);
    let ingestion = w
        .ingestion("json", "test_db.scheduled_table", json!({}))
        .await;
    let _worker = w.worker("loader", &[]);

    // Fire the schedule now instead of waiting for the next minute.
    sqlx::query("update schedule_ticks set next_fire_at = now() - interval '1 second' where ingestion_id = $1")
        .bind(ingestion)
        .execute(&pool)
        .await
        .expect("pull the tick forward");
    let run_id = wait_for("a scheduled run", LONG, || async {
        let (_, _, runs) = w
            .api
            .call(
                "GET",
                &format!("/api/v1/ingestions/{ingestion}/runs"),
                &w.token,
                None,
            )
            .await;
        runs["items"]
            .as_array()
            .and_then(|items| items.first())
            .and_then(|r| r["id"].as_str().map(str::to_owned))
    })
    .await;
    let run = w.finished(&run_id).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["triggered_by"], "scheduler");
    assert_eq!(run["files_processed"], 2);
    assert_eq!(run["rows_ingested"], 3);
    assert!(run["bytes_read"].as_i64().unwrap_or(0) > 0, "{run}");
    assert!(run["bytes_written"].as_i64().unwrap_or(0) > 0, "{run}");
    assert!(run["snapshot_id"].is_i64(), "{run}");

    let t = w
        .table("test_db.scheduled_table")
        .await
        .expect("table created");
    assert_eq!(t.columns, ["id", "value"]);
    assert_eq!(ids(&t.rows), [1, 2, 3]);
    assert!(
        t.rows.contains(&json!({"id": 1, "value": "test"})),
        "{:?}",
        t.rows
    );

    // Two more files: the next run appends exactly their rows.
    w.write("c.json", b"{\"id\": 4, \"value\": \"c\"}\n");
    w.write("d.json", b"{\"id\": 5}\n{\"id\": 6, \"value\": null}\n");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 2);
    assert_eq!(run["rows_ingested"], 3);
    let t = w.table("test_db.scheduled_table").await.expect("table");
    assert_eq!(ids(&t.rows), [1, 2, 3, 4, 5, 6]);
    assert_eq!(t.snapshots, 2);

    // Nothing new: the run succeeds, loads nothing, and commits no snapshot.
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 0);
    assert!(run["snapshot_id"].is_null(), "{run}");
    assert_eq!(
        w.table("test_db.scheduled_table")
            .await
            .expect("table")
            .snapshots,
        2
    );

    let ledger = w.ledger(ingestion).await;
    assert_eq!(
        ledger,
        [
            ("a.json".to_owned(), 2),
            ("b.json".to_owned(), 1),
            ("c.json".to_owned(), 1),
            ("d.json".to_owned(), 2)
        ]
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn csv_files_load_with_their_dialect(pool: PgPool) {
    let w = World::new(pool, "csv").await;
    w.write(
        "people.csv",
        b"id;name;joined\n1;'Ada; Countess';2026-01-02T03:04:05\n2;Grace;2026-02-03T04:05:06\n",
    );
    let ingestion = w
        .ingestion(
            "csv",
            "crm.people",
            json!({"options": {"csv_delimiter": ";", "csv_quote": "'"}}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let t = w.table("crm.people").await.expect("table");
    assert_eq!(t.columns, ["id", "name", "joined"]);
    assert_eq!(ids(&t.rows), [1, 2]);
    assert!(
        t.rows.iter().any(|r| r["name"] == "Ada; Countess"),
        "quoted delimiter kept: {:?}",
        t.rows
    );

    // Later files are read by header name, in any column order; a missing column is null.
    w.write("more.csv", b"name;id\nLinus;3\n");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let t = w.table("crm.people").await.expect("table");
    assert!(
        t.rows.iter().any(|r| r["id"] == 3
            && r["name"] == "Linus"
            && r.get("joined").is_none_or(Value::is_null)),
        "{:?}",
        t.rows
    );
}

fn write_parquet(path: &Path, ids: &[i64], amounts: &[f64]) {
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        (
            "amount",
            Arc::new(Float64Array::from(amounts.to_vec())) as ArrayRef,
        ),
    ])
    .expect("batch");
    let file = std::fs::File::create(path).expect("create parquet");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn parquet_files_load(pool: PgPool) {
    let w = World::new(pool, "parquet").await;
    write_parquet(&w.source.join("p1.parquet"), &[1, 2, 3], &[1.5, 2.5, 3.5]);
    write_parquet(&w.source.join("p2.parquet"), &[4], &[4.5]);
    let ingestion = w.ingestion("parquet", "finance.payments", json!({})).await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 4);
    let t = w.table("finance.payments").await.expect("table");
    assert_eq!(ids(&t.rows), [1, 2, 3, 4]);
    assert!(
        t.rows.contains(&json!({"id": 4, "amount": 4.5})),
        "{:?}",
        t.rows
    );
}

/// A file that does not fit the table fails the run with the file and column named, and the
/// table and the ledger stay exactly as they were: not even the good files of that run load.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_malformed_file_fails_the_run_and_leaves_the_table_alone(pool: PgPool) {
    let w = World::new(pool, "malformed").await;
    w.write("1.json", b"{\"id\": 1, \"amount\": 10}\n");
    let ingestion = w.ingestion("json", "sales.orders", json!({})).await;
    let _worker = w.worker("loader", &[]);
    assert_eq!(w.run_by_hand(ingestion).await["status"], "SUCCESS");
    let before = w.table("sales.orders").await.expect("table");

    w.write("2.json", b"{\"id\": 2, \"amount\": 20}\n");
    w.write("3.json", b"{\"id\": 3, \"amount\": \"twenty\"}\n");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().expect("error text");
    assert!(error.contains("3.json"), "names the file: {error}");
    assert!(error.contains("'amount'"), "names the column: {error}");

    let after = w.table("sales.orders").await.expect("table");
    assert_eq!(after.rows, before.rows, "the table is untouched");
    assert_eq!(after.snapshots, before.snapshots);
    assert_eq!(w.ledger(ingestion).await.len(), 1, "only 1.json is loaded");

    // A column the table does not have is refused too, by name.
    std::fs::remove_file(w.source.join("3.json")).expect("rm");
    w.write("4.json", b"{\"id\": 4, \"colour\": \"red\"}\n");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().expect("error text");
    assert!(
        error.contains("4.json") && error.contains("'colour'"),
        "{error}"
    );

    // Once the bad file is gone, the run loads what is left.
    std::fs::remove_file(w.source.join("4.json")).expect("rm");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(
        ids(&w.table("sales.orders").await.expect("table").rows),
        [1, 2]
    );
}

/// A worker killed after the snapshot commit but before the run's outcome is recorded: the
/// run is recovered, sees its own snapshot, and finishes without loading anything twice.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_crash_after_the_commit_loads_nothing_twice(pool: PgPool) {
    let w = World::new(pool.clone(), "crash").await;
    w.write("a.json", b"{\"id\": 1}\n{\"id\": 2}\n");
    w.write("b.json", b"{\"id\": 3}\n");
    let ingestion = w.ingestion("json", "ops.events", json!({})).await;
    let doomed = w.worker("doomed", &[("AUTOLOADER_FAILPOINT", "after-commit")]);
    let (status, _, run) = w
        .api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{ingestion}/run"),
            &w.token,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let run_id = run["id"].as_str().expect("run id").to_owned();
    wait_for("the commit", LONG, || async {
        doomed
            .log()
            .contains("failpoint after-commit")
            .then_some(())
    })
    .await;
    doomed.signal("KILL");
    assert_eq!(
        ids(&w.table("ops.events").await.expect("table").rows),
        [1, 2, 3]
    );
    assert_eq!(
        w.ledger(ingestion).await.len(),
        2,
        "ledger committed with the snapshot"
    );

    let _rescuer = w.worker("rescuer", &[]);
    let run = w.finished(&run_id).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(
        run["attempt"], 2,
        "recovered after the lease expired: {run}"
    );
    assert_eq!(run["worker_id"], "rescuer");
    assert_eq!(
        run["rows_ingested"], 3,
        "counters come from the committed snapshot"
    );
    assert_eq!(run["files_processed"], 2);
    let t = w.table("ops.events").await.expect("table");
    assert_eq!(ids(&t.rows), [1, 2, 3], "no row twice");
    assert_eq!(t.snapshots, 1);
    assert_eq!(w.ledger(ingestion).await.len(), 2);
}

/// Local sources must stay inside AUTOLOADER_FILE_ROOTS: outside paths and symlinks out are
/// refused when the ingestion is created, with a problem naming `source_path`.
#[sqlx::test(migrator = "MIGRATOR")]
async fn local_sources_outside_the_roots_are_refused(pool: PgPool) {
    let w = World::new(pool, "roots").await;
    let outside = temp_dir("outside");
    std::os::unix::fs::symlink(&outside, w.root.join("link")).expect("symlink");
    for path in [
        format!("file://{}/", outside.display()),
        format!("file://{}/link/", w.root.display()),
        "file:///etc/".to_owned(),
    ] {
        let (status, ctype, body) = w
            .api
            .call(
                "POST",
                "/api/v1/ingestions",
                &w.token,
                Some(json!({
                    "name": "escape", "source_type": "local", "source_path": path,
                    "format_type": "json", "destination_table": "a.b"
                })),
            )
            .await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(ctype, "application/problem+json");
        let errors = body["errors"].as_array().expect("errors");
        assert!(
            errors.iter().any(|e| e["field"] == "source_path"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("outside the allowed")),
            "{path}: {body}"
        );
    }
    let _ = std::fs::remove_dir_all(&outside);
}
