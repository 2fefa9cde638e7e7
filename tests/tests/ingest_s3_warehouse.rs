//! The warehouse on S3: the shipped `autoloader-worker` binary loads local files into an Iceberg
//! table whose metadata and data files live in a bucket of the test S3 server
//! (`AUTOLOADER_WAREHOUSE=s3://bucket/wh`), and the table reads back through the same storage.

use autoloader_tests::loader::{ids, Loader};
use autoloader_tests::s3;
use autoloader_worker::ingest::warehouse::{S3Settings, WarehouseStorageFactory, PART_SIZE};
use futures::TryStreamExt;
use iceberg::io::{FileIOBuilder, FileRead};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;
const TABLE: &str = "lake.events";

/// The test server's settings, given to the storage explicitly (the test process's environment
/// is left alone).
fn storage() -> WarehouseStorageFactory {
    WarehouseStorageFactory::with_s3(S3Settings {
        endpoint: Some(s3::endpoint()),
        region: Some(s3::REGION.to_owned()),
        access_key_id: Some(s3::ACCESS_KEY.to_owned()),
        secret_access_key: Some(s3::SECRET_KEY.to_owned()),
        allow_http: Some(true),
        virtual_hosted_style_request: None,
    })
}

/// A fresh bucket on the test server.
async fn bucket(name: &str) -> String {
    let bucket = format!("{name}-{}", Uuid::now_v7().simple());
    s3::create_bucket(&bucket).await;
    bucket
}

/// Every key in `bucket` under `prefix`, sorted.
async fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = s3::store(bucket)
        .list(Some(&ObjectPath::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list the bucket");
    keys.sort();
    keys
}

/// A world whose warehouse is a fresh prefix in a fresh bucket of the test server.
async fn world(pool: PgPool, name: &str) -> (Loader, String) {
    let bucket = bucket(name).await;
    let endpoint = s3::endpoint();
    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY),
        ("AWS_REGION", s3::REGION),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let loader =
        Loader::with_warehouse(pool, name, format!("s3://{bucket}/wh"), storage(), env).await;
    (loader, bucket)
}

async fn metadata_location(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "select metadata_location from iceberg_catalog.iceberg_tables
         where table_namespace = 'data_eng.lake' and table_name = 'events'",
    )
    .fetch_one(pool)
    .await
    .expect("catalog row")
}

fn with_suffix<'a>(keys: &'a [String], dir: &str, suffix: &str) -> Vec<&'a String> {
    keys.iter()
        .filter(|k| k.contains(dir) && k.ends_with(suffix))
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_warehouse_on_s3_holds_the_table_and_takes_new_files_only(pool: PgPool) {
    let (w, bucket) = world(pool, "s3-warehouse").await;
    w.write(
        "a.json",
        b"{\"id\": 1, \"value\": \"test\"}\n{\"id\": 2, \"value\": \"more\"}\n",
    );
    w.write("b.json", br#"[{"id": 3, "value": "array"}]"#);
    let ingestion = w.ingestion("json", TABLE, json!({})).await;
    let _worker = w.worker("s3-loader", &[]);

    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 2);
    assert_eq!(run["rows_ingested"], 3);
    assert!(run["bytes_written"].as_i64().unwrap_or(0) > 0, "{run}");

    let t = w.table(TABLE).await.expect("the table exists");
    assert_eq!(t.columns, ["id", "value"]);
    assert_eq!(ids(&t.rows), [1, 2, 3]);
    assert!(
        t.rows.contains(&json!({"id": 1, "value": "test"})),
        "{:?}",
        t.rows
    );
    assert_eq!(t.snapshots, 1);

    // The catalog points into the bucket, and the bucket holds the table's files.
    let location = metadata_location(&w.pool).await;
    let table_prefix = format!("s3://{}/wh/data_eng/lake/events/metadata/", bucket);
    assert!(
        location.starts_with(&table_prefix) && location.ends_with(".metadata.json"),
        "{location}"
    );
    let first = keys(&bucket, "wh").await;
    let metadata = with_suffix(
        &first,
        "wh/data_eng/lake/events/metadata/",
        ".metadata.json",
    );
    let data = with_suffix(&first, "wh/data_eng/lake/events/data/", ".parquet");
    assert!(
        !metadata.is_empty(),
        "no metadata.json in the bucket: {first:?}"
    );
    assert!(
        !data.is_empty(),
        "no Parquet data file in the bucket: {first:?}"
    );
    assert!(
        with_suffix(&first, "wh/data_eng/lake/events/metadata/", ".avro").len() >= 2,
        "manifest list and manifest: {first:?}"
    );

    // One more file: the next run appends exactly its rows, in new data files.
    w.write("c.json", b"{\"id\": 4, \"value\": \"c\"}\n");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 1);
    assert_eq!(run["rows_ingested"], 1);
    let t = w.table(TABLE).await.expect("the table exists");
    assert_eq!(ids(&t.rows), [1, 2, 3, 4]);
    assert_eq!(t.snapshots, 2);
    let second = keys(&bucket, "wh").await;
    assert!(
        with_suffix(&second, "wh/data_eng/lake/events/data/", ".parquet").len() > data.len(),
        "{second:?}"
    );
    assert!(
        first.iter().all(|k| second.contains(k)),
        "nothing was rewritten or removed: {first:?} vs {second:?}"
    );
    assert_ne!(metadata_location(&w.pool).await, location);

    assert_eq!(
        w.ledger(ingestion).await,
        [
            ("a.json".to_owned(), 2),
            ("b.json".to_owned(), 1),
            ("c.json".to_owned(), 1)
        ]
    );
}

