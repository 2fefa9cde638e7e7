//! Loading files for real: the shipped `autoloader-worker` binary reads local files (JSON lines,
//! CSV, Parquet, Avro) into Iceberg tables in a real SQL catalog, driven through the real API. Each
//! check reads the table back with an Iceberg scan.

use std::path::Path;
use std::sync::Arc;

use autoloader_tests::loader::{ids, Loader, RUN_TIMEOUT};
use autoloader_tests::{temp_dir, wait_for};
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// The spec's end-to-end scenario on local files: a scheduled tick fires, the worker loads
/// the files, the rows are in the table and the run history says the scheduler ran it. A
/// second run after two more files arrive appends exactly those.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_scheduled_run_loads_new_files_and_only_new_files(pool: PgPool) {
    let w = Loader::new(pool.clone(), "e2e-local").await;
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

    let run = w.api.scheduled_run(&pool, &w.token, ingestion).await;
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
    let w = Loader::new(pool, "csv").await;
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

    // A value that does not parse as the column's type: the file, record and column are named.
    w.write("bad.csv", b"id;name\n4;Ken\nfive;Dennis\n");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().expect("error");
    assert!(
        error.contains("bad.csv")
            && error.contains("column 'id'")
            && error.contains("record 2")
            && error.contains("'five'"),
        "{error}"
    );
}

fn write_parquet(path: &Path, ids: &[i64], amounts: &[f64]) {
    use arrow_array::{ArrayRef, Float64Array, Int64Array};
    autoloader_tests::write_parquet(
        path,
        vec![
            ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
            (
                "amount",
                Arc::new(Float64Array::from(amounts.to_vec())) as ArrayRef,
            ),
        ],
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn parquet_files_load(pool: PgPool) {
    let w = Loader::new(pool, "parquet").await;
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

const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "long"},
    {"name": "customer", "type": ["null", "string"]},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "items", "type": {"type": "array", "items": "string"}},
    {"name": "ship_to", "type": ["null", {"type": "record", "name": "Address", "fields": [
        {"name": "city", "type": "string"}, {"name": "zip", "type": ["null", "string"]}]}]},
    {"name": "attrs", "type": {"type": "map", "values": "long"}}
]}"#;

/// An Avro order: `id`, a customer when given, `cents` as a decimal(10, 2), placed `id` hours
/// after 2026-01-01T00:00:00Z.
fn order(id: i64, customer: Option<&str>, cents: i64) -> apache_avro::types::Value {
    use apache_avro::types::Value as V;
    let some = |v: V| V::Union(1, Box::new(v));
    let none = || V::Union(0, Box::new(V::Null));
    V::Record(vec![
        ("id".into(), V::Long(id)),
        (
            "customer".into(),
            customer.map_or_else(none, |c| some(V::String(c.into()))),
        ),
        (
            "amount".into(),
            V::Decimal(apache_avro::Decimal::from(cents.to_be_bytes())),
        ),
        (
            "placed_at".into(),
            V::TimestampMicros(1_767_225_600_000_000 + id * 3_600_000_000),
        ),
        ("day".into(), V::Date(20_454)),
        ("status".into(), V::Enum(1, "PAID".into())),
        (
            "items".into(),
            V::Array(vec![V::String("book".into()), V::String("pen".into())]),
        ),
        (
            "ship_to".into(),
            if id % 2 == 0 {
                none()
            } else {
                some(V::Record(vec![
                    ("city".into(), V::String("Lyon".into())),
                    ("zip".into(), none()),
                ]))
            },
        ),
        (
            "attrs".into(),
            V::Map([("qty".to_owned(), V::Long(id))].into()),
        ),
    ])
}

/// An Avro object container file of `records` in `schema`, its blocks compressed by `codec`.
fn avro_file(
    schema: &str,
    codec: apache_avro::Codec,
    records: &[apache_avro::types::Value],
) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(schema).expect("schema");
    let mut writer = apache_avro::Writer::with_codec(&schema, Vec::new(), codec);
    for r in records {
        writer.append_value_ref(r).expect("append");
        // A block every two records: the reader goes from block to block.
        writer.flush().expect("flush");
    }
    writer.into_inner().expect("finish")
}

