//! Partitioned tables (`options.partition_by`): the table the loader creates is partitioned as
//! the option says, each run writes one data file per partition with its partition values, so an
//! independent reader (pyiceberg) prunes: a scan filtered on a partition column plans only the
//! files of the matching partitions and returns exactly the matching rows. A rejected file leaves
//! no row in any partition; a transform the column's type does not allow, or a column the table
//! lacks, fails the run naming the option and the column; an existing table keeps its spec.

use std::path::{Path, PathBuf};

use autoloader_tests::loader::{ids, Loader};
use autoloader_tests::s3;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// Every Parquet data file under the local warehouse, as paths relative to it.
fn data_files(w: &Loader) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    let root = PathBuf::from(w.warehouse.trim_start_matches("file://"));
    let mut found = Vec::new();
    walk(&root, &mut found);
    let mut names: Vec<String> = found
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .expect("under the warehouse")
                .display()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// The ids of `rows`, sorted.
fn row_ids(v: &Value) -> Vec<i64> {
    ids(v.as_array().expect("rows"))
}

fn jsonl(rows: &[(i64, &str, &str)]) -> Vec<u8> {
    rows.iter()
        .map(|(id, ts, region)| {
            format!(
                "{}\n",
                json!({"id": id, "ts": ts, "region": region, "amount": id * 10})
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// Orders partitioned by `day(ts)` and `region` from local files: one data file per partition,
/// under the partition's directory, named after the run; pyiceberg prunes by region and by day.
/// A file rejected under `skip_file` leaves no row in any partition.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_table_partitioned_by_day_and_region_is_pruned_by_readers(pool: PgPool) {
    let w = Loader::new(pool, "partitions-local").await;
    w.write(
        "a.json",
        &jsonl(&[
            (1, "2025-01-01T01:00:00Z", "eu"),
            (2, "2025-01-01T05:00:00Z", "us"),
            (3, "2025-01-02T03:00:00Z", "eu"),
        ]),
    );
    w.write(
        "b.json",
        &jsonl(&[
            (4, "2025-01-02T23:00:00Z", "eu"),
            (5, "2025-01-03T00:30:00Z", "us"),
            (6, "2025-01-01T12:00:00Z", "eu"),
        ]),
    );
    // A good row in a partition of its own, then a record that is not JSON: the file is
    // rejected, and its partition never appears.
    let mut bad = jsonl(&[(7, "2025-01-04T08:00:00Z", "ap")]);
    bad.extend_from_slice(b"{not json\n");
    w.write("c-bad.json", &bad);
    let ingestion = w
        .ingestion(
            "json",
            "sales.orders",
            json!({"options": {
                "partition_by": ["day(ts)", "region"],
                "schema_hints": "ts timestamp",
                "on_error": "skip_file",
            }}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 6, "{run}");
    assert_eq!(run["files_rejected"], 1, "{run}");
    let run_id = run["id"].as_str().expect("run id");

    let t = w.table("sales.orders").await.expect("table");
    assert_eq!(ids(&t.rows), [1, 2, 3, 4, 5, 6]);

    // One file per partition, in the partition's directory, named by the run and its writer.
    let files = data_files(&w);
    let dirs: Vec<&str> = files
        .iter()
        .map(|f| f.rsplit_once('/').expect("a directory").0)
        .collect();
    for (dir, want) in [
        ("ts_day=2025-01-01/region=eu", 1),
        ("ts_day=2025-01-01/region=us", 1),
        ("ts_day=2025-01-02/region=eu", 1),
        ("ts_day=2025-01-03/region=us", 1),
    ] {
        let n = dirs
            .iter()
            .filter(|d| d.ends_with(&format!("/data/{dir}")))
            .count();
        assert_eq!(n, want, "{dir}: {files:?}");
    }
    assert_eq!(
        files.len(),
        4,
        "no other data file, none of 2025-01-04: {files:?}"
    );
    for f in &files {
        let name = f.rsplit('/').next().expect("name");
        assert!(
            name.starts_with(&format!("run-{run_id}-a1-w")),
            "{name} names its run, attempt and writer"
        );
    }

    // The table API shows the spec and the files as committed.
    let (status, _, facts) = w
        .api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{ingestion}/table"),
            &w.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{facts}");
    let spec: Vec<(&str, &str)> = facts["partition_spec"]["fields"]
        .as_array()
        .expect("spec fields")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().expect("name"),
                f["transform"].as_str().expect("transform"),
            )
        })
        .collect();
    assert_eq!(spec, [("ts_day", "day"), ("region", "identity")], "{facts}");
    assert_eq!(facts["data_file_count"], 4, "{facts}");
    assert_eq!(facts["total_records"], 6, "{facts}");

    let read = |filter: &str| {
        s3::iceberg_read_filtered(
            &w.url,
            &w.warehouse,
            &format!("{}.sales.orders", w.namespace),
            Some(filter),
        )
    };
    if let Some(py) = read("region == 'eu'") {
        assert_eq!(
            py["partition_spec"],
            json!([
                {"name": "ts_day", "transform": "day", "source": "ts"},
                {"name": "region", "transform": "identity", "source": "region"},
            ]),
            "{py}"
        );
        assert_eq!(py["types"]["ts"], "timestamptz", "{py}");
        assert_eq!(py["data_files"].as_array().expect("files").len(), 4, "{py}");
        // Every data file carries its partition's values.
        let mut partitions: Vec<String> = py["data_files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| {
                f["partition"]["region"]
                    .as_str()
                    .expect("region")
                    .to_owned()
            })
            .collect();
        partitions.sort();
        assert_eq!(partitions, ["eu", "eu", "us", "us"], "{py}");
        assert_eq!(py["filtered"]["planned_files"], 2, "{py}");
        assert_eq!(row_ids(&py["filtered"]["rows"]), [1, 3, 4, 6], "{py}");
    }
    if let Some(py) = read("ts >= '2025-01-02T00:00:00+00:00' and ts < '2025-01-03T00:00:00+00:00'")
    {
        assert_eq!(py["filtered"]["planned_files"], 1, "{py}");
        assert_eq!(row_ids(&py["filtered"]["rows"]), [3, 4], "{py}");
    }
    if let Some(py) = read("region == 'ap'") {
        assert_eq!(
            py["filtered"]["planned_files"], 0,
            "the rejected file left nothing: {py}"
        );
    }

    // Another ingestion into the same table asks for another spec: the table keeps its own, and
    // the new rows go to their partitions.
    let other = w.root.join("more");
    std::fs::create_dir_all(&other).expect("dir");
    std::fs::write(
        other.join("d.json"),
        jsonl(&[(8, "2025-01-01T09:00:00Z", "us")]),
    )
    .expect("write");
    let second = w
        .ingestion(
            "json",
            "sales.orders",
            json!({
                "name": "more orders",
                "source_path": format!("file://{}/", other.display()),
                "options": {"partition_by": ["bucket(4, id)"], "schema_hints": "ts timestamp"},
            }),
        )
        .await;
    let run = w.run_by_hand(second).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let files = data_files(&w);
    assert_eq!(files.len(), 5, "{files:?}");
    assert_eq!(
        files
            .iter()
            .filter(|f| f.contains("/data/ts_day=2025-01-01/region=us/"))
            .count(),
        2,
        "{files:?}"
    );
    if let Some(py) = read("region == 'us'") {
        assert_eq!(py["partition_spec"][0]["name"], "ts_day", "{py}");
        assert_eq!(py["partition_spec"].as_array().expect("spec").len(), 2);
        assert_eq!(py["filtered"]["planned_files"], 3, "{py}");
        assert_eq!(row_ids(&py["filtered"]["rows"]), [2, 5, 8], "{py}");
    }
}

