//! The spec's end-to-end test (section 11.3) against a real S3-compatible server on loopback:
//! files uploaded to a bucket, an ingestion created through the API with a schedule, the ticker
//! firing it, the shipped worker loading the rows, the run history showing the scheduler ran it,
//! and the table read back both by an Iceberg scan and by pyiceberg, an independent reader.

use autoloader_tests::s3;
use autoloader_tests::table::scan;
use autoloader_tests::{database_url, temp_dir, worker_bin, TestApi, WorkerProcess};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

fn bucket(name: &str) -> String {
    format!("{name}-{}", Uuid::now_v7().simple())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn spec_e2e_files_in_a_bucket_reach_the_table_on_schedule(pool: PgPool) {
    let bucket = bucket("test-scheduled-bucket");
    s3::create_bucket(&bucket).await;
    s3::put_object(
        &bucket,
        "data.json",
        br#"[{"id": 1, "value": "test"}]"#.to_vec(),
    )
    .await;
    // Not JSON, by name: the glob leaves it alone.
    s3::put_object(&bucket, "README.txt", b"not data".to_vec()).await;

    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("e2e").await;
    // The test server accepts any key; a distinctive one shows whether it ever leaks.
    let secret = format!("secret-{}", Uuid::now_v7().simple());
    let (status, _, created) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(json!({
                "name": "E2E Scheduled Ingestion",
                "source_type": "s3",
                "source_path": format!("s3a://{bucket}/"),
                "format_type": "json",
                "destination_table": "test_db.scheduled_table",
                "schedule_frequency": "custom",
                // Yearly, so no tick of its own races the manual run below; the scheduled run is
                // the tick pulled forward.
                "schedule_cron": "0 0 1 1 *",
                "schedule_enabled": true,
                "schedule_timezone": "UTC",
                "options": {
                    "s3_endpoint": s3::endpoint(),
                    "s3_region": s3::REGION,
                    "s3_access_key_id": s3::ACCESS_KEY,
                    "s3_secret_access_key": secret,
                    "s3_allow_http": true,
                    "glob": "*.json",
                }
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["options"]["s3_secret_access_key"], "********",
        "secrets are never returned"
    );
    let ingestion: Uuid = created["id"].as_str().expect("id").parse().expect("uuid");
    // The tenant's own table, under its namespace, as the API says a reader loads it.
    let table = created["iceberg_table"].as_str().expect("iceberg_table");
    assert_eq!(table, "e2e.test_db.scheduled_table");

    let url = database_url(&pool);
    let warehouse = temp_dir("e2e-s3-warehouse");
    let worker = WorkerProcess::spawn(
        worker_bin().to_str().expect("utf-8"),
        &url,
        "loader",
        &[("AUTOLOADER_WAREHOUSE", warehouse.to_str().expect("utf-8"))],
    );
    let run = api.scheduled_run(&pool, &token, ingestion).await;
    let run_id = run["id"].as_str().expect("run id").to_owned();
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["triggered_by"], "scheduler");
    assert_eq!(run["files_processed"], 1);
    assert_eq!(run["rows_ingested"], 1);

    let t = scan(&url, &warehouse, table).await.expect("table");
    assert_eq!(t.rows, [json!({"id": 1, "value": "test"})]);

    // Two more files: a manual run appends exactly their rows.
    s3::put_object(
        &bucket,
        "more/2.json",
        b"{\"id\": 2, \"value\": \"b\"}\n".to_vec(),
    )
    .await;
    s3::put_object(
        &bucket,
        "3.json",
        b"{\"id\": 3, \"value\": \"c\"}\n".to_vec(),
    )
    .await;
    let manual = api.trigger(&token, ingestion).await;
    let run = api
        .finished_run(&token, manual["id"].as_str().expect("id"))
        .await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["triggered_by"], "manual");
    // `*.json` stays within one path segment: more/2.json is not selected.
    assert_eq!(run["files_processed"], 1, "{run}");
    let t = scan(&url, &warehouse, table).await.expect("table");
    assert_eq!(t.rows.len(), 2);
    assert!(
        !worker.log().contains(&secret),
        "the secret never reaches the log"
    );
    let (_, _, shown) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{ingestion}/runs"),
            &token,
            None,
        )
        .await;
    assert!(!shown.to_string().contains(&secret));

    // An independent reader sees the same rows through the same catalog.
    let warehouse_url = format!("file://{}", warehouse.display());
    if let Some(py) = s3::iceberg_read(&url, &warehouse_url, table) {
        assert_eq!(py["row_count"], 2, "{py}");
        let mut ids: Vec<i64> = py["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .filter_map(|r| r["id"].as_i64())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 3]);
        let snapshots = py["snapshots"].as_array().expect("snapshots");
        let mut committed_by: Vec<&str> = snapshots
            .iter()
            .filter_map(|s| s["summary"]["autoloader.run-id"].as_str())
            .collect();
        committed_by.sort_unstable();
        let mut want = vec![run_id.as_str(), manual["id"].as_str().expect("id")];
        want.sort_unstable();
        assert_eq!(
            committed_by, want,
            "each snapshot names the run that committed it: {py}"
        );
    }
    let _ = std::fs::remove_dir_all(&warehouse);
}

/// An Avro object in a bucket loads, and pyiceberg reads back the types the writer schema gave.
#[sqlx::test(migrator = "MIGRATOR")]
async fn an_avro_object_loads_and_reads_back_with_its_types(pool: PgPool) {
    use apache_avro::types::Value as V;
    let bucket = bucket("test-avro-bucket");
    s3::create_bucket(&bucket).await;
    let schema = apache_avro::Schema::parse_str(
        r#"{"type": "record", "name": "Reading", "fields": [
            {"name": "id", "type": "long"},
            {"name": "sensor", "type": ["null", "string"]},
            {"name": "value", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
        ]}"#,
    )
    .expect("schema");
    let mut writer = apache_avro::Writer::with_codec(
        &schema,
        Vec::new(),
        apache_avro::Codec::Zstandard(apache_avro::ZstandardSettings::default()),
    );
    for (id, sensor) in [(1i64, Some("north")), (2, None)] {
        let sensor = match sensor {
            Some(s) => V::Union(1, Box::new(V::String(s.into()))),
            None => V::Union(0, Box::new(V::Null)),
        };
        writer
            .append_value_ref(&V::Record(vec![
                ("id".into(), V::Long(id)),
                ("sensor".into(), sensor),
                (
                    "value".into(),
                    V::Decimal(apache_avro::Decimal::from((1234 * id).to_be_bytes())),
                ),
                ("at".into(), V::TimestampMillis(1_767_225_600_000 + id)),
            ]))
            .expect("append");
    }
    s3::put_object(&bucket, "readings.avro", writer.into_inner().expect("avro")).await;

    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("e2e").await;
    let ingestion = api
        .create_ingestion(
            &token,
            json!({
                "name": "readings", "source_type": "s3",
                "source_path": format!("s3://{bucket}/"),
                "format_type": "avro", "destination_table": "iot.readings",
                "options": {"s3_endpoint": s3::endpoint(), "s3_allow_http": true,
                            "s3_access_key_id": s3::ACCESS_KEY, "s3_secret_access_key": s3::SECRET_KEY}
            }),
        )
        .await;
    let url = database_url(&pool);
    let warehouse = temp_dir("avro-s3-warehouse");
    let _worker = WorkerProcess::spawn(
        worker_bin().to_str().expect("utf-8"),
        &url,
        "loader",
        &[("AUTOLOADER_WAREHOUSE", warehouse.to_str().expect("utf-8"))],
    );
    let run = api.trigger(&token, ingestion).await;
    let run = api
        .finished_run(&token, run["id"].as_str().expect("id"))
        .await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 2);
    let table = "e2e.iot.readings";
    let t = scan(&url, &warehouse, table).await.expect("table");
    assert_eq!(t.columns, ["id", "sensor", "value", "at"]);

    let warehouse_url = format!("file://{}", warehouse.display());
    if let Some(py) = s3::iceberg_read(&url, &warehouse_url, table) {
        assert_eq!(py["row_count"], 2, "{py}");
        assert_eq!(
            py["rows"],
            json!([
                {"id": 1, "sensor": "north", "value": "12.34", "at": "2026-01-01T00:00:00.001000+00:00"},
                {"id": 2, "sensor": null, "value": "24.68", "at": "2026-01-01T00:00:00.002000+00:00"}
            ]),
            "{py}"
        );
    }
    let _ = std::fs::remove_dir_all(&warehouse);
}

