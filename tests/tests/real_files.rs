//! Files as they really arrive: new columns (each `schema_evolution` mode), widened types, schema
//! hints, bad records and bad files (each `on_error` mode, the ledger's rejected files and their
//! retry), and file metadata columns. The shipped worker loads local files through the real API;
//! each table is read back with an Iceberg scan and, where the test venv exists, with pyiceberg.

use std::sync::Arc;

use autoloader_tests::loader::{ids, Loader};
use autoloader_tests::s3;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// The table as pyiceberg reads it (`None` when the test venv is missing, which
/// `s3::python` announces loudly).
fn pyiceberg(w: &Loader, table: &str) -> Option<Value> {
    s3::iceberg_read(&w.url, &w.warehouse, &format!("{}.{table}", w.namespace))
}

/// A run's rejections as psql shows them: files, records, and the kept details.
async fn rejections(w: &Loader, run: &Value) -> (i64, i64, Value) {
    let id: Uuid = run["id"].as_str().expect("run id").parse().expect("uuid");
    let (files, records, first): (i64, i64, Option<Value>) = sqlx::query_as(
        "select files_rejected, records_rejected, rejected_records from runs where id = $1",
    )
    .bind(id)
    .fetch_one(&w.pool)
    .await
    .expect("run row");
    (files, records, first.unwrap_or(Value::Null))
}

/// The ledger's rows of `ingestion`: (file name, status, rows, error).
async fn ledger(w: &Loader, ingestion: Uuid) -> Vec<(String, String, i64, Option<String>)> {
    let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "select path, status, rows_loaded, error from loaded_files
         where ingestion_id = $1 order by path",
    )
    .bind(ingestion)
    .fetch_all(&w.pool)
    .await
    .expect("ledger");
    let dir = format!("file://{}/", w.source.display());
    rows.into_iter()
        .map(|(p, s, n, e)| (p.trim_start_matches(&dir).to_owned(), s, n, e))
        .collect()
}

/// A JSON file with keys the table lacks adds them as columns (nullable, appended in the
/// file's order, types inferred) in the commit of its rows; earlier rows read them as null. A
/// key that first appears deep into a large file is found too, and no row is loaded twice.
#[sqlx::test(migrator = "MIGRATOR")]
async fn new_json_keys_become_columns(pool: PgPool) {
    let w = Loader::new(pool, "evolve-json").await;
    w.write("a.json", b"{\"id\": 1, \"value\": \"a\"}\n");
    let ingestion = w.ingestion("json", "events.clicks", json!({})).await;
    let _worker = w.worker("loader", &[]);
    assert_eq!(w.run_by_hand(ingestion).await["status"], "SUCCESS");

    w.write(
        "b.json",
        b"{\"id\": 2, \"value\": \"b\", \"score\": 1.5, \"seen\": \"2024-03-01\"}\n\
          {\"id\": 3, \"score\": 2, \"value\": \"c\"}\n",
    );
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 2);
    let t = w.table("events.clicks").await.expect("table");
    assert_eq!(t.columns, ["id", "value", "score", "seen"]);
    assert!(
        t.rows.contains(&json!({"id": 1, "value": "a"})),
        "{:?}",
        t.rows
    );
    assert!(
        t.rows
            .contains(&json!({"id": 2, "value": "b", "score": 1.5, "seen": "2024-03-01"})),
        "{:?}",
        t.rows
    );
    assert!(
        t.rows
            .contains(&json!({"id": 3, "value": "c", "score": 2.0})),
        "{:?}",
        t.rows
    );
    if let Some(py) = pyiceberg(&w, "events.clicks") {
        assert_eq!(py["types"]["score"], "double", "{py}");
        assert_eq!(py["types"]["seen"], "string", "{py}");
        assert_eq!(py["schema_id"], 1, "one evolution: {py}");
        assert_eq!(py["row_count"], 3);
    }

    // 20,000 records, the last with a key never seen before: the run that meets it part-way
    // through reads again with the new column, and every record is in the table once.
    let mut big = String::new();
    for i in 100..20_100 {
        big.push_str(&format!("{{\"id\": {i}, \"value\": \"v{i}\"}}\n"));
    }
    big.push_str("{\"id\": 20100, \"value\": \"late\", \"late\": true}\n");
    w.write("c.json", big.as_bytes());
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 20_001);
    let t = w.table("events.clicks").await.expect("table");
    assert_eq!(t.columns, ["id", "value", "score", "seen", "late"]);
    let got = ids(&t.rows);
    let mut want = vec![1, 2, 3];
    want.extend(100..=20_100);
    assert_eq!(got, want, "every record once");
    assert!(t
        .rows
        .contains(&json!({"id": 20100, "value": "late", "late": true})));
}