/// From an S3 source, partitioned by `region` and `bucket(4, id)`: a scan for one id plans only
/// the files of that id's bucket, and returns that row.
#[sqlx::test(migrator = "MIGRATOR")]
async fn an_s3_source_fills_a_bucketed_table(pool: PgPool) {
    let bucket = format!("partitions-{}", Uuid::now_v7().simple());
    s3::create_bucket(&bucket).await;
    let rows: Vec<(i64, &str, &str)> = (1..=40)
        .map(|i| {
            let region = if i % 2 == 0 { "eu" } else { "us" };
            (i, "2025-02-01T00:00:00Z", region)
        })
        .collect();
    s3::put_object(&bucket, "in/one.json", jsonl(&rows[..20])).await;
    s3::put_object(&bucket, "in/two.json", jsonl(&rows[20..])).await;
    let w = Loader::new(pool, "partitions-s3").await;
    let ingestion = w
        .api
        .create_ingestion(
            &w.token,
            json!({
                "name": "orders from s3",
                "source_type": "s3",
                "source_path": format!("s3://{bucket}/in/"),
                "format_type": "json",
                "destination_table": "sales.bucketed",
                "schedule_frequency": "daily",
                "schedule_time": "02:00",
                "schedule_timezone": "UTC",
                // Off: run by hand only, so a 02:00 tick cannot race the test's run.
                "schedule_enabled": false,
                "options": {
                    "s3_endpoint": s3::endpoint(),
                    "s3_region": s3::REGION,
                    "s3_access_key_id": s3::ACCESS_KEY,
                    "s3_secret_access_key": s3::SECRET_KEY,
                    "s3_allow_http": true,
                    "partition_by": ["region", "bucket(4, id)"],
                },
            }),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 40, "{run}");
    let t = w.table("sales.bucketed").await.expect("table");
    assert_eq!(ids(&t.rows), (1..=40).collect::<Vec<_>>());
    let files = data_files(&w);
    // Two regions, each with ids in all four buckets: one file per partition.
    assert_eq!(files.len(), 8, "one file per partition: {files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.contains("/data/region=eu/id_bucket=")
                || f.contains("/data/region=us/id_bucket=")),
        "{files:?}"
    );
    let table = format!("{}.sales.bucketed", w.namespace);
    if let Some(py) = s3::iceberg_read_filtered(&w.url, &w.warehouse, &table, Some("id == 7")) {
        assert_eq!(
            py["partition_spec"][1],
            json!({"name": "id_bucket", "transform": "bucket[4]", "source": "id"}),
            "{py}"
        );
        let all = py["data_files"].as_array().expect("files").len();
        assert_eq!(all, files.len(), "{py}");
        assert_eq!(py["filtered"]["planned_files"], 1, "{py}");
        assert_eq!(row_ids(&py["filtered"]["rows"]), [7], "{py}");
    }
}