/// The types of the tenant's table `table`, by column, as Iceberg names them.
async fn column_types(w: &Loader, table: &str) -> Vec<(String, String)> {
    use autoloader_worker::ingest::{table, warehouse::WarehouseStorageFactory};
    let catalog = table::open_catalog(&w.url, &w.warehouse, &WarehouseStorageFactory::from_env())
        .await
        .expect("catalog");
    let dest = autoloader::ingestions::definition::DestinationTable::parse(&format!(
        "{}.{table}",
        w.namespace
    ))
    .expect("table name");
    let t = table::load(&catalog, &table::ident(&dest).expect("ident"))
        .await
        .expect("load")
        .expect("the table exists");
    t.metadata()
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.field_type.to_string()))
        .collect()
}

/// Avro files load with their writer schema's types: a new table from the first file, the next
/// file with the same schema appended, and a damaged file failing its run by name with nothing
/// committed.
#[sqlx::test(migrator = "MIGRATOR")]
async fn avro_files_load_with_their_types(pool: PgPool) {
    use apache_avro::{Codec, DeflateSettings};
    let w = Loader::new(pool, "avro").await;
    w.write(
        "orders-1.avro",
        &avro_file(
            ORDER,
            Codec::Deflate(DeflateSettings::default()),
            &[order(1, Some("ada"), 1999), order(2, None, -5)],
        ),
    );
    let ingestion = w.ingestion("avro", "shop.orders", json!({})).await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 2);

    let types = column_types(&w, "shop.orders").await;
    let types: Vec<(&str, &str)> = types
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("id", "long"),
            ("customer", "string"),
            ("amount", "decimal(10, 2)"),
            ("placed_at", "timestamptz"),
            ("day", "date"),
            ("status", "string"),
            ("items", "list"),
            ("ship_to", "struct<stringstring>"),
            ("attrs", "map"),
        ]
    );

    let t = w.table("shop.orders").await.expect("table");
    assert_eq!(ids(&t.rows), [1, 2]);
    let first = t.rows.iter().find(|r| r["id"] == 1).expect("order 1");
    assert_eq!(first["customer"], "ada");
    assert_eq!(first["amount"], json!(19.99));
    assert_eq!(first["placed_at"], "2026-01-01T01:00:00Z");
    assert_eq!(first["day"], "2026-01-01");
    assert_eq!(first["status"], "PAID");
    assert_eq!(first["items"], json!(["book", "pen"]));
    assert_eq!(first["ship_to"], json!({"city": "Lyon"}));
    assert_eq!(first["attrs"], json!({"qty": 1}));
    let second = t.rows.iter().find(|r| r["id"] == 2).expect("order 2");
    assert!(
        second.get("customer").is_none_or(Value::is_null),
        "{second}"
    );
    assert!(second.get("ship_to").is_none_or(Value::is_null), "{second}");
    assert_eq!(second["amount"], json!(-0.05));

    // The same schema, other blocks (snappy): appended.
    w.write(
        "orders-2.avro",
        &avro_file(ORDER, Codec::Snappy, &[order(3, Some("grace"), 100)]),
    );
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 1);
    let t = w.table("shop.orders").await.expect("table");
    assert_eq!(ids(&t.rows), [1, 2, 3]);
    assert_eq!(t.snapshots, 2);

    // Cut short: the run fails naming the file, and nothing of it is committed.
    let whole = avro_file(ORDER, Codec::Null, &[order(4, None, 1), order(5, None, 2)]);
    w.write("orders-3.avro", &whole[..whole.len() - 7]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().expect("error");
    assert!(
        error.contains("orders-3.avro") && error.contains("not a readable Avro file"),
        "{error}"
    );
    let after = w.table("shop.orders").await.expect("table");
    assert_eq!(after.rows, t.rows);
    assert_eq!(after.snapshots, 2);
    assert_eq!(
        w.ledger(ingestion).await,
        [
            ("orders-1.avro".to_owned(), 2),
            ("orders-2.avro".to_owned(), 1)
        ]
    );
}