/// Two files for one ingestion in `mode`: `first.json` makes the table, `second.json` has a
/// column it lacks and, for id 3, a value that does not convert. Returns the second run.
async fn second_file_in(w: &Loader, mode: &str) -> (Uuid, Value) {
    w.write("first.json", b"{\"id\": 1, \"name\": \"one\"}\n");
    let ingestion = w
        .ingestion(
            "json",
            "crm.contacts",
            json!({"options": {"schema_evolution": mode, "on_error": "skip_record"}}),
        )
        .await;
    assert_eq!(w.run_by_hand(ingestion).await["status"], "SUCCESS");
    w.write(
        "second.json",
        b"{\"id\": 2, \"name\": \"two\", \"extra\": 5}\n{\"id\": \"three\", \"name\": \"3\"}\n",
    );
    let run = w.run_by_hand(ingestion).await;
    (ingestion, run)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn fail_on_new_columns_fails_the_run_naming_the_column(pool: PgPool) {
    let w = Loader::new(pool, "evolve-fail").await;
    let _worker = w.worker("loader", &[]);
    let (ingestion, run) = second_file_in(&w, "fail_on_new_columns").await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().expect("error");
    assert!(
        error.contains("second.json") && error.contains("column 'extra' is not in the table"),
        "{error}"
    );
    let t = w.table("crm.contacts").await.expect("table");
    assert_eq!(t.columns, ["id", "name"]);
    assert_eq!(ids(&t.rows), [1]);
    assert_eq!(ledger(&w, ingestion).await.len(), 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn none_drops_unknown_columns_and_keeps_the_schema(pool: PgPool) {
    let w = Loader::new(pool, "evolve-none").await;
    let _worker = w.worker("loader", &[]);
    let (_, run) = second_file_in(&w, "none").await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let t = w.table("crm.contacts").await.expect("table");
    assert_eq!(t.columns, ["id", "name"], "the schema never changes");
    // 'three' is no id: under skip_record that record is dropped and counted.
    assert_eq!(ids(&t.rows), [1, 2]);
    assert!(t.rows.contains(&json!({"id": 2, "name": "two"})));
    let (files, records, first) = rejections(&w, &run).await;
    assert_eq!((files, records), (0, 1), "{first}");
    assert_eq!(first[0]["record"], 2, "{first}");
    assert_eq!(first[0]["column"], "id", "{first}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn rescue_keeps_unknown_and_unconvertible_values_in_rescued_data(pool: PgPool) {
    let w = Loader::new(pool, "evolve-rescue").await;
    let _worker = w.worker("loader", &[]);
    let (_, run) = second_file_in(&w, "rescue").await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 2, "both rows load");
    let t = w.table("crm.contacts").await.expect("table");
    assert_eq!(t.columns, ["id", "name", "_rescued_data"]);
    let rescued = |row: &Value| -> Value {
        serde_json::from_str(row["_rescued_data"].as_str().expect("rescued text")).expect("json")
    };
    let file = format!("file://{}/second.json", w.source.display());
    let two = t.rows.iter().find(|r| r["id"] == 2).expect("row 2");
    assert_eq!(rescued(two), json!({"extra": 5, "_file_path": file}));
    let three = t.rows.iter().find(|r| r["name"] == "3").expect("row 3");
    assert!(three.get("id").is_none_or(Value::is_null), "{three}");
    assert_eq!(rescued(three), json!({"id": "three", "_file_path": file}));
    let (_, records, _) = rejections(&w, &run).await;
    assert_eq!(records, 0, "nothing is rejected when it can be rescued");
    if let Some(py) = pyiceberg(&w, "crm.contacts") {
        assert_eq!(py["types"]["_rescued_data"], "string", "{py}");
        assert_eq!(py["row_count"], 3);
    }
}

/// CSV headers and Parquet schemas say their columns before a row is read: new ones are added
/// first; a Parquet int column meeting long values widens to long, float to double.
#[sqlx::test(migrator = "MIGRATOR")]
async fn csv_and_parquet_columns_evolve_and_widen(pool: PgPool) {
    let w = Loader::new(pool, "evolve-typed").await;
    let _worker = w.worker("loader", &[]);
    std::fs::create_dir_all(w.source.join("csv")).expect("dir");
    std::fs::create_dir_all(w.source.join("pq")).expect("dir");
    std::fs::write(w.source.join("csv/1.csv"), b"id,name\n1,a\n").expect("write");
    let csv = w
        .ingestion(
            "csv",
            "crm.people",
            json!({"options": {"glob": "csv/*.csv"}}),
        )
        .await;
    assert_eq!(w.run_by_hand(csv).await["status"], "SUCCESS");
    std::fs::write(w.source.join("csv/2.csv"), b"city,id,name\nOslo,2,b\n").expect("write");
    let run = w.run_by_hand(csv).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let t = w.table("crm.people").await.expect("table");
    assert_eq!(t.columns, ["id", "name", "city"]);
    assert!(t
        .rows
        .contains(&json!({"id": 2, "name": "b", "city": "Oslo"})));

    use arrow_array::{ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, StringArray};
    autoloader_tests::write_parquet(
        &w.source.join("pq/1.parquet"),
        vec![
            ("id", Arc::new(Int32Array::from(vec![1])) as ArrayRef),
            (
                "amount",
                Arc::new(Float32Array::from(vec![1.5])) as ArrayRef,
            ),
        ],
    );
    let pq = w
        .ingestion(
            "parquet",
            "finance.ledger",
            json!({"options": {"glob": "pq/*"}}),
        )
        .await;
    assert_eq!(w.run_by_hand(pq).await["status"], "SUCCESS");
    autoloader_tests::write_parquet(
        &w.source.join("pq/2.parquet"),
        vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![5_000_000_000])) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(Float64Array::from(vec![2.25])) as ArrayRef,
            ),
            (
                "note",
                Arc::new(StringArray::from(vec!["wide"])) as ArrayRef,
            ),
        ],
    );
    let run = w.run_by_hand(pq).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let t = w.table("finance.ledger").await.expect("table");
    assert_eq!(t.columns, ["id", "amount", "note"]);
    assert_eq!(ids(&t.rows), [1, 5_000_000_000]);
    if let Some(py) = pyiceberg(&w, "finance.ledger") {
        assert_eq!(py["types"]["id"], "long", "{py}");
        assert_eq!(py["types"]["amount"], "double", "{py}");
        assert_eq!(py["types"]["note"], "string", "{py}");
    }
}