/// `day(ts)` of a column inferred as a string (no hint), or of a column the first file lacks,
/// fails the run naming the option and the column; nothing is created.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_partition_the_columns_cannot_have_fails_the_run_naming_it(pool: PgPool) {
    let w = Loader::new(pool, "partitions-bad").await;
    w.write("a.json", &jsonl(&[(1, "2025-01-01T01:00:00Z", "eu")]));
    let _worker = w.worker("loader", &[]);
    for (table, partition_by, expect) in [
        (
            "sales.by_string",
            "day(ts)",
            "options.partition_by: day(ts): column 'ts' is string; day applies to date and \
             timestamp columns",
        ),
        (
            "sales.by_missing",
            "month(created)",
            "options.partition_by: month(created): column 'created' is not in the table",
        ),
    ] {
        let ingestion = w
            .ingestion(
                "json",
                table,
                json!({"options": {"partition_by": [partition_by]}}),
            )
            .await;
        let run = w.run_by_hand(ingestion).await;
        assert_eq!(run["status"], "FAILED", "{run}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(error.contains(expect), "{error}");
        assert!(w.table(table).await.is_none(), "{table} was not created");
        assert!(w.ledger(ingestion).await.is_empty());
    }
}

/// Hive-style directories become typed columns of their files' rows: `dt` a date, `n` a bigint
/// (inferred), `region` a string (URL-decoded), `__HIVE_DEFAULT_PARTITION__` null, and the path's
/// value wins over the file's. They can partition the table; a later value that is not of its
/// column's type fails the run naming the column.
#[sqlx::test(migrator = "MIGRATOR")]
async fn hive_directories_become_typed_columns(pool: PgPool) {
    let w = Loader::new(pool, "partitions-path").await;
    let put = |dir: &str, name: &str, rows: &str| {
        std::fs::create_dir_all(w.source.join(dir)).expect("dir");
        w.write(&format!("{dir}/{name}"), rows.as_bytes());
    };
    put(
        "dt=2025-01-01/region=eu/n=7",
        "a.json",
        "{\"id\": 1, \"region\": \"in the file\"}\n",
    );
    put(
        "dt=2025-01-02/region=us%2Fwest/n=8",
        "b.json",
        "{\"id\": 2}\n",
    );
    put(
        "misc/dt=__HIVE_DEFAULT_PARTITION__/region=eu/n=9",
        "c.json",
        "{\"id\": 3}\n",
    );
    let ingestion = w
        .ingestion(
            "json",
            "sales.by_path",
            json!({"options": {
                "partition_columns_from_path": true,
                "partition_by": ["dt", "region"],
            }}),
        )
        .await;
    let _worker = w.worker("loader", &[]);
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["rows_ingested"], 3, "{run}");
    let t = w.table("sales.by_path").await.expect("table");
    assert_eq!(
        t.columns,
        ["id", "dt", "region", "n"],
        "path columns last, in path order"
    );
    let table = format!("{}.sales.by_path", w.namespace);
    if let Some(py) =
        s3::iceberg_read_filtered(&w.url, &w.warehouse, &table, Some("dt == '2025-01-02'"))
    {
        assert_eq!(py["types"]["dt"], "date", "{py}");
        assert_eq!(py["types"]["n"], "long", "{py}");
        assert_eq!(py["types"]["region"], "string", "{py}");
        assert_eq!(
            py["rows"],
            json!([
                {"id": 1, "region": "eu", "dt": "2025-01-01", "n": 7},
                {"id": 2, "region": "us/west", "dt": "2025-01-02", "n": 8},
                {"id": 3, "region": "eu", "dt": null, "n": 9},
            ]),
            "{py}"
        );
        assert_eq!(py["data_files"].as_array().expect("files").len(), 3, "{py}");
        assert_eq!(py["filtered"]["planned_files"], 1, "{py}");
        assert_eq!(row_ids(&py["filtered"]["rows"]), [2], "{py}");
    }

    put("dt=soon/region=eu/n=1", "d.json", "{\"id\": 4}\n");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("d.json") && error.contains("column 'dt'") && error.contains("'soon'"),
        "{error}"
    );
}