/// A file that does not fit the table fails the run with the file and column named, and the
/// table and the ledger stay exactly as they were: not even the good files of that run load.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_malformed_file_fails_the_run_and_leaves_the_table_alone(pool: PgPool) {
    let w = Loader::new(pool, "malformed").await;
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

    // Once the bad file is gone, the run loads what is left; a column the table does not have
    // is added to it (schema_evolution add_new_columns, the default).
    std::fs::remove_file(w.source.join("3.json")).expect("rm");
    w.write("4.json", b"{\"id\": 4, \"colour\": \"red\"}\n");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let t = w.table("sales.orders").await.expect("table");
    assert_eq!(ids(&t.rows), [1, 2, 4]);
    assert_eq!(t.columns, ["amount", "id", "colour"]);
}

/// A worker killed after the snapshot commit but before the run's outcome is recorded: the
/// run is recovered, sees its own snapshot, and finishes without loading anything twice.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_crash_after_the_commit_loads_nothing_twice(pool: PgPool) {
    let w = Loader::new(pool.clone(), "crash").await;
    w.write("a.json", b"{\"id\": 1}\n{\"id\": 2}\n");
    w.write("b.json", b"{\"id\": 3}\n");
    let ingestion = w.ingestion("json", "ops.events", json!({})).await;
    let doomed = w.worker("doomed", &[("AUTOLOADER_FAILPOINT", "after-commit")]);
    let run = w.api.trigger(&w.token, ingestion).await;
    let run_id = run["id"].as_str().expect("run id").to_owned();
    wait_for("the commit", RUN_TIMEOUT, || async {
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

/// Local sources must stay inside the tenant's file roots (inside AUTOLOADER_FILE_ROOTS): outside
/// paths and symlinks out are refused when the ingestion is created, with a problem naming
/// `source_path`.
#[sqlx::test(migrator = "MIGRATOR")]
async fn local_sources_outside_the_roots_are_refused(pool: PgPool) {
    let w = Loader::new(pool, "roots").await;
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
                    .contains("outside the tenant's file roots")),
            "{path}: {body}"
        );
    }
    let _ = std::fs::remove_dir_all(&outside);
}

/// The ledger names files by their full URL: pointing an ingestion at another directory loads
/// that directory's files even where their names match files already loaded.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_new_source_directory_is_new_files(pool: PgPool) {
    let w = Loader::new(pool, "moved").await;
    w.write("a.json", b"{\"id\": 1}\n");
    let ingestion = w.ingestion("json", "ops.moved", json!({})).await;
    let _worker = w.worker("loader", &[]);
    assert_eq!(w.run_by_hand(ingestion).await["rows_ingested"], 1);

    let other = w.root.join("in2");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("a.json"), b"{\"id\": 2}\n").expect("write");
    let (status, _, body) = w
        .api
        .call(
            "PATCH",
            &format!("/api/v1/ingestions/{ingestion}"),
            &w.token,
            Some(json!({"source_path": format!("file://{}/", other.display())})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 1, "{run}");
    assert_eq!(
        ids(&w.table("ops.moved").await.expect("table").rows),
        [1, 2]
    );
}