/// A bucket that does not exist fails the run with the store's reason; nothing is created.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_missing_bucket_fails_the_run_clearly(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("e2e").await;
    let missing = bucket("no-such-bucket");
    let id = api
        .create_ingestion(
            &token,
            json!({
                "name": "nowhere", "source_type": "s3",
                "source_path": format!("s3://{missing}/logs/"),
                "format_type": "json", "destination_table": "ns.nowhere",
                "options": {"s3_endpoint": s3::endpoint(), "s3_allow_http": true,
                            "s3_access_key_id": s3::ACCESS_KEY, "s3_secret_access_key": s3::SECRET_KEY}
            }),
        )
        .await;
    let warehouse = temp_dir("missing-bucket-warehouse");
    let _worker = WorkerProcess::spawn(
        worker_bin().to_str().expect("utf-8"),
        &database_url(&pool),
        "loader",
        &[("AUTOLOADER_WAREHOUSE", warehouse.to_str().expect("utf-8"))],
    );
    let run = api.trigger(&token, id).await;
    let run = api
        .finished_run(&token, run["id"].as_str().expect("id"))
        .await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(error.contains("logs"), "names what it listed: {error}");
    assert!(
        scan(&database_url(&pool), &warehouse, "ns.nowhere")
            .await
            .is_none(),
        "no table is created"
    );
    let _ = std::fs::remove_dir_all(&warehouse);
}