/// Hints type columns when the table is made: an int, a decimal, a timestamp with a zone (text
/// with an offset, or epoch seconds) and one without.
#[sqlx::test(migrator = "MIGRATOR")]
async fn schema_hints_type_the_new_table(pool: PgPool) {
    let w = Loader::new(pool, "hints").await;
    w.write(
        "a.json",
        b"{\"id\": 1, \"amount\": 12.5, \"ts\": \"2024-03-01T10:00:00+01:00\", \"wall\": \"2024-03-01T10:00:00\"}\n\
          {\"id\": 2, \"amount\": \"3.10\", \"ts\": 1700000000, \"wall\": \"2024-03-01 11:30:00\"}\n",
    );
    let hints = "id int, amount decimal(12,2), ts timestamp, wall timestamp_ntz";
    let ingestion = w
        .ingestion(
            "json",
            "pay.charges",
            json!({"options": {"schema_hints": hints}}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(
        ids(&w.table("pay.charges").await.expect("table").rows),
        [1, 2]
    );
    if let Some(py) = pyiceberg(&w, "pay.charges") {
        assert_eq!(py["types"]["id"], "int", "{py}");
        assert_eq!(py["types"]["amount"], "decimal(12, 2)", "{py}");
        assert_eq!(py["types"]["ts"], "timestamptz", "{py}");
        assert_eq!(py["types"]["wall"], "timestamp", "{py}");
        let rows = py["rows"].as_array().expect("rows");
        assert_eq!(rows[0]["amount"], "12.50", "{py}");
        assert_eq!(rows[0]["ts"], "2024-03-01T09:00:00+00:00", "{py}");
        assert_eq!(rows[0]["wall"], "2024-03-01T10:00:00", "{py}");
        assert_eq!(rows[1]["amount"], "3.10", "{py}");
        assert_eq!(rows[1]["ts"], "2023-11-14T22:13:20+00:00", "{py}");
        assert_eq!(rows[1]["wall"], "2024-03-01T11:30:00", "{py}");
    }
}

/// `abort` (the default): the run fails naming the file, the record and the column, and
/// commits nothing.
#[sqlx::test(migrator = "MIGRATOR")]
async fn abort_names_the_file_record_and_column(pool: PgPool) {
    let w = Loader::new(pool, "abort").await;
    w.write("1.json", b"{\"id\": 1, \"amount\": 10}\n");
    let ingestion = w.ingestion("json", "sales.orders", json!({})).await;
    let _worker = w.worker("loader", &[]);
    assert_eq!(w.run_by_hand(ingestion).await["status"], "SUCCESS");
    w.write(
        "2.json",
        b"{\"id\": 2, \"amount\": 20}\n{\"id\": 3, \"amount\": 30}\n{\"id\": 4, \"amount\": \"forty\"}\n",
    );
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().expect("error");
    assert!(
        error.contains("2.json")
            && error.contains("record 3")
            && error.contains("column 'amount'")
            && error.contains("'forty'"),
        "{error}"
    );
    assert_eq!(
        ids(&w.table("sales.orders").await.expect("table").rows),
        [1]
    );
}

/// `skip_file`: a file with a bad record, a truncated Parquet file and a gzip file that is not
/// gzip are rejected; the others load and the run succeeds. A rejected file stays in the ledger
/// and is not read again until it is retried; fixed and retried, it loads.
#[sqlx::test(migrator = "MIGRATOR")]
async fn skip_file_rejects_bad_files_until_they_are_retried(pool: PgPool) {
    let w = Loader::new(pool, "skip-file").await;
    w.write("a.json", b"{\"id\": 1}\n{\"id\": 2}\n");
    w.write("b.json", b"{\"id\": 3}\n{\"id\": \"four\"}\n");
    w.write("c.json", b"{\"id\": 5}\n");
    w.write("d.json.gz", b"this is not gzip at all");
    let ingestion = w
        .ingestion(
            "json",
            "ops.events",
            json!({"options": {"on_error": "skip_file"}}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 2);
    assert_eq!(run["rows_ingested"], 3);
    assert_eq!(
        ids(&w.table("ops.events").await.expect("table").rows),
        [1, 2, 5]
    );
    let (files, records, first) = rejections(&w, &run).await;
    assert_eq!((files, records), (2, 0), "{first}");
    let l = ledger(&w, ingestion).await;
    assert_eq!(l.len(), 4, "{l:?}");
    let b = &l[1];
    assert_eq!((b.0.as_str(), b.1.as_str(), b.2), ("b.json", "rejected", 0));
    let why = b.3.as_deref().expect("error");
    assert!(
        why.contains("record 2") && why.contains("column 'id'"),
        "{why}"
    );
    let d = &l[3];
    assert_eq!((d.0.as_str(), d.1.as_str()), ("d.json.gz", "rejected"));
    assert!(d.3.as_deref().expect("error").contains("gzip"), "{d:?}");

    // The files API lists the rejected files with their errors.
    let (status, _, listed) = w
        .api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{ingestion}/files?status=rejected"),
            &w.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{listed}");
    assert!(items[0]["path"]
        .as_str()
        .expect("path")
        .ends_with("/b.json"));
    assert!(items[0]["error"]
        .as_str()
        .expect("error")
        .contains("record 2"));
    assert_eq!(items[0]["run_id"], run["id"]);

    // The rejected files are not read again, even when fixed.
    w.write("b.json", b"{\"id\": 3}\n{\"id\": 4}\n");
    w.write("e.json", b"{\"id\": 6}\n");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 1, "{run}");
    assert_eq!(
        ids(&w.table("ops.events").await.expect("table").rows),
        [1, 2, 5, 6]
    );

    // Retried by name, b.json loads; d.json.gz stays rejected.
    let (status, _, body) = w
        .api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{ingestion}/files/retry"),
            &w.token,
            Some(json!({"paths": [format!("file://{}/b.json", w.source.display())]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 1, "{run}");
    assert_eq!(
        ids(&w.table("ops.events").await.expect("table").rows),
        [1, 2, 3, 4, 5, 6]
    );
    let l = ledger(&w, ingestion).await;
    assert_eq!(l[1].1, "loaded", "{l:?}");
    assert_eq!(l[3].1, "rejected", "{l:?}");
}

/// A truncated Parquet file is a bad file: rejected under `skip_file`, the good one loads.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_truncated_parquet_file_is_rejected_under_skip_file(pool: PgPool) {
    use arrow_array::{ArrayRef, Int64Array};
    let w = Loader::new(pool, "skip-parquet").await;
    autoloader_tests::write_parquet(
        &w.source.join("1.parquet"),
        vec![("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)],
    );
    autoloader_tests::write_parquet(
        &w.source.join("2.parquet"),
        vec![("id", Arc::new(Int64Array::from(vec![3, 4])) as ArrayRef)],
    );
    let whole = std::fs::read(w.source.join("2.parquet")).expect("read");
    std::fs::write(w.source.join("2.parquet"), &whole[..whole.len() / 2]).expect("truncate");
    let ingestion = w
        .ingestion(
            "parquet",
            "ops.metrics",
            json!({"options": {"on_error": "skip_file"}}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(
        ids(&w.table("ops.metrics").await.expect("table").rows),
        [1, 2]
    );
    let l = ledger(&w, ingestion).await;
    assert_eq!(l[1].1, "rejected", "{l:?}");
}

/// `skip_record`: malformed records, records that are not objects and values that do not
/// convert are dropped and counted; the rest of each file loads. The first are kept on the run
/// with file, record and reason.
#[sqlx::test(migrator = "MIGRATOR")]
async fn skip_record_drops_and_counts_bad_records(pool: PgPool) {
    let w = Loader::new(pool, "skip-record").await;
    std::fs::create_dir_all(w.source.join("j")).expect("dir");
    std::fs::create_dir_all(w.source.join("c")).expect("dir");
    std::fs::write(
        w.source.join("j/0.json"),
        b"{\"id\": 0, \"name\": \"zero\"}\n",
    )
    .expect("w");
    let json_ing = w
        .ingestion(
            "json",
            "q.json_rows",
            json!({"options": {"on_error": "skip_record", "glob": "j/*"}}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    assert_eq!(w.run_by_hand(json_ing).await["status"], "SUCCESS");
    std::fs::write(
        w.source.join("j/1.json"),
        b"{\"id\": 1, \"name\": \"one\"}\n{\"id\": 2, \"name\": \n[1, 2]\n{\"id\": \"three\"}\n{\"id\": 4}\n",
    )
    .expect("w");
    let run = w.run_by_hand(json_ing).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(
        ids(&w.table("q.json_rows").await.expect("table").rows),
        [0, 1, 4]
    );
    let (files, records, first) = rejections(&w, &run).await;
    assert_eq!((files, records), (0, 3), "{first}");
    let kept = first.as_array().expect("kept rejections");
    assert!(kept
        .iter()
        .all(|r| r["file"].as_str().is_some_and(|f| f.ends_with("j/1.json"))));
    let reasons: Vec<&str> = kept.iter().filter_map(|r| r["reason"].as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("invalid JSON")),
        "{first}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not a JSON object")),
        "{first}"
    );
    assert!(
        kept.iter()
            .any(|r| r["column"] == "id" && r["reason"].as_str().unwrap_or("").contains("'three'")),
        "{first}"
    );
    let loaded: (i64, i64) = sqlx::query_as(
        "select rows_loaded, records_rejected from loaded_files where path like '%/j/1.json'",
    )
    .fetch_one(&w.pool)
    .await
    .expect("ledger row");
    assert_eq!(loaded, (2, 3));

    std::fs::write(w.source.join("c/0.csv"), b"id,name\n0,zero\n").expect("w");
    let csv_ing = w
        .ingestion(
            "csv",
            "q.csv_rows",
            json!({"options": {"on_error": "skip_record", "glob": "c/*"}}),
        )
        .await;
    assert_eq!(w.run_by_hand(csv_ing).await["status"], "SUCCESS");
    std::fs::write(
        w.source.join("c/1.csv"),
        b"id,name\n1,one\n2,two,extra\nthree,3\n4,four\n",
    )
    .expect("w");
    let run = w.run_by_hand(csv_ing).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(
        ids(&w.table("q.csv_rows").await.expect("table").rows),
        [0, 1, 4]
    );
    let (_, records, first) = rejections(&w, &run).await;
    assert_eq!(records, 2, "{first}");
    let numbers: Vec<i64> = first
        .as_array()
        .expect("kept")
        .iter()
        .filter_map(|r| r["record"].as_i64())
        .collect();
    assert_eq!(numbers, [2, 3], "{first}");
}

/// `metadata_columns`: every row says which file and run it came from.
#[sqlx::test(migrator = "MIGRATOR")]
async fn metadata_columns_trace_rows_to_their_file_and_run(pool: PgPool) {
    let w = Loader::new(pool, "metadata").await;
    w.write("a.json", b"{\"id\": 1}\n{\"id\": 2}\n");
    let ingestion = w
        .ingestion(
            "json",
            "trace.rows",
            json!({"options": {"metadata_columns": true}}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let t = w.table("trace.rows").await.expect("table");
    assert_eq!(
        t.columns,
        [
            "id",
            "_source_file",
            "_source_modified_at",
            "_ingested_run_id"
        ]
    );
    let url = format!("file://{}/a.json", w.source.display());
    for row in &t.rows {
        assert_eq!(row["_source_file"], url.as_str(), "{row}");
        assert_eq!(row["_ingested_run_id"], run["id"], "{row}");
        assert!(row["_source_modified_at"].is_string(), "{row}");
    }
    if let Some(py) = pyiceberg(&w, "trace.rows") {
        assert_eq!(py["types"]["_source_modified_at"], "timestamptz", "{py}");
        assert_eq!(py["rows"][0]["_source_file"], url.as_str(), "{py}");
    }
}

/// Two ingestions writing one table, each adding its own column, run at once on two workers:
/// whichever commits second finds the schema moved, reads its files again against the new one,
/// and commits. Both columns are there and every row is in the table once.
#[sqlx::test(migrator = "MIGRATOR")]
async fn two_ingestions_evolving_one_table_at_once_lose_nothing(pool: PgPool) {
    let w = Loader::new(pool, "evolve-race").await;
    w.write("a0.json", b"{\"id\": 1}\n");
    let a = w
        .ingestion(
            "json",
            "shared.t",
            json!({"name": "a", "options": {"glob": "a*"}}),
        )
        .await;
    let b = w
        .ingestion(
            "json",
            "shared.t",
            json!({"name": "b", "options": {"glob": "b*"}}),
        )
        .await;
    let _w1 = w.worker("loader-1", &[]);
    let _w2 = w.worker("loader-2", &[]);
    assert_eq!(w.run_by_hand(a).await["status"], "SUCCESS");
    for round in 0..3 {
        let mut text_a = String::new();
        let mut text_b = String::new();
        for i in 0..2_000 {
            let n = 10 + round * 10_000 + i;
            text_a.push_str(&format!("{{\"id\": {n}, \"from_a_{round}\": {i}}}\n"));
            text_b.push_str(&format!(
                "{{\"id\": {}, \"from_b_{round}\": \"{i}\"}}\n",
                n + 5_000
            ));
        }
        w.write(&format!("a{}.json", round + 1), text_a.as_bytes());
        w.write(&format!("b{}.json", round + 1), text_b.as_bytes());
        let ra = w.api.trigger(&w.token, a).await;
        let rb = w.api.trigger(&w.token, b).await;
        let ra = w.finished(ra["id"].as_str().expect("id")).await;
        let rb = w.finished(rb["id"].as_str().expect("id")).await;
        assert_eq!(ra["status"], "SUCCESS", "{ra}");
        assert_eq!(rb["status"], "SUCCESS", "{rb}");
    }
    let t = w.table("shared.t").await.expect("table");
    for round in 0..3 {
        assert!(
            t.columns.contains(&format!("from_a_{round}")),
            "{:?}",
            t.columns
        );
        assert!(
            t.columns.contains(&format!("from_b_{round}")),
            "{:?}",
            t.columns
        );
    }
    let got = ids(&t.rows);
    assert_eq!(got.len(), 1 + 3 * 4_000, "every row once");
    let mut unique = got.clone();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "no row twice");
    // Each b row's value is in its own round's column.
    assert!(t
        .rows
        .iter()
        .any(|r| r["id"] == 5_010 && r["from_b_0"] == "0"));
}

/// The same from a bucket on the S3 server: gzipped JSON lines and zstd CSV, a later file with
/// a new column, a bad file rejected under `skip_file`, metadata columns, all read back by
/// pyiceberg.
#[sqlx::test(migrator = "MIGRATOR")]
async fn files_from_s3_evolve_reject_and_trace_read_back_by_pyiceberg(pool: PgPool) {
    use autoloader_tests::{database_url, temp_dir, worker_bin, TestApi, WorkerProcess};
    use std::io::Write;
    let bucket = format!("real-files-{}", Uuid::now_v7().simple());
    s3::create_bucket(&bucket).await;
    let gzip = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).expect("gzip");
        e.finish().expect("gzip")
    };
    s3::put_object(
        &bucket,
        "2024/01/a.json.gz",
        gzip(b"{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"name\": \"b\"}\n"),
    )
    .await;
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("realfiles").await;
    let (status, _, created) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(json!({
                "name": "events from s3",
                "source_type": "s3",
                "source_path": format!("s3://{bucket}/"),
                "format_type": "json",
                "destination_table": "raw.events",
                "schedule_frequency": "hourly",
                "schedule_enabled": false,
                "schedule_timezone": "UTC",
                "options": {
                    "s3_endpoint": s3::endpoint(),
                    "s3_region": s3::REGION,
                    "s3_access_key_id": s3::ACCESS_KEY,
                    "s3_secret_access_key": "any",
                    "s3_allow_http": true,
                    "on_error": "skip_file",
                    "metadata_columns": true,
                }
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let ingestion: Uuid = created["id"].as_str().expect("id").parse().expect("uuid");
    let table = created["iceberg_table"].as_str().expect("table").to_owned();
    let url = database_url(&pool);
    let warehouse = temp_dir("real-files-s3-warehouse");
    let _worker = WorkerProcess::spawn(
        worker_bin().to_str().expect("utf-8"),
        &url,
        "loader",
        &[("AUTOLOADER_WAREHOUSE", warehouse.to_str().expect("utf-8"))],
    );
    let run = api.trigger(&token, ingestion).await;
    let first = api
        .finished_run(&token, run["id"].as_str().expect("id"))
        .await;
    assert_eq!(first["status"], "SUCCESS", "{first}");

    s3::put_object(
        &bucket,
        "2024/01/b.json.zst",
        zstd::encode_all(
            &b"{\"id\": 3, \"name\": \"c\", \"country\": \"NO\"}\n"[..],
            3,
        )
        .expect("zstd"),
    )
    .await;
    s3::put_object(&bucket, "2024/01/c.json", b"{\"id\": \"x\"}\n".to_vec()).await;
    let run = api.trigger(&token, ingestion).await;
    let second = api
        .finished_run(&token, run["id"].as_str().expect("id"))
        .await;
    assert_eq!(second["status"], "SUCCESS", "{second}");
    assert_eq!(second["files_processed"], 1, "{second}");
    let rejected: Vec<(String, String)> = sqlx::query_as(
        "select path, error from loaded_files where ingestion_id = $1 and status = 'rejected'",
    )
    .bind(ingestion)
    .fetch_all(&pool)
    .await
    .expect("ledger");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].0, format!("s3://{bucket}/2024/01/c.json"));

    let warehouse_url = format!("file://{}", warehouse.display());
    if let Some(py) = s3::iceberg_read(&url, &warehouse_url, &table) {
        assert_eq!(py["row_count"], 3, "{py}");
        assert_eq!(
            py["columns"],
            json!([
                "id",
                "name",
                "_source_file",
                "_source_modified_at",
                "_ingested_run_id",
                "country"
            ]),
            "{py}"
        );
        let rows = py["rows"].as_array().expect("rows");
        let three = rows.iter().find(|r| r["id"] == 3).expect("row 3");
        assert_eq!(three["country"], "NO");
        assert_eq!(
            three["_source_file"],
            format!("s3://{bucket}/2024/01/b.json.zst")
        );
        assert_eq!(three["_ingested_run_id"], second["id"]);
        let one = rows.iter().find(|r| r["id"] == 1).expect("row 1");
        assert!(one["country"].is_null(), "{one}");
        assert_eq!(one["_ingested_run_id"], first["id"]);
    }
    let _ = std::fs::remove_dir_all(&warehouse);
}

/// Avro follows the same rules: a later file's new field becomes a column, an int field meeting
/// a long one widens, and under `skip_file` a damaged container is rejected while the rest load.
#[sqlx::test(migrator = "MIGRATOR")]
async fn avro_files_evolve_widen_and_are_rejected_when_damaged(pool: PgPool) {
    use apache_avro::types::Value as V;
    let write = |schema: &str, records: Vec<Vec<(&str, V)>>| -> Vec<u8> {
        let schema = apache_avro::Schema::parse_str(schema).expect("schema");
        let mut writer = apache_avro::Writer::new(&schema, Vec::new());
        for r in records {
            let record = V::Record(r.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
            writer.append_value_ref(&record).expect("append");
        }
        writer.into_inner().expect("finish")
    };
    let w = Loader::new(pool, "avro-evolve").await;
    w.write(
        "1.avro",
        &write(
            r#"{"type": "record", "name": "r", "fields": [
                {"name": "id", "type": "int"}, {"name": "name", "type": "string"}]}"#,
            vec![vec![("id", V::Int(1)), ("name", V::String("a".into()))]],
        ),
    );
    let ingestion = w
        .ingestion(
            "avro",
            "crm.avro_people",
            json!({"options": {"on_error": "skip_file"}}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    assert_eq!(w.run_by_hand(ingestion).await["status"], "SUCCESS");
    w.write(
        "2.avro",
        &write(
            r#"{"type": "record", "name": "r", "fields": [
                {"name": "id", "type": "long"}, {"name": "name", "type": "string"},
                {"name": "email", "type": ["null", "string"]}]}"#,
            vec![vec![
                ("id", V::Long(6_000_000_000)),
                ("name", V::String("b".into())),
                (
                    "email",
                    V::Union(1, Box::new(V::String("b@example.com".into()))),
                ),
            ]],
        ),
    );
    let damaged = write(
        r#"{"type": "record", "name": "r", "fields": [{"name": "id", "type": "long"}]}"#,
        vec![vec![("id", V::Long(9))]; 50],
    );
    w.write("3.avro", &damaged[..damaged.len() - 40]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 1, "{run}");
    let t = w.table("crm.avro_people").await.expect("table");
    assert_eq!(t.columns, ["id", "name", "email"]);
    assert_eq!(ids(&t.rows), [1, 6_000_000_000]);
    let l = ledger(&w, ingestion).await;
    assert_eq!(
        (l[2].0.as_str(), l[2].1.as_str()),
        ("3.avro", "rejected"),
        "{l:?}"
    );
    if let Some(py) = pyiceberg(&w, "crm.avro_people") {
        assert_eq!(py["types"]["id"], "long", "{py}");
        assert_eq!(py["types"]["email"], "string", "{py}");
    }
}

/// A file that is one JSON array follows the same rules, element by element: a new key becomes a
/// column, and under `skip_record` an element whose value does not convert is dropped.
#[sqlx::test(migrator = "MIGRATOR")]
async fn json_arrays_evolve_and_drop_bad_elements(pool: PgPool) {
    let w = Loader::new(pool, "arrays").await;
    w.write("1.json", br#"[{"id": 1, "kind": "a"}]"#);
    let ingestion = w
        .ingestion(
            "json",
            "arr.items",
            json!({"options": {"on_error": "skip_record"}}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    assert_eq!(w.run_by_hand(ingestion).await["status"], "SUCCESS");
    w.write(
        "2.json",
        br#"[{"id": 2, "kind": "b", "size": 7},
            {"id": "three", "kind": "c"},
            {"id": 4, "kind": "d"}]"#,
    );
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let t = w.table("arr.items").await.expect("table");
    assert_eq!(t.columns, ["id", "kind", "size"]);
    assert_eq!(ids(&t.rows), [1, 2, 4]);
    assert!(t.rows.contains(&json!({"id": 2, "kind": "b", "size": 7})));
    let (_, records, first) = rejections(&w, &run).await;
    assert_eq!(records, 1, "{first}");
    assert_eq!(first[0]["record"], 2, "{first}");
}

/// The race made certain: every commit waits 3 s (`AUTOLOADER_FAILPOINT=pause-before-commit`), so
/// run B, which read the table before run A's commit evolved it, commits after it. B's commit is
/// refused (its data files' field ids were chosen against the old schema), B reads its file
/// again against A's schema, and both land: both columns, every row once.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_commit_that_lost_a_schema_race_reads_its_files_again(pool: PgPool) {
    let w = Loader::new(pool, "schema-race").await;
    w.write("a0.json", b"{\"id\": 1}\n");
    let a = w
        .ingestion(
            "json",
            "race.t",
            json!({"name": "a", "options": {"glob": "a*"}}),
        )
        .await;
    let b = w
        .ingestion(
            "json",
            "race.t",
            json!({"name": "b", "options": {"glob": "b*"}}),
        )
        .await;
    let worker = w.worker("loader", &[("AUTOLOADER_FAILPOINT", "pause-before-commit")]);
    assert_eq!(w.run_by_hand(a).await["status"], "SUCCESS");
    w.write("a1.json", b"{\"id\": 10, \"from_a\": 1}\n");
    w.write("b1.json", b"{\"id\": 20, \"from_b\": \"x\"}\n");
    let ra = w.api.trigger(&w.token, a).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let rb = w.api.trigger(&w.token, b).await;
    let ra = w.finished(ra["id"].as_str().expect("id")).await;
    let rb = w.finished(rb["id"].as_str().expect("id")).await;
    assert_eq!(ra["status"], "SUCCESS", "{ra}");
    assert_eq!(rb["status"], "SUCCESS", "{rb}");
    assert_eq!(
        rb["attempt"], 1,
        "the race is settled inside the run, not by a retry: {rb}"
    );
    assert!(
        worker
            .log()
            .contains("the table's schema changed meanwhile; reading the files again"),
        "run B lost the race and read again"
    );
    let t = w.table("race.t").await.expect("table");
    assert_eq!(t.columns, ["id", "from_a", "from_b"]);
    assert_eq!(ids(&t.rows), [1, 10, 20]);
    assert!(t.rows.contains(&json!({"id": 20, "from_b": "x"})));
    assert!(t.rows.contains(&json!({"id": 10, "from_a": 1})));
}

/// CSV carries no types: a CSV file with a new column adds it, and leaves the hinted types of
/// the columns the table has alone (no widening from a guess). Under `rescue`, a CSV column the
/// table lacks and a value that does not convert are kept in `_rescued_data`.
#[sqlx::test(migrator = "MIGRATOR")]
async fn csv_keeps_hinted_types_and_rescues_what_does_not_fit(pool: PgPool) {
    let w = Loader::new(pool, "csv-hints").await;
    let _worker = w.worker("loader", &[]);
    std::fs::create_dir_all(w.source.join("h")).expect("dir");
    std::fs::create_dir_all(w.source.join("r")).expect("dir");
    std::fs::write(w.source.join("h/1.csv"), b"id,score\n1,1.5\n").expect("write");
    let hinted = w
        .ingestion(
            "csv",
            "csv.hinted",
            json!({"options": {"glob": "h/*", "schema_hints": "id int, score float"}}),
        )
        .await;
    assert_eq!(w.run_by_hand(hinted).await["status"], "SUCCESS");
    std::fs::write(w.source.join("h/2.csv"), b"id,score,note\n2,2.5,new\n").expect("write");
    let run = w.run_by_hand(hinted).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let t = w.table("csv.hinted").await.expect("table");
    assert_eq!(t.columns, ["id", "score", "note"]);
    assert!(
        t.rows
            .contains(&json!({"id": 2, "score": 2.5, "note": "new"})),
        "{:?}",
        t.rows
    );
    if let Some(py) = pyiceberg(&w, "csv.hinted") {
        assert_eq!(py["types"]["id"], "int", "{py}");
        assert_eq!(py["types"]["score"], "float", "{py}");
        assert_eq!(py["types"]["note"], "string", "{py}");
    }

    std::fs::write(w.source.join("r/1.csv"), b"id,name\n1,a\n").expect("write");
    let rescue = w
        .ingestion(
            "csv",
            "csv.rescued",
            json!({"options": {"glob": "r/*", "schema_evolution": "rescue"}}),
        )
        .await;
    assert_eq!(w.run_by_hand(rescue).await["status"], "SUCCESS");
    std::fs::write(
        w.source.join("r/2.csv"),
        b"id,name,extra\n2,b,x\nthree,c,\n",
    )
    .expect("write");
    let run = w.run_by_hand(rescue).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let t = w.table("csv.rescued").await.expect("table");
    assert_eq!(t.columns, ["id", "name", "_rescued_data"]);
    let rescued = |name: &str| -> Value {
        let row = t.rows.iter().find(|r| r["name"] == name).expect("row");
        serde_json::from_str(row["_rescued_data"].as_str().expect("text")).expect("json")
    };
    let file = format!("file://{}/r/2.csv", w.source.display());
    assert_eq!(rescued("b"), json!({"extra": "x", "_file_path": file}));
    assert_eq!(rescued("c"), json!({"id": "three", "_file_path": file}));
}