/// The operator's cap on one file: a file larger than `AUTOLOADER_MAX_FILE_BYTES` fails its run,
/// naming the file and the cap, and loads nothing; the same worker goes on running others.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_file_over_the_operators_cap_fails_its_run_naming_both(pool: PgPool) {
    let w = Loader::new(pool.clone(), "file-cap").await;
    let small = b"{\"id\": 1, \"value\": \"fits\"}\n".to_vec();
    let big = format!("{{\"id\": 2, \"value\": \"{}\"}}\n", "x".repeat(400)).into_bytes();
    w.write("a-small.json", &small);
    let fits = w
        .ingestion(
            "json",
            "capped.fits",
            json!({"name": "fits", "options": {"glob": "a-*"}}),
        )
        .await;
    let _worker = w.worker("loader", &[("AUTOLOADER_MAX_FILE_BYTES", "200")]);
    let run = w.run_by_hand(fits).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");

    w.write("b-big.json", &big);
    let too_big = w
        .ingestion(
            "json",
            "capped.big",
            json!({"name": "big", "options": {"glob": "b-*"}}),
        )
        .await;
    let run = w.run_by_hand(too_big).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(
        error.contains("b-big.json")
            && error.contains("AUTOLOADER_MAX_FILE_BYTES")
            && error.contains("200"),
        "{error}"
    );
    assert!(w.table("capped.big").await.is_none(), "nothing was loaded");

    // The worker is still there for everyone else.
    w.write("a-second.json", &small);
    let run = w.run_by_hand(fits).await;
    assert_eq!(
        (run["status"].as_str(), run["files_processed"].as_i64()),
        (Some("SUCCESS"), Some(1)),
        "{run}"
    );
}

/// The operator's cap on one record (`AUTOLOADER_MAX_RECORD_BYTES`, 1 KiB here): a JSON line, an
/// element of a file that is one JSON array, or a CSV line longer than the cap fails its run,
/// naming the file and the cap, whether the file is the one a new table's schema comes from or a
/// later one; nothing of it is loaded. A JSON array larger than the cap as a whole loads, element
/// by element. The worker goes on running other ingestions.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_record_over_the_operators_cap_fails_its_run_naming_both(pool: PgPool) {
    let w = Loader::new(pool.clone(), "record-cap").await;
    let _worker = w.worker("loader", &[("AUTOLOADER_MAX_RECORD_BYTES", "1024")]);
    let long = "x".repeat(2_000);
    let fails_naming = |run: &Value, file: &str| {
        assert_eq!(run["status"], "FAILED", "{run}");
        let error = run["error"].as_str().unwrap_or("");
        assert!(
            error.contains(file)
                && error.contains("AUTOLOADER_MAX_RECORD_BYTES")
                && error.contains("1024"),
            "{error}"
        );
    };

    // JSON lines: the long line is the new table's first file, then a later file.
    w.write(
        "a-1.json",
        format!("{{\"id\": 1}}\n{{\"id\": 2, \"note\": \"{long}\"}}\n").as_bytes(),
    );
    let lines = w
        .ingestion(
            "json",
            "capped.lines",
            json!({"name": "lines", "options": {"glob": "a-*"}}),
        )
        .await;
    fails_naming(&w.run_by_hand(lines).await, "a-1.json");
    assert!(w.table("capped.lines").await.is_none(), "no table was made");
    std::fs::remove_file(w.source.join("a-1.json")).expect("rm");
    w.write("a-2.json", b"{\"id\": 3, \"note\": \"short\"}\n");
    assert_eq!(w.run_by_hand(lines).await["status"], "SUCCESS");
    w.write(
        "a-3.json",
        format!("{{\"id\": 4}}\n{{\"id\": 5, \"note\": \"{long}\"}}\n").as_bytes(),
    );
    fails_naming(&w.run_by_hand(lines).await, "a-3.json");
    assert_eq!(
        ids(&w.table("capped.lines").await.expect("table").rows),
        [3]
    );

    // One JSON array: 200 short records (about 6 KB in all) load; one long record does not.
    let records: Vec<String> = (0..200)
        .map(|i| format!("{{\"id\": {i}, \"note\": \"n\"}}"))
        .collect();
    w.write("b-1.json", format!("[{}]", records.join(",\n")).as_bytes());
    let array = w
        .ingestion(
            "json",
            "capped.array",
            json!({"name": "array", "options": {"glob": "b-*"}}),
        )
        .await;
    let run = w.run_by_hand(array).await;
    assert_eq!(
        (run["status"].as_str(), run["rows_ingested"].as_i64()),
        (Some("SUCCESS"), Some(200)),
        "{run}"
    );
    w.write(
        "b-2.json",
        format!("[{{\"id\": 1000}}, {{\"id\": 1001, \"note\": \"{long}\"}}]").as_bytes(),
    );
    fails_naming(&w.run_by_hand(array).await, "b-2.json");
    assert_eq!(
        w.table("capped.array").await.expect("table").rows.len(),
        200,
        "nothing of b-2.json was loaded"
    );

    // CSV: a long line, and a header with no line end at all.
    w.write(
        "c-1.csv",
        format!("id,note\n1,short\n2,{long}\n").as_bytes(),
    );
    let csv = w
        .ingestion(
            "csv",
            "capped.csv",
            json!({"name": "csv", "options": {"glob": "c-*"}}),
        )
        .await;
    fails_naming(&w.run_by_hand(csv).await, "c-1.csv");
    std::fs::remove_file(w.source.join("c-1.csv")).expect("rm");
    w.write("c-2.csv", b"id,note\n1,short\n");
    assert_eq!(w.run_by_hand(csv).await["status"], "SUCCESS");
    w.write("c-3.csv", format!("id,{long}").as_bytes());
    fails_naming(&w.run_by_hand(csv).await, "c-3.csv");

    // The same worker still loads what fits.
    w.write("a-4.json", b"{\"id\": 6}\n");
    std::fs::remove_file(w.source.join("a-3.json")).expect("rm");
    let run = w.run_by_hand(lines).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(
        ids(&w.table("capped.lines").await.expect("table").rows),
        [3, 6]
    );
}

