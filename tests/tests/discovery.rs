//! Incremental discovery with the shipped worker: a run lists only the keys after the greatest
//! one loaded, so a file that arrives late (sorting before it) waits for the next full listing,
//! due `full_listing_interval` after the last one a run committed; the tests make it due by
//! moving that instant back. Nothing is ever loaded twice. Local date-partitioned trees and S3.

use autoloader_tests::loader::{ids, Loader};
use autoloader_tests::s3;
use autoloader_tests::table::scan;
use autoloader_tests::{database_url, temp_dir, worker_bin, TestApi, WorkerProcess};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// What the worker's log says run `run_id` listed: `full` or `incremental`, and how many keys.
fn listing(worker: &WorkerProcess, run: &Value) -> (String, i64) {
    let run_id = run["id"].as_str().expect("run id");
    worker
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "listed the source" && l["span"]["run_id"] == run_id)
        .map(|l| {
            (
                l["listing"].as_str().unwrap_or("").to_owned(),
                l["keys_listed"].as_i64().unwrap_or(-1),
            )
        })
        .unwrap_or_else(|| panic!("no listing logged for run {run_id}:\n{}", worker.log()))
}

/// The last full listing recorded for `ingestion`: the run that did it and its keys.
async fn last_full_listing(pool: &PgPool, ingestion: Uuid) -> Option<(String, i64)> {
    sqlx::query_as::<_, (Uuid, i64)>(
        "select run_id, keys_listed from discovery_listings where ingestion_id = $1",
    )
    .bind(ingestion)
    .fetch_optional(pool)
    .await
    .expect("discovery_listings")
    .map(|(run, keys)| (run.to_string(), keys))
}

/// Makes `ingestion`'s next full listing due: its last one moves two days back.
async fn make_full_listing_due(pool: &PgPool, ingestion: Uuid) {
    let moved = sqlx::query(
        "update discovery_listings set last_full_listing_at = last_full_listing_at - interval '2 days'
         where ingestion_id = $1",
    )
    .bind(ingestion)
    .execute(pool)
    .await
    .expect("move the last full listing back");
    assert_eq!(moved.rows_affected(), 1, "a full listing was recorded");
}

