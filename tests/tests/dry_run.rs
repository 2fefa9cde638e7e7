//! Dry runs over real HTTP, with the shipped worker answering them: what they list is exactly
//! what the next real run then loads (local and S3 sources, caps leaving files for later), the
//! schema a new table gets and the columns an existing one gains, the first rows decoded, an
//! unsaved definition, bad definitions, tenant isolation, nothing written, the CLI, and the
//! answer when no worker is there.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use autoloader_tests::loader::Loader;
use autoloader_tests::{
    api_bin, assert_field_error, s3, TestApi, TEST_S3_ALLOWLIST, TEST_SECRET_KEY,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// Asks for a dry run of a saved ingestion; asserts 200.
async fn dry_run(api: &TestApi, token: &str, ingestion: Uuid) -> Value {
    let (status, _, body) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{ingestion}/dry-run"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "dry run: {body}");
    body
}

/// The last path segments of a list of files.
fn names(files: &Value) -> Vec<String> {
    files
        .as_array()
        .unwrap_or_else(|| panic!("a list of files: {files}"))
        .iter()
        .map(|f| {
            let path = f["path"].as_str().expect("path");
            path.rsplit('/').next().expect("name").to_owned()
        })
        .collect()
}

fn columns(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list of columns: {list}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                c["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Nothing but dry runs' own rows was written, and those hold no definition.
async fn assert_nothing_written(pool: &PgPool) {
    assert_eq!(count(pool, "select count(*) from runs").await, 0, "no runs");
    assert_eq!(
        count(pool, "select count(*) from loaded_files").await,
        0,
        "no ledger rows"
    );
    assert_eq!(
        count(pool, "select count(*) from discovery_listings").await,
        0,
        "no listing recorded"
    );
    assert_eq!(
        count(
            pool,
            "select count(*) from dry_runs where definition is not null or status <> 'done'"
        )
        .await,
        0,
        "every dry run answered and its definition dropped"
    );
}

/// The file names in the ledger of `ingestion`.
async fn ledger_names(pool: &PgPool, ingestion: Uuid) -> Vec<String> {
    let paths: Vec<String> =
        sqlx::query_scalar("select path from loaded_files where ingestion_id = $1 order by path")
            .bind(ingestion)
            .fetch_all(pool)
            .await
            .expect("ledger");
    paths
        .iter()
        .map(|p| p.rsplit('/').next().expect("name").to_owned())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_local_dry_run_lists_exactly_what_the_next_run_loads_and_writes_nothing(pool: PgPool) {
    let l = Loader::new(pool.clone(), "dry-run-local").await;
    let base = SystemTime::now() - Duration::from_secs(3600);
    for i in 1..=5u64 {
        let name = format!("f{i}.json");
        let record = match i {
            3 => json!({"id": i, "name": format!("n{i}"), "note": "x".repeat(500)}),
            _ => json!({"id": i, "name": format!("n{i}")}),
        };
        l.write(&name, format!("{record}\n").as_bytes());
        // Oldest first is the order runs take files: f1 is the oldest.
        std::fs::File::options()
            .write(true)
            .open(l.source.join(&name))
            .expect("open")
            .set_modified(base + Duration::from_secs(60 * i))
            .expect("mtime");
    }
    let ingestion = l
        .ingestion(
            "json",
            "dry.events",
            json!({"options": {"max_files_per_run": 2}}),
        )
        .await;
    let _worker = l.worker("dry-local", &[]);

    let dry = dry_run(&l.api, &l.token, ingestion).await;
    assert_eq!(dry["complete"], true, "{dry}");
    assert_eq!(dry["status"], "done");
    assert_eq!(names(&dry["files"]), ["f1.json", "f2.json"], "{dry}");
    assert_eq!(
        names(&dry["left_for_later"]),
        ["f3.json", "f4.json", "f5.json"],
        "the cap leaves these for later"
    );
    assert_eq!(dry["more_left_for_later"], false);
    assert!(dry["files"][0]["size"].as_u64().is_some_and(|s| s > 0));
    assert!(dry["files"][0]["last_modified"].is_string());
    let table = &dry["table"];
    assert_eq!(table["name"], format!("{}.dry.events", l.namespace));
    assert_eq!(table["exists"], false);
    assert_eq!(
        columns(&table["create_columns"]),
        [
            ("id".into(), "long".into()),
            ("name".into(), "string".into())
        ]
    );
    assert_eq!(
        dry["rows"],
        json!([{"id": 1, "name": "n1"}, {"id": 2, "name": "n2"}])
    );
    assert_nothing_written(&pool).await;
    assert!(
        l.table("dry.events").await.is_none(),
        "a dry run creates no table"
    );

    // The next real run loads exactly what the dry run listed.
    let run = l.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 2);
    assert_eq!(ledger_names(&pool, ingestion).await, names(&dry["files"]));

    // The table exists now: the next files' new column is one the run would add.
    let dry = dry_run(&l.api, &l.token, ingestion).await;
    assert_eq!(names(&dry["files"]), ["f3.json", "f4.json"], "{dry}");
    assert_eq!(names(&dry["left_for_later"]), ["f5.json"]);
    assert_eq!(dry["table"]["exists"], true);
    assert_eq!(dry["table"]["create_columns"], Value::Null);
    assert_eq!(
        columns(&dry["table"]["add_columns"]),
        [("note".into(), "string".into())]
    );
    let note = dry["rows"][0]["note"]
        .as_str()
        .expect("the new column decoded");
    assert_eq!(note.chars().count(), 201, "long values are cut: {note}");

    // The CLI answers the same, through the same queue.
    let out = Command::new(api_bin())
        .env_clear()
        .env("DATABASE_URL", &l.url)
        .env("AUTOLOADER_SECRET_KEY", TEST_SECRET_KEY)
        .args(["dry-run", "--tenant", "data-eng", "--ingestion"])
        .arg(ingestion.to_string())
        .output()
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).expect("the CLI prints JSON");
    assert_eq!(cli["files"], dry["files"]);
    assert_eq!(cli["table"], dry["table"]);

    let run = l.run_by_hand(ingestion).await;
    assert_eq!(run["files_processed"], 2, "{run}");
    assert_eq!(
        ledger_names(&pool, ingestion).await,
        ["f1.json", "f2.json", "f3.json", "f4.json"]
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_s3_dry_run_of_an_unsaved_then_saved_definition_matches_the_runs(pool: PgPool) {
    let bucket = format!("dry-run-{}", Uuid::now_v7().simple());
    s3::create_bucket(&bucket).await;
    for (key, rows) in [
        ("in/a.csv", "1,a\n2,b\n"),
        ("in/b.csv", "3,c\n"),
        ("in/c.csv", "4,d\n"),
    ] {
        s3::put_object(&bucket, key, format!("id,label\n{rows}").into_bytes()).await;
    }
    s3::put_object(&bucket, "in/README.txt", b"not data".to_vec()).await;
    let l = Loader::new(pool.clone(), "dry-run-s3").await;
    let secret = format!("secret-{}", Uuid::now_v7().simple());
    let body = json!({
        "name": "s3 csv",
        "source_type": "s3",
        "source_path": format!("s3://{bucket}/in/"),
        "format_type": "csv",
        "destination_table": "dry.csv_rows",
        "options": {
            "s3_endpoint": s3::endpoint(),
            "s3_region": s3::REGION,
            "s3_access_key_id": s3::ACCESS_KEY,
            "s3_secret_access_key": secret,
            "s3_allow_http": true,
            "glob": "*.csv",
            "discovery": "incremental",
        }
    });
    let _worker = l.worker("dry-s3", &[]);

    // An unsaved definition: everything under the prefix is new to it.
    let (status, _, unsaved) = l
        .api
        .call(
            "POST",
            "/api/v1/ingestions/dry-run",
            &l.token,
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 200, "{unsaved}");
    assert_eq!(unsaved["ingestion_id"], Value::Null);
    assert_eq!(
        sorted(names(&unsaved["files"])),
        ["a.csv", "b.csv", "c.csv"]
    );
    assert_eq!(unsaved["listing"], "full");
    assert_eq!(
        columns(&unsaved["table"]["create_columns"]),
        [
            ("id".into(), "long".into()),
            ("label".into(), "string".into())
        ]
    );
    assert_eq!(
        unsaved["rows"].as_array().map(Vec::len),
        Some(4),
        "{unsaved}"
    );
    assert_nothing_written(&pool).await;
    let stored: Vec<Value> = sqlx::query_scalar("select result from dry_runs")
        .fetch_all(&pool)
        .await
        .expect("dry runs");
    assert!(
        stored.iter().all(|r| !r.to_string().contains(&secret)),
        "the secret is in no dry run's row"
    );

    // The CLI takes the same unsaved definition from a file.
    let file = l.root.join("definition.json");
    std::fs::write(&file, body.to_string()).expect("definition file");
    let out = Command::new(api_bin())
        .env_clear()
        .env("DATABASE_URL", &l.url)
        .env("AUTOLOADER_SECRET_KEY", TEST_SECRET_KEY)
        .env("AUTOLOADER_S3_ENDPOINT_ALLOWLIST", TEST_S3_ALLOWLIST)
        .args(["dry-run", "--tenant", "data-eng", "--definition"])
        .arg(&file)
        .output()
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).expect("the CLI prints JSON");
    assert_eq!(cli["files"], unsaved["files"]);
    // A bad one is refused naming the field, and nothing is asked of the workers.
    let mut bad = body.clone();
    bad["format_type"] = json!("xml");
    std::fs::write(&file, bad.to_string()).expect("definition file");
    let before = count(&pool, "select count(*) from dry_runs").await;
    let out = Command::new(api_bin())
        .env_clear()
        .env("DATABASE_URL", &l.url)
        .env("AUTOLOADER_SECRET_KEY", TEST_SECRET_KEY)
        .env("AUTOLOADER_S3_ENDPOINT_ALLOWLIST", TEST_S3_ALLOWLIST)
        .args(["dry-run", "--tenant", "data-eng", "--definition"])
        .arg(&file)
        .output()
        .expect("run the CLI");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("format_type"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&pool, "select count(*) from dry_runs").await, before);

    let ingestion = l.api.create_ingestion(&l.token, body).await;
    let dry = dry_run(&l.api, &l.token, ingestion).await;
    assert_eq!(dry["files"], unsaved["files"]);
    let run = l.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    assert_eq!(run["files_processed"], 3);
    assert_eq!(
        ledger_names(&pool, ingestion).await,
        sorted(names(&dry["files"]))
    );

    // One more file: the ledger keeps the loaded ones out, the listing starts after them.
    s3::put_object(&bucket, "in/d.csv", b"id,label\n5,e\n".to_vec()).await;
    let dry = dry_run(&l.api, &l.token, ingestion).await;
    assert_eq!(names(&dry["files"]), ["d.csv"], "{dry}");
    assert_eq!(dry["listing"], "incremental");
    assert_eq!(dry["rows"], json!([{"id": 5, "label": "e"}]));
    let run = l.run_by_hand(ingestion).await;
    assert_eq!(run["files_processed"], 1, "{run}");
    assert_eq!(
        ledger_names(&pool, ingestion).await,
        ["a.csv", "b.csv", "c.csv", "d.csv"]
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_definitions_and_other_tenants_are_refused_before_anything_is_asked(pool: PgPool) {
    let l = Loader::new(pool.clone(), "dry-run-refused").await;
    let ingestion = l.ingestion("json", "dry.events", json!({})).await;

    let mut bad = json!({
        "name": "bad",
        "source_type": "local",
        "source_path": format!("file://{}/", l.source.display()),
        "format_type": "json",
        "destination_table": "dry.events",
        "options": {"max_files_per_run": 0},
    });
    let (status, ctype, body) = l
        .api
        .call(
            "POST",
            "/api/v1/ingestions/dry-run",
            &l.token,
            Some(bad.clone()),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(ctype, "application/problem+json");
    assert_field_error(&body, "options.max_files_per_run", "max_files_per_run");

    bad["source_path"] = json!("file:///etc/");
    bad["options"] = json!({});
    let (status, _, body) = l
        .api
        .call("POST", "/api/v1/ingestions/dry-run", &l.token, Some(bad))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_field_error(&body, "source_path", "");

    let (_, other_token) = l.api.tenant("someone-else").await;
    let (status, _, body) = l
        .api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{ingestion}/dry-run"),
            &other_token,
            None,
        )
        .await;
    assert_eq!(
        status, 404,
        "another tenant's ingestion is not found: {body}"
    );
    let (status, _, _) = l
        .api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{}/dry-run", Uuid::now_v7()),
            &l.token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        count(&pool, "select count(*) from dry_runs").await,
        0,
        "nothing was asked of the workers"
    );

    // The document describes both, with the answer when no worker answers.
    let (_, _, doc) = l.api.call("GET", "/openapi.json", &l.token, None).await;
    for path in [
        "/api/v1/ingestions/dry-run",
        "/api/v1/ingestions/{id}/dry-run",
    ] {
        let op = &doc["paths"][path]["post"];
        assert!(op["responses"]["200"].is_object(), "{path}: {op}");
        assert!(
            op["responses"]["504"]["content"]["application/problem+json"].is_object(),
            "{path}: {op}"
        );
    }
    assert!(
        doc["components"]["schemas"]["DryRunResponse"]["properties"]["left_for_later"].is_object()
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn without_a_worker_the_answer_says_so_within_thirty_seconds(pool: PgPool) {
    let l = Loader::new(pool.clone(), "dry-run-alone").await;
    let ingestion = l.ingestion("json", "dry.events", json!({})).await;
    let started = Instant::now();
    let (status, ctype, body) = l
        .api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{ingestion}/dry-run"),
            &l.token,
            None,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert_eq!(ctype, "application/problem+json");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no worker answered")),
        "{body}"
    );
    assert!(took < Duration::from_secs(30), "answered after {took:?}");
    let (status, error): (String, Option<String>) =
        sqlx::query_as("select status, error from dry_runs")
            .fetch_one(&pool)
            .await
            .expect("the request's row");
    assert_eq!(status, "failed", "no worker takes it later");
    assert!(error.is_some_and(|e| e.contains("no worker answered")));

    // A worker started now does not take the abandoned request.
    let _worker = l.worker("dry-late", &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(
            &pool,
            "select count(*) from dry_runs where claimed_by is not null"
        )
        .await,
        0
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_source_that_never_answers_is_reported_unfinished_before_thirty_seconds(pool: PgPool) {
    // An S3 endpoint that takes connections and never answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in silent.incoming().take(64) {
            open.push(conn);
        }
    });
    let l = Loader::new(pool.clone(), "dry-run-silent").await;
    let _worker = l.worker("dry-silent", &[]);
    let started = Instant::now();
    let (status, _, dry) = l
        .api
        .call(
            "POST",
            "/api/v1/ingestions/dry-run",
            &l.token,
            Some(json!({
                "name": "silent",
                "source_type": "s3",
                "source_path": "s3://silent/in/",
                "format_type": "json",
                "destination_table": "dry.silent",
                "options": {
                    "s3_endpoint": format!("http://127.0.0.1:{port}"),
                    "s3_region": s3::REGION,
                    "s3_allow_http": true,
                }
            })),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["complete"], false, "{dry}");
    assert_eq!(dry["unfinished"], "discovery", "{dry}");
    assert!(took < Duration::from_secs(30), "answered after {took:?}");
    assert_nothing_written(&pool).await;
    drop(held);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn old_dry_runs_are_pruned_by_the_retention_sweep(pool: PgPool) {
    let l = Loader::new(pool.clone(), "dry-run-pruned").await;
    let tenant: Uuid = sqlx::query_scalar("select id from tenants limit 1")
        .fetch_one(&pool)
        .await
        .expect("tenant");
    for age in ["3 hours", "10 minutes"] {
        sqlx::query(
            "insert into dry_runs (id, tenant_id, status, requested_at, deadline, finished_at, result)
             values ($1, $2, 'done', now() - $3::interval, now() - $3::interval,
                     now() - $3::interval, '{}')",
        )
        .bind(Uuid::now_v7())
        .bind(tenant)
        .bind(age)
        .execute(&pool)
        .await
        .expect("an old dry run");
    }
    // Without a run retention: dry runs are pruned all the same.
    let _worker = l.worker("dry-prune", &[]);
    autoloader_tests::wait_for(
        "the old dry run pruned",
        Duration::from_secs(20),
        || async { (count(&pool, "select count(*) from dry_runs").await == 1).then_some(()) },
    )
    .await;
    assert_eq!(
        count(
            &pool,
            "select count(*) from dry_runs where requested_at > now() - interval '1 hour'"
        )
        .await,
        1,
        "the recent one stays"
    );
}