/// A file of one 64 MiB line with no line end, as a hostile tenant might drop: the run fails on
/// the record cap, not on memory or time, and names the file; another tenant's run on the same
/// worker process, at the same time, loads its rows, and the process goes on.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_huge_single_line_file_fails_on_the_record_cap(pool: PgPool) {
    let w = Loader::new(pool.clone(), "one-line").await;
    let mut line = Vec::with_capacity(64 << 20);
    line.extend_from_slice(b"{\"id\": 1, \"blob\": \"");
    line.resize(64 << 20, b'a');
    w.write("huge.json", &line);
    let ingestion = w.ingestion("json", "capped.huge", json!({})).await;

    let (other, other_token) = w.api.tenant("neighbour").await;
    let other_dir = w.root.join("neighbour");
    std::fs::create_dir_all(&other_dir).expect("dir");
    std::fs::write(other_dir.join("ok.json"), b"{\"id\": 7}\n").expect("write");
    w.api
        .give_roots(other, std::slice::from_ref(&other_dir))
        .await;
    let other_ingestion = w
        .api
        .create_ingestion(
            &other_token,
            json!({
                "name": "neighbour", "source_type": "local",
                "source_path": format!("file://{}/", other_dir.display()),
                "format_type": "json", "destination_table": "fine.rows"
            }),
        )
        .await;

    let mut worker = w.worker("loader", &[("AUTOLOADER_MAX_RECORD_BYTES", "1024")]);
    let hostile = w.api.trigger(&w.token, ingestion).await;
    let neighbour = w.api.trigger(&other_token, other_ingestion).await;
    let run = w.finished(hostile["id"].as_str().expect("id")).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(
        error.contains("huge.json") && error.contains("AUTOLOADER_MAX_RECORD_BYTES"),
        "{error}"
    );
    let theirs = w
        .api
        .finished_run(&other_token, neighbour["id"].as_str().expect("id"))
        .await;
    assert_eq!(theirs["status"], "SUCCESS", "{theirs}");
    assert_eq!(theirs["rows_ingested"], 1, "{theirs}");
    assert_eq!(
        worker.try_exit_code(),
        None,
        "the worker process is still running"
    );
}