fn ok(run: &Value) -> i64 {
    assert_eq!(run["status"], "SUCCESS", "{run}");
    run["files_processed"].as_i64().expect("files_processed")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_local_date_tree_is_listed_from_its_newest_directory_and_a_late_file_waits_for_the_full_listing(
    pool: PgPool,
) {
    let w = Loader::new(pool.clone(), "discovery-local").await;
    let mut id = 0;
    let mut put = |path: &str| {
        id += 1;
        let file = w.source.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, format!("{{\"id\": {id}}}\n")).expect("write");
    };
    for day in 1..=20 {
        for part in 0..5 {
            put(&format!("dt=2025-01-{day:02}/part-{part}.json"));
        }
    }
    let ingestion = w
        .ingestion(
            "json",
            "events.daily",
            json!({"options": {"discovery": "incremental", "full_listing_interval": "1d"}}),
        )
        .await;
    let worker = w.worker("loader", &[]);

    // No full listing yet: the first run lists everything, and that listing is recorded.
    let first = w.run_by_hand(ingestion).await;
    assert_eq!(ok(&first), 100);
    assert_eq!(listing(&worker, &first), ("full".to_owned(), 100));
    assert_eq!(
        last_full_listing(&pool, ingestion).await,
        Some((first["id"].as_str().expect("id").to_owned(), 100))
    );

    // Two new days, and a file that arrived late in an old one.
    put("dt=2025-01-21/part-0.json");
    put("dt=2025-01-22/part-0.json");
    put("dt=2025-01-05/late.json");
    let second = w.run_by_hand(ingestion).await;
    assert_eq!(ok(&second), 2, "the new days, not the late file");
    assert_eq!(
        listing(&worker, &second),
        ("incremental".to_owned(), 2),
        "only the newest directories are listed"
    );
    let third = w.run_by_hand(ingestion).await;
    assert_eq!(ok(&third), 0);
    assert_eq!(listing(&worker, &third), ("incremental".to_owned(), 0));
    assert!(
        !w.ledger(ingestion)
            .await
            .iter()
            .any(|(name, _)| name == "dt=2025-01-05/late.json"),
        "the late file waits for the full listing"
    );

    // The full listing is due: it finds the late file, and records itself.
    make_full_listing_due(&pool, ingestion).await;
    let fourth = w.run_by_hand(ingestion).await;
    assert_eq!(ok(&fourth), 1);
    assert_eq!(listing(&worker, &fourth), ("full".to_owned(), 103));
    assert_eq!(
        last_full_listing(&pool, ingestion).await,
        Some((fourth["id"].as_str().expect("id").to_owned(), 103))
    );
    // A full listing that finds nothing new is recorded too.
    make_full_listing_due(&pool, ingestion).await;
    let fifth = w.run_by_hand(ingestion).await;
    assert_eq!(ok(&fifth), 0);
    assert_eq!(listing(&worker, &fifth), ("full".to_owned(), 103));
    assert_eq!(
        last_full_listing(&pool, ingestion).await,
        Some((fifth["id"].as_str().expect("id").to_owned(), 103))
    );

    // Every file once, and its rows once.
    let ledger = w.ledger(ingestion).await;
    assert_eq!(ledger.len(), 103);
    assert!(ledger.iter().all(|(_, rows)| *rows == 1), "{ledger:?}");
    let t = w.table("events.daily").await.expect("table");
    assert_eq!(ids(&t.rows), (1..=103).collect::<Vec<i64>>());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_s3_prefix_is_listed_after_the_greatest_key_in_key_order(pool: PgPool) {
    let bucket = format!("discovery-{}", Uuid::now_v7().simple());
    s3::create_bucket(&bucket).await;
    let mut id = 0;
    let mut body = || {
        id += 1;
        format!("{{\"id\": {id}}}\n").into_bytes()
    };
    // Uploaded newest key first: oldest first would take them the other way round.
    for day in [3, 2, 1] {
        s3::put_object(&bucket, &format!("in/dt=2025-01-0{day}/x.json"), body()).await;
    }
    s3::put_object(&bucket, "outside/dt=2025-01-09/x.json", body()).await;

    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("e2e").await;
    let ingestion = api
        .create_ingestion(
            &token,
            json!({
                "name": "events", "source_type": "s3",
                "source_path": format!("s3://{bucket}/in/"),
                "format_type": "json", "destination_table": "events.s3",
                "options": {"s3_endpoint": s3::endpoint(), "s3_allow_http": true,
                            "s3_access_key_id": s3::ACCESS_KEY,
                            "s3_secret_access_key": s3::SECRET_KEY,
                            "discovery": "incremental", "full_listing_interval": "6h",
                            "max_files_per_run": 2}
            }),
        )
        .await;
    let url = database_url(&pool);
    let warehouse = temp_dir("discovery-s3-warehouse");
    let worker = WorkerProcess::spawn(
        worker_bin().to_str().expect("utf-8"),
        &url,
        "loader",
        &[("AUTOLOADER_WAREHOUSE", warehouse.to_str().expect("utf-8"))],
    );
    let run = || async {
        let run = api.trigger(&token, ingestion).await;
        api.finished_run(&token, run["id"].as_str().expect("id"))
            .await
    };
    let loaded = || async {
        sqlx::query_scalar::<_, String>(
            "select path from loaded_files where ingestion_id = $1 order by path",
        )
        .bind(ingestion)
        .fetch_all(&pool)
        .await
        .expect("ledger")
    };
    let key = |k: &str| format!("s3://{bucket}/in/{k}");

    // The first keys, not the oldest files; the full listing left one behind, so it is not
    // recorded: the next run lists everything again and takes the rest.
    let first = run().await;
    assert_eq!(ok(&first), 2);
    assert_eq!(listing(&worker, &first), ("full".to_owned(), 3));
    assert_eq!(
        loaded().await,
        [key("dt=2025-01-01/x.json"), key("dt=2025-01-02/x.json")]
    );
    assert_eq!(last_full_listing(&pool, ingestion).await, None);
    let second = run().await;
    assert_eq!(ok(&second), 1);
    assert_eq!(listing(&worker, &second), ("full".to_owned(), 3));
    assert_eq!(
        last_full_listing(&pool, ingestion).await,
        Some((second["id"].as_str().expect("id").to_owned(), 3))
    );

    // Three new keys and a late one: two runs take the new ones, in key order, listing only
    // what follows the greatest key loaded.
    for day in [6, 5, 4] {
        s3::put_object(&bucket, &format!("in/dt=2025-01-0{day}/x.json"), body()).await;
    }
    s3::put_object(&bucket, "in/dt=2025-01-02/late.json", body()).await;
    let third = run().await;
    assert_eq!(ok(&third), 2);
    assert_eq!(listing(&worker, &third), ("incremental".to_owned(), 3));
    let fourth = run().await;
    assert_eq!(ok(&fourth), 1);
    assert_eq!(listing(&worker, &fourth), ("incremental".to_owned(), 1));
    assert_eq!(
        loaded().await,
        [
            key("dt=2025-01-01/x.json"),
            key("dt=2025-01-02/x.json"),
            key("dt=2025-01-03/x.json"),
            key("dt=2025-01-04/x.json"),
            key("dt=2025-01-05/x.json"),
            key("dt=2025-01-06/x.json"),
        ],
        "the late key waits"
    );

    // The full listing, due, finds it.
    make_full_listing_due(&pool, ingestion).await;
    let fifth = run().await;
    assert_eq!(ok(&fifth), 1);
    assert_eq!(listing(&worker, &fifth), ("full".to_owned(), 7));
    assert!(loaded().await.contains(&key("dt=2025-01-02/late.json")));
    let sixth = run().await;
    assert_eq!(ok(&sixth), 0);
    assert_eq!(listing(&worker, &sixth), ("incremental".to_owned(), 0));

    // Seven files, each once (the one outside the prefix never).
    let table = "e2e.events.s3";
    let t = scan(&url, &warehouse, table).await.expect("table");
    let mut want: Vec<i64> = (1..=3).chain(5..=8).collect();
    want.sort_unstable();
    assert_eq!(ids(&t.rows), want);
    let warehouse_url = format!("file://{}", warehouse.display());
    if let Some(py) = s3::iceberg_read(&url, &warehouse_url, table) {
        assert_eq!(py["row_count"], 7, "{py}");
    }
    let _ = std::fs::remove_dir_all(&warehouse);
}

/// A bad interval or mode is refused, naming the option.
#[sqlx::test(migrator = "MIGRATOR")]
async fn discovery_options_are_checked(pool: PgPool) {
    let w = Loader::new(pool, "discovery-options").await;
    for (options, field) in [
        (
            json!({"discovery": "incremental", "full_listing_interval": "30s"}),
            "options.full_listing_interval",
        ),
        (
            json!({"full_listing_interval": "400d"}),
            "options.full_listing_interval",
        ),
        (json!({"discovery": "sometimes"}), "options.discovery"),
    ] {
        let (status, _, body) = w
            .api
            .call(
                "POST",
                "/api/v1/ingestions",
                &w.token,
                Some(json!({
                    "name": "bad", "source_type": "local",
                    "source_path": format!("file://{}/", w.source.display()),
                    "format_type": "json", "destination_table": "a.b",
                    "options": options,
                })),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        autoloader_tests::assert_field_error(&body, field, "");
    }
}