/// Compressed objects load from S3 as they stream from the GET: gzipped JSON lines and a zstd
/// CSV, each known by its extension, every row once.
#[sqlx::test(migrator = "MIGRATOR")]
async fn compressed_objects_load_from_a_bucket(pool: PgPool) {
    use std::io::Write;
    let bucket = bucket("test-compressed-bucket");
    s3::create_bucket(&bucket).await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"id\": 1, \"value\": \"gz\"}\n{\"id\": 2, \"value\": \"gz\"}\n")
        .expect("gzip");
    s3::put_object(&bucket, "json/events.json.gz", gz.finish().expect("gzip")).await;
    let zst = zstd::encode_all(&b"id,name\n1,a\n2,b\n3,c\n"[..], 3).expect("zstd");
    s3::put_object(&bucket, "csv/people.csv.zst", zst).await;

    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("e2e").await;
    let ingestion = |name: &str, format: &str, prefix: &str, table: &str| {
        json!({
            "name": name, "source_type": "s3",
            "source_path": format!("s3://{bucket}/{prefix}/"),
            "format_type": format, "destination_table": table,
            "options": {"s3_endpoint": s3::endpoint(), "s3_region": s3::REGION,
                        "s3_allow_http": true, "s3_access_key_id": s3::ACCESS_KEY,
                        "s3_secret_access_key": s3::SECRET_KEY}
        })
    };
    let url = database_url(&pool);
    let warehouse = temp_dir("compressed-s3-warehouse");
    let _worker = WorkerProcess::spawn(
        worker_bin().to_str().expect("utf-8"),
        &url,
        "loader",
        &[("AUTOLOADER_WAREHOUSE", warehouse.to_str().expect("utf-8"))],
    );
    for (name, format, prefix, table, want) in [
        (
            "gzip json",
            "json",
            "json",
            "packed.events",
            vec![
                json!({"id": 1, "value": "gz"}),
                json!({"id": 2, "value": "gz"}),
            ],
        ),
        (
            "zstd csv",
            "csv",
            "csv",
            "packed.people",
            vec![
                json!({"id": 1, "name": "a"}),
                json!({"id": 2, "name": "b"}),
                json!({"id": 3, "name": "c"}),
            ],
        ),
    ] {
        let id = api
            .create_ingestion(&token, ingestion(name, format, prefix, table))
            .await;
        let run = api.trigger(&token, id).await;
        let run = api
            .finished_run(&token, run["id"].as_str().expect("id"))
            .await;
        assert_eq!(run["status"], "SUCCESS", "{name}: {run}");
        assert_eq!(run["files_processed"], 1, "{name}: {run}");
        assert_eq!(run["rows_ingested"], want.len(), "{name}: {run}");
        let (_, _, shown) = api
            .call("GET", &format!("/api/v1/ingestions/{id}"), &token, None)
            .await;
        let table = shown["iceberg_table"].as_str().expect("iceberg_table");
        let mut rows = scan(&url, &warehouse, table).await.expect("table").rows;
        rows.sort_by_key(|r| r["id"].as_i64());
        assert_eq!(rows, want, "{name}");
    }
    let _ = std::fs::remove_dir_all(&warehouse);
}