/// A prefix of 2,500 files, more than one page of ledger look-ups, with `max_files_per_run` 7:
/// each run takes the 7 oldest files not yet loaded (by modification time, not by name), then
/// the next run the next 7, as when the whole listing was sorted at once.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_large_listing_is_taken_oldest_first_a_run_at_a_time(pool: PgPool) {
    let w = Loader::new(pool.clone(), "listing").await;
    let base = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600);
    for i in 0..2_500u64 {
        let path = w.source.join(format!("f-{i:04}.json"));
        std::fs::write(&path, format!("{{\"id\": {i}}}\n")).expect("write");
        // The higher the name, the older the file.
        let at = base + std::time::Duration::from_secs(2_500 - i);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(at))
            .expect("set mtime");
    }
    let ingestion = w
        .ingestion(
            "json",
            "listing.events",
            json!({"options": {"max_files_per_run": 7}}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["files_processed"], 7, "{run}");
    assert_eq!(
        ids(&w.table("listing.events").await.expect("table").rows),
        (2_493..2_500).collect::<Vec<_>>()
    );
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["files_processed"], 7, "{run}");
    assert_eq!(
        ids(&w.table("listing.events").await.expect("table").rows),
        (2_486..2_500).collect::<Vec<_>>()
    );
}

/// Local files are opened beneath their root, in the step that reads them: a file that is a
/// symlink to a file outside the root, or that lies in a directory that is a symlink out of it,
/// fails the run naming the file, and nothing of the run is loaded. A symlink that stays inside
/// the root is followed. Another ingestion on the same worker is unaffected.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_symlink_out_of_the_root_fails_its_run_naming_the_file(pool: PgPool) {
    let w = Loader::new(pool.clone(), "symlinks").await;
    let outside = temp_dir("symlinks-outside");
    std::fs::write(
        outside.join("secret.json"),
        b"{\"id\": 666, \"value\": \"secret\"}\n",
    )
    .expect("write");
    std::fs::create_dir_all(outside.join("dir")).expect("mkdir");
    std::fs::write(
        outside.join("dir/x.json"),
        b"{\"id\": 667, \"value\": \"secret\"}\n",
    )
    .expect("write");
    let other = w.root.join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(
        other.join("inside.json"),
        b"{\"id\": 2, \"value\": \"in\"}\n",
    )
    .expect("write");

    w.write("a.json", b"{\"id\": 1, \"value\": \"a\"}\n");
    let ingestion = w.ingestion("json", "links.events", json!({})).await;
    let _worker = w.worker("loader", &[]);
    assert_eq!(w.run_by_hand(ingestion).await["status"], "SUCCESS");

    // A symlink inside the root to a file outside it.
    w.write("b.json", b"{\"id\": 3, \"value\": \"b\"}\n");
    std::os::unix::fs::symlink(outside.join("secret.json"), w.source.join("c-link.json"))
        .expect("symlink");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(
        error.contains("c-link.json") && error.contains("leads outside"),
        "{error}"
    );
    assert!(!error.contains("secret\""), "{error}");
    std::fs::remove_file(w.source.join("c-link.json")).expect("rm");

    // A directory that is a symlink out of the root.
    std::os::unix::fs::symlink(outside.join("dir"), w.source.join("sub")).expect("symlink");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(
        error.contains("sub/x.json") && error.contains("leads outside"),
        "{error}"
    );
    std::fs::remove_file(w.source.join("sub")).expect("rm");
    assert_eq!(
        ids(&w.table("links.events").await.expect("table").rows),
        [1],
        "nothing of the failed runs was loaded"
    );

    // A symlink that stays inside the root is read.
    std::os::unix::fs::symlink("../other/inside.json", w.source.join("d-link.json"))
        .expect("symlink");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(
        ids(&w.table("links.events").await.expect("table").rows),
        [1, 2, 3]
    );
    let _ = std::fs::remove_dir_all(&outside);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// Gzipped and zstd-compressed JSON lines and CSV load as they stream, by extension or, for a