/// The storage on its own: a file larger than a part goes up as a multipart upload and reads
/// back whole and by range; small files go up in one piece; deleting a prefix empties it.
#[tokio::test]
async fn the_storage_writes_large_files_in_parts_and_reads_them_back() {
    let bucket = bucket("s3-storage").await;
    let io = FileIOBuilder::new(std::sync::Arc::new(storage())).build();
    let big = format!("s3://{bucket}/wh/t/data/big.bin");
    let small = format!("s3://{bucket}/wh/t/metadata/small.json");
    let outside = format!("s3://{bucket}/wh/tx/keep.json");

    // 2.5 parts, written in 1 MiB chunks of distinct content.
    let total = PART_SIZE * 5 / 2;
    let content: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let out = io.new_output(&big).expect("output");
    assert!(!out.exists().await.expect("exists"));
    let mut writer = out.writer().await.expect("writer");
    for chunk in content.chunks(1024 * 1024) {
        writer.write(chunk.to_vec().into()).await.expect("write");
    }
    writer.close().await.expect("close");
    assert!(writer.close().await.is_err(), "closing twice is an error");

    let input = io.new_input(&big).expect("input");
    assert!(input.exists().await.expect("exists"));
    assert_eq!(input.metadata().await.expect("metadata").size, total as u64);
    assert!(input.read().await.expect("read").as_ref() == content.as_slice());
    let reader = input.reader().await.expect("reader");
    let (from, to) = (PART_SIZE as u64 - 10, PART_SIZE as u64 + 10);
    assert_eq!(
        reader.read(from..to).await.expect("range").as_ref(),
        &content[from as usize..to as usize]
    );

    let mut writer = io
        .new_output(&small)
        .expect("output")
        .writer()
        .await
        .expect("writer");
    writer.write(b"{\"a\":".to_vec().into()).await.expect("w");
    writer.write(b" 1}".to_vec().into()).await.expect("w");
    writer.close().await.expect("close");
    io.new_output(&outside)
        .expect("output")
        .write(b"{}".to_vec().into())
        .await
        .expect("write");
    assert_eq!(
        io.new_input(&small)
            .expect("input")
            .read()
            .await
            .expect("read")
            .as_ref(),
        b"{\"a\": 1}"
    );

    // Missing objects: `exists` says no, reading names the location.
    let missing = format!("s3://{bucket}/wh/t/nope.json");
    assert!(!io.exists(&missing).await.expect("exists"));
    let err = io
        .new_input(&missing)
        .expect("input")
        .read()
        .await
        .expect_err("missing");
    assert!(err.to_string().contains(&missing), "{err}");

    io.delete_prefix(format!("s3://{bucket}/wh/t"))
        .await
        .expect("delete prefix");
    assert_eq!(keys(&bucket, "wh").await, ["wh/tx/keep.json"]);
    io.delete(&outside).await.expect("delete");
    io.delete(&outside)
        .await
        .expect("deleting a missing object is fine");
    assert!(keys(&bucket, "wh").await.is_empty());
}

/// A tenant may not read the warehouse, where every tenant's tables are kept: not through a
/// source in it, nor one above it, whatever keys the source gives. Its run fails saying so and
/// loads nothing; the table it aimed at stays as it was.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_source_in_the_warehouse_is_refused(pool: PgPool) {
    let (w, bucket) = world(pool, "s3-warehouse-source").await;
    w.write("a.json", b"{\"id\": 1, \"value\": \"test\"}\n");
    let victim = w.ingestion("json", TABLE, json!({})).await;
    let _worker = w.worker("s3-loader", &[]);
    let run = w.run_by_hand(victim).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");

    for (n, path) in [format!("s3://{bucket}/wh/"), format!("s3a://{bucket}/")]
        .into_iter()
        .enumerate()
    {
        let thief = w
            .ingestion(
                "parquet",
                &format!("stolen.t{n}"),
                json!({
                    "name": format!("thief {n}"),
                    "source_type": "s3",
                    "source_path": path,
                    "options": {
                        "s3_endpoint": s3::endpoint(), "s3_region": s3::REGION,
                        "s3_allow_http": true,
                        "s3_access_key_id": s3::ACCESS_KEY, "s3_secret_access_key": s3::SECRET_KEY,
                    },
                }),
            )
            .await;
        let run = w.run_by_hand(thief).await;
        assert_eq!(run["status"], "FAILED", "{path}: {run}");
        let error = run["error"].as_str().unwrap_or("");
        assert!(error.contains("overlaps the warehouse"), "{error}");
        assert_eq!(run["files_processed"], 0);
        assert!(w.table(&format!("stolen.t{n}")).await.is_none());
    }
    let t = w.table(TABLE).await.expect("the table exists");
    assert_eq!(ids(&t.rows), [1]);
}

/// A worker checks a stored endpoint again before each run: one changed at a psql prompt to the
/// metadata service fails its run, saying why, without a request being sent.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_stored_endpoint_outside_the_allowlist_fails_its_run(pool: PgPool) {
    let (w, bucket) = world(pool, "s3-egress").await;
    let ingestion = w
        .ingestion(
            "json",
            "lake.remote",
            json!({
                "source_type": "s3",
                "source_path": format!("s3://{bucket}/in/"),
                "options": {
                    "s3_endpoint": s3::endpoint(), "s3_region": s3::REGION, "s3_allow_http": true,
                    "s3_access_key_id": s3::ACCESS_KEY, "s3_secret_access_key": s3::SECRET_KEY,
                },
            }),
        )
        .await;
    sqlx::query(
        "update ingestions set options = options || '{\"s3_endpoint\": \"http://169.254.169.254\"}'
         where id = $1",
    )
    .bind(ingestion)
    .execute(&w.pool)
    .await
    .expect("edit at psql");
    let _worker = w.worker("s3-loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(error.contains("allowlist"), "{error}");
}