/// file whose name says nothing, by its first bytes; the table holds every row once.
#[sqlx::test(migrator = "MIGRATOR")]
async fn compressed_files_load_as_they_stream(pool: PgPool) {
    let w = Loader::new(pool, "compressed").await;
    let _worker = w.worker("loader", &[]);
    w.write(
        "a.json.gz",
        &gzip(b"{\"id\": 1, \"value\": \"gz\"}\n{\"id\": 2, \"value\": \"gz\"}\n"),
    );
    w.write(
        "b.json.zst",
        &zstd::encode_all(&b"{\"id\": 3, \"value\": \"zstd\"}\n"[..], 3).expect("zstd"),
    );
    // Gzip without the extension: known by its magic number.
    w.write("c.json", &gzip(b"{\"id\": 4, \"value\": \"magic\"}\n"));
    let json = w.ingestion("json", "packed.events", json!({})).await;
    let run = w.run_by_hand(json).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 3, "{run}");
    assert_eq!(run["rows_ingested"], 4, "{run}");
    let t = w.table("packed.events").await.expect("table");
    assert_eq!(ids(&t.rows), [1, 2, 3, 4]);

    let csv_dir = w.root.join("csv");
    std::fs::create_dir_all(&csv_dir).expect("dir");
    std::fs::write(csv_dir.join("p.csv.gz"), gzip(b"id,name\n1,a\n2,b\n")).expect("write");
    std::fs::write(
        csv_dir.join("q.csv.zst"),
        zstd::encode_all(&b"id,name\n3,c\n"[..], 3).expect("zstd"),
    )
    .expect("write");
    let csv = w
        .ingestion(
            "csv",
            "packed.people",
            json!({"name": "csv", "source_path": format!("file://{}/", csv_dir.display())}),
        )
        .await;
    let run = w.run_by_hand(csv).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 3, "{run}");
    let t = w.table("packed.people").await.expect("table");
    assert_eq!(ids(&t.rows), [1, 2, 3]);
}

fn bzip2(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(bytes).expect("bzip2");
    e.finish().expect("bzip2")
}

/// `bytes` in snappy's framing format (what `snzip` and python-snappy's `stream_compress` write).
fn snappy(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = snap::write::FrameEncoder::new(Vec::new());
    e.write_all(bytes).expect("snappy");
    e.into_inner().expect("snappy")
}

/// Bzip2 and snappy-framed JSON lines and CSV load as they stream, by extension or, for a file
/// whose name says nothing, by their first bytes; a bzip2 file of two streams loads both.
#[sqlx::test(migrator = "MIGRATOR")]
async fn bzip2_and_snappy_files_load_as_they_stream(pool: PgPool) {
    let w = Loader::new(pool, "bz2-snappy").await;
    let _worker = w.worker("loader", &[]);
    // Two bzip2 streams one after the other, as `cat a.bz2 b.bz2` or pbzip2 make.
    let mut two = bzip2(b"{\"id\": 1, \"value\": \"bz2\"}\n");
    two.extend(bzip2(b"{\"id\": 2, \"value\": \"bz2, second stream\"}\n"));
    w.write("a.json.bz2", &two);
    w.write(
        "b.json.snappy",
        &snappy(b"{\"id\": 3, \"value\": \"snappy\"}\n{\"id\": 4, \"value\": \"snappy\"}\n"),
    );
    // Without the extension: known by the bzip2 magic and snappy's stream identifier.
    w.write("c.json", &bzip2(b"{\"id\": 5, \"value\": \"magic\"}\n"));
    w.write("d.json", &snappy(b"{\"id\": 6, \"value\": \"magic\"}\n"));
    let json = w.ingestion("json", "packed.events", json!({})).await;
    let run = w.run_by_hand(json).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 4, "{run}");
    assert_eq!(run["rows_ingested"], 6, "{run}");
    let t = w.table("packed.events").await.expect("table");
    assert_eq!(ids(&t.rows), [1, 2, 3, 4, 5, 6]);
    assert!(
        t.rows
            .contains(&json!({"id": 2, "value": "bz2, second stream"})),
        "{:?}",
        t.rows
    );

    let csv_dir = w.root.join("csv");
    std::fs::create_dir_all(&csv_dir).expect("dir");
    std::fs::write(csv_dir.join("p.csv.bz2"), bzip2(b"id,name\n1,a\n2,b\n")).expect("write");
    std::fs::write(csv_dir.join("q.csv.sz"), snappy(b"id,name\n3,c\n4,d\n")).expect("write");
    let csv = w
        .ingestion(
            "csv",
            "packed.people",
            json!({"name": "csv", "source_path": format!("file://{}/", csv_dir.display())}),
        )
        .await;
    let run = w.run_by_hand(csv).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 2, "{run}");
    assert_eq!(run["rows_ingested"], 4, "{run}");
    let t = w.table("packed.people").await.expect("table");
    assert_eq!(t.columns, ["id", "name"]);
    assert_eq!(ids(&t.rows), [1, 2, 3, 4]);
    assert!(
        t.rows.contains(&json!({"id": 4, "name": "d"})),
        "{:?}",
        t.rows
    );
}

/// A small gzip file that expands past AUTOLOADER_MAX_FILE_BYTES (a decompression bomb) fails its
/// run naming the file and the cap, with at most one piece of it held; a file that is not the
/// gzip its name says fails naming the file; so does a bzip2 bomb; the worker goes on to load
/// the next ingestion.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_decompression_bomb_fails_its_run_and_the_worker_goes_on(pool: PgPool) {
    let w = Loader::new(pool, "bomb").await;
    // 64 MiB of one repeated line: about 64 KiB compressed.
    let line = b"{\"id\": 1, \"value\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}\n";
    let mut plain = Vec::with_capacity(64 << 20);
    while plain.len() < 64 << 20 {
        plain.extend_from_slice(line);
    }
    let bomb = gzip(&plain);
    assert!(bomb.len() < 1 << 20, "{} bytes compressed", bomb.len());
    w.write("bomb.json.gz", &bomb);
    let mut worker = w.worker("loader", &[("AUTOLOADER_MAX_FILE_BYTES", "4194304")]);
    let ingestion = w.ingestion("json", "bombs.away", json!({})).await;
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(
        error.contains("bomb.json.gz")
            && error.contains("decompresses to more than")
            && error.contains("AUTOLOADER_MAX_FILE_BYTES"),
        "{error}"
    );
    let rows = w.table("bombs.away").await.map_or(0, |t| t.rows.len());
    assert_eq!(rows, 0, "nothing was loaded");

    let other = w.root.join("other");
    std::fs::create_dir_all(&other).expect("dir");
    std::fs::write(other.join("fake.json.gz"), b"{\"id\": 9}\n").expect("write");
    let fake = w
        .ingestion(
            "json",
            "fake.gz",
            json!({"name": "fake", "source_path": format!("file://{}/", other.display())}),
        )
        .await;
    let run = w.run_by_hand(fake).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(
        error.contains("fake.json.gz") && error.contains("gzip"),
        "{error}"
    );

    // A bzip2 bomb: 8 MiB of the same line in one stream, the stream 8 times over (a file may
    // hold several); it fails on the same cap.
    let one = bzip2(&plain[..8 << 20]);
    let bz2_bomb: Vec<u8> = std::iter::repeat_n(one.as_slice(), 8)
        .flatten()
        .copied()
        .collect();
    assert!(
        bz2_bomb.len() < 1 << 20,
        "{} bytes compressed",
        bz2_bomb.len()
    );
    let bz2_dir = w.root.join("bz2");
    std::fs::create_dir_all(&bz2_dir).expect("dir");
    std::fs::write(bz2_dir.join("bomb.json.bz2"), &bz2_bomb).expect("write");
    let bz2 = w
        .ingestion(
            "json",
            "bombs.bz2",
            json!({"name": "bz2", "source_path": format!("file://{}/", bz2_dir.display())}),
        )
        .await;
    let run = w.run_by_hand(bz2).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(
        error.contains("bomb.json.bz2")
            && error.contains("decompresses to more than")
            && error.contains("4194304 bytes, AUTOLOADER_MAX_FILE_BYTES"),
        "{error}"
    );
    let rows = w.table("bombs.bz2").await.map_or(0, |t| t.rows.len());
    assert_eq!(rows, 0, "nothing was loaded");
    assert_eq!(
        worker.try_exit_code(),
        None,
        "the worker process is still running"
    );
}
