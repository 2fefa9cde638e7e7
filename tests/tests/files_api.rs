//! The files API over real HTTP and real PostgreSQL: an ingestion's ledger, paged by cursor, and
//! retrying its rejected files; and the rejections a run shows. Ledger rows and run counters are
//! written with SQL, as a worker writes them.

use std::collections::BTreeSet;

use autoloader_tests::TestApi;
use chrono::Utc;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

const PREFIX: &str = "s3://files-bucket/in/";

async fn ingestion(api: &TestApi, token: &str, name: &str) -> Uuid {
    let (status, _, body) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            token,
            Some(json!({
                "name": name,
                "source_type": "s3",
                "source_path": PREFIX,
                "format_type": "json",
                "destination_table": "raw.events",
                "options": {"on_error": "skip_file"}
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id")
}

fn url(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// A file a run loaded, as the worker records it.
async fn loaded(pool: &PgPool, ingestion: Uuid, run: Uuid, name: &str, rows: i64) {
    sqlx::query(
        "insert into loaded_files (ingestion_id, path, size_bytes, etag, last_modified, run_id,
                                   attempt, snapshot_id, rows_loaded, records_rejected)
         values ($1, $2, 100, 'etag-1', now() - interval '1 hour', $3, 1, 42, $4, 1)",
    )
    .bind(ingestion)
    .bind(url(name))
    .bind(run)
    .bind(rows)
    .execute(pool)
    .await
    .expect("loaded file");
}

/// A file a run rejected (`on_error = skip_file`), as the worker records it.
async fn rejected(pool: &PgPool, ingestion: Uuid, run: Uuid, name: &str) {
    sqlx::query(
        "insert into loaded_files (ingestion_id, path, size_bytes, last_modified, run_id, attempt,
                                   snapshot_id, rows_loaded, status, error)
         values ($1, $2, 7, now() - interval '1 hour', $3, 2, null, 0, 'rejected',
                 'line 3: expected value at column 1')",
    )
    .bind(ingestion)
    .bind(url(name))
    .bind(run)
    .execute(pool)
    .await
    .expect("rejected file");
}

/// The ledger as PostgreSQL holds it: (path, status), in path order.
async fn ledger(pool: &PgPool, ingestion: Uuid) -> Vec<(String, String)> {
    sqlx::query_as(
        "select path, status from loaded_files where ingestion_id = $1 order by path collate \"C\"",
    )
    .bind(ingestion)
    .fetch_all(pool)
    .await
    .expect("ledger")
}

fn paths(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_owned())
        .collect()
}

fn fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect()
}

/// Every page of `GET .../files?{query}` from `cursor` on, following `next_cursor`: (paths,
/// pages).
async fn read_from(
    api: &TestApi,
    token: &str,
    id: Uuid,
    query: &str,
    mut cursor: Option<String>,
) -> (Vec<String>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/ingestions/{id}/files?{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, _, page) = api.call("GET", &path, token, None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        all.extend(paths(&page["items"]));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (all, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

async fn read_all(api: &TestApi, token: &str, id: Uuid, query: &str) -> (Vec<String>, usize) {
    read_from(api, token, id, query, None).await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_ledger_lists_loaded_and_rejected_files(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let run = Uuid::now_v7();
    for name in ["b.json", "d.json", "e.json"] {
        loaded(&pool, id, run, name, 10).await;
    }
    for name in ["a.json", "c.json"] {
        rejected(&pool, id, run, name).await;
    }

    let (status, ctype, page) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/files"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(ctype.starts_with("application/json"));
    assert_eq!(
        paths(&page["items"]),
        ["a.json", "b.json", "c.json", "d.json", "e.json"].map(url)
    );
    assert_eq!(page["next_cursor"], Value::Null, "one page holds them all");

    let items = page["items"].as_array().expect("items");
    let a = &items[0];
    assert_eq!(a["status"], "rejected");
    assert_eq!(a["error"], "line 3: expected value at column 1");
    assert_eq!(a["snapshot_id"], Value::Null);
    assert_eq!((&a["rows_loaded"], &a["attempt"]), (&json!(0), &json!(2)));
    assert_eq!(a["etag"], Value::Null);
    let b = &items[1];
    assert_eq!(b["status"], "loaded");
    assert_eq!(b["error"], Value::Null);
    for (field, want) in [
        ("size_bytes", json!(100)),
        ("etag", json!("etag-1")),
        ("rows_loaded", json!(10)),
        ("records_rejected", json!(1)),
        ("run_id", json!(run.to_string())),
        ("attempt", json!(1)),
        ("snapshot_id", json!(42)),
    ] {
        assert_eq!(b[field], want, "{field}");
    }
    for field in ["last_modified", "loaded_at"] {
        let at: chrono::DateTime<Utc> = b[field]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{field} is an instant: {b}"));
        assert!(at <= Utc::now(), "{field}");
    }

    for (status, want) in [
        ("rejected", vec!["a.json", "c.json"]),
        ("loaded", vec!["b.json", "d.json", "e.json"]),
    ] {
        let (code, _, page) = api
            .call(
                "GET",
                &format!("/api/v1/ingestions/{id}/files?status={status}"),
                &token,
                None,
            )
            .await;
        assert_eq!(code, 200, "{page}");
        let want: Vec<String> = want.into_iter().map(url).collect();
        assert_eq!(paths(&page["items"]), want, "{status}");
    }

    // An ingestion that has dealt with no file yet has an empty ledger.
    let other = ingestion(&api, &token, "nothing yet").await;
    let (status, _, page) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{other}/files"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page, json!({"items": [], "next_cursor": null}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_cursor_reads_every_file_once(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let run = Uuid::now_v7();
    let mut all = BTreeSet::new();
    let mut rejects = BTreeSet::new();
    for i in 0..23 {
        let name = format!("{:02}.json", i);
        if i % 4 == 1 {
            rejected(&pool, id, run, &name).await;
            rejects.insert(url(&name));
        } else {
            loaded(&pool, id, run, &name, 1).await;
        }
        all.insert(url(&name));
    }
    let (read, pages) = read_all(&api, &token, id, "limit=5").await;
    assert_eq!(read, all.iter().cloned().collect::<Vec<_>>());
    assert_eq!(pages, 5, "23 files, 5 a page");
    let (read, pages) = read_all(&api, &token, id, "limit=2&status=rejected").await;
    assert_eq!(read, rejects.iter().cloned().collect::<Vec<_>>());
    assert_eq!(pages, 3, "6 rejected files, 2 a page, no empty last page");
    let (read, pages) = read_all(&api, &token, id, "limit=1000").await;
    assert_eq!((read.len(), pages), (23, 1));

    // Files removed before the cursor and added after it between two requests: nothing read
    // twice, nothing skipped.
    let first = format!("/api/v1/ingestions/{id}/files?limit=10");
    let (_, _, page) = api.call("GET", &first, &token, None).await;
    let mut read = paths(&page["items"]);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let retried = url("01.json");
    let (status, _, body) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/files/retry"),
            &token,
            Some(json!({"paths": [retried]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    loaded(&pool, id, run, "99.json", 1).await;
    let (rest, _) = read_from(&api, &token, id, "limit=10", Some(cursor)).await;
    read.extend(rest);
    let mut want = all.clone();
    want.insert(url("99.json"));
    assert_eq!(read, want.into_iter().collect::<Vec<_>>());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_query_parameters_are_named(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    for (query, want) in [
        ("status=failed", vec!["status"]),
        ("status=LOADED", vec!["status"]),
        ("status=", vec!["status"]),
        ("limit=0", vec!["limit"]),
        ("limit=1001", vec!["limit"]),
        ("limit=ten", vec!["limit"]),
        ("limit=-1", vec!["limit"]),
        ("cursor=!!", vec!["cursor"]),
        ("cursor=", vec!["cursor"]),
        // base64url of bytes that are not text
        ("cursor=__4", vec!["cursor"]),
        (
            "status=all&limit=5000&cursor=*",
            vec!["status", "cursor", "limit"],
        ),
    ] {
        let (status, ctype, problem) = api
            .call(
                "GET",
                &format!("/api/v1/ingestions/{id}/files?{query}"),
                &token,
                None,
            )
            .await;
        assert_eq!(
            (status, ctype.as_str()),
            (422, "application/problem+json"),
            "{query}: {problem}"
        );
        assert_eq!(problem["type"], "/problems/validation", "{query}");
        assert_eq!(fields(&problem), want, "{query}");
    }
    for query in ["limit=1", "limit=1000", "status=loaded&limit=100"] {
        let (status, _, body) = api
            .call(
                "GET",
                &format!("/api/v1/ingestions/{id}/files?{query}"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{query}: {body}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn retrying_named_files_deletes_only_them(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let other = ingestion(&api, &token, "other").await;
    let run = Uuid::now_v7();
    for name in ["l1.json", "l2.json"] {
        loaded(&pool, id, run, name, 3).await;
    }
    for name in ["r1.json", "r2.json", "r3.json"] {
        rejected(&pool, id, run, name).await;
    }
    // The same path rejected by another ingestion stays rejected there.
    rejected(&pool, other, run, "r1.json").await;

    let (status, ctype, body) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/files/retry"),
            &token,
            Some(json!({"paths": [url("r3.json"), url("r1.json"), url("r3.json")]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("application/json"));
    assert_eq!(
        body,
        json!({"retried": [url("r3.json"), url("r1.json")], "count": 2}),
        "each file once, in the request's order"
    );
    let after: Vec<(String, String)> = ledger(&pool, id).await;
    assert_eq!(
        after,
        [
            (url("l1.json"), "loaded".to_owned()),
            (url("l2.json"), "loaded".to_owned()),
            (url("r2.json"), "rejected".to_owned()),
        ]
    );
    assert_eq!(
        ledger(&pool, other).await,
        [(url("r1.json"), "rejected".to_owned())]
    );
    // A retried file is no longer rejected: retrying it again is refused.
    let (status, _, problem) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/files/retry"),
            &token,
            Some(json!({"paths": [url("r1.json")]})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(fields(&problem), ["paths[0]"]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_empty_retry_retries_every_rejected_file(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let run = Uuid::now_v7();
    for name in ["b.json", "d.json"] {
        loaded(&pool, id, run, name, 3).await;
    }
    for name in ["c.json", "a.json", "e.json"] {
        rejected(&pool, id, run, name).await;
    }
    let retry = format!("/api/v1/ingestions/{id}/files/retry");
    let (status, _, body) = api.call("POST", &retry, &token, Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"retried": (["a.json", "c.json", "e.json"].map(url)), "count": 3})
    );
    assert_eq!(
        ledger(&pool, id).await,
        [
            (url("b.json"), "loaded".to_owned()),
            (url("d.json"), "loaded".to_owned()),
        ]
    );
    let (status, _, body) = api.call("POST", &retry, &token, Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"retried": [], "count": 0}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn retrying_what_is_not_a_rejected_file_retries_nothing(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let run = Uuid::now_v7();
    loaded(&pool, id, run, "l1.json", 3).await;
    for name in ["r1.json", "r2.json"] {
        rejected(&pool, id, run, name).await;
    }
    let before = ledger(&pool, id).await;
    let retry = format!("/api/v1/ingestions/{id}/files/retry");

    let not_rejected =
        json!({"paths": [url("r1.json"), url("l1.json"), url("none.json"), url("r2.json")]});
    let (status, ctype, problem) = api.call("POST", &retry, &token, Some(not_rejected)).await;
    assert_eq!(
        (status, ctype.as_str()),
        (422, "application/problem+json"),
        "{problem}"
    );
    assert_eq!(problem["type"], "/problems/validation");
    assert_eq!(fields(&problem), ["paths[1]", "paths[2]"]);
    assert_eq!(ledger(&pool, id).await, before, "nothing was retried");

    let long = format!("{PREFIX}{}", "x".repeat(4096));
    let paths_1001: Vec<String> = (0..1001).map(|i| format!("s3://b/{i}")).collect();
    for (body, want) in [
        (json!({"paths": [url("l1.json")]}), "paths[0]"),
        (json!({"paths": null}), "paths"),
        (json!({"paths": []}), "paths"),
        (json!({"paths": "s3://files-bucket/in/r1.json"}), "paths"),
        (json!({"paths": paths_1001}), "paths"),
        (json!({"paths": [url("r1.json"), 7]}), "paths[1]"),
        (json!({"paths": [url("r1.json"), ""]}), "paths[1]"),
        (
            json!({"paths": [url("r1.json"), "s3://b/a\u{0}b"]}),
            "paths[1]",
        ),
        (json!({"paths": [url("r1.json"), long]}), "paths[1]"),
        (json!({"path": [url("r1.json")]}), "path"),
    ] {
        let (status, ctype, problem) = api.call("POST", &retry, &token, Some(body.clone())).await;
        assert_eq!(
            (status, ctype.as_str()),
            (422, "application/problem+json"),
            "{body}: {problem}"
        );
        assert_eq!(fields(&problem), [want], "{body}");
        assert_eq!(ledger(&pool, id).await, before, "{body} retried nothing");
    }
    // The longest path taken is looked up like any other.
    let longest = format!("s3://b/{}", "y".repeat(4096 - "s3://b/".len()));
    let (status, _, problem) = api
        .call("POST", &retry, &token, Some(json!({"paths": [longest]})))
        .await;
    assert_eq!((status, fields(&problem)), (422, vec!["paths[0]"]));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn another_tenants_ingestion_is_not_found(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, a) = api.tenant("a").await;
    let (_, b) = api.tenant("b").await;
    let id = ingestion(&api, &a, "events").await;
    let run = Uuid::now_v7();
    loaded(&pool, id, run, "l.json", 1).await;
    rejected(&pool, id, run, "r.json").await;
    let before = ledger(&pool, id).await;
    let missing = Uuid::now_v7();
    for (method, path, body) in [
        ("GET", "files", None),
        ("GET", "files?status=rejected", None),
        ("POST", "files/retry", Some(json!({}))),
        (
            "POST",
            "files/retry",
            Some(json!({"paths": [url("r.json")]})),
        ),
    ] {
        let (status, ctype, theirs) = api
            .call(
                method,
                &format!("/api/v1/ingestions/{id}/{path}"),
                &b,
                body.clone(),
            )
            .await;
        let (_, _, absent) = api
            .call(
                method,
                &format!("/api/v1/ingestions/{missing}/{path}"),
                &b,
                body,
            )
            .await;
        assert_eq!(
            (status, ctype.as_str()),
            (404, "application/problem+json"),
            "{method} {path}: {theirs}"
        );
        assert_eq!(
            theirs, absent,
            "{method} {path}: as absent as a missing one"
        );
    }
    assert_eq!(ledger(&pool, id).await, before);
    let (status, _, page) = api
        .call("GET", &format!("/api/v1/ingestions/{id}/files"), &a, None)
        .await;
    assert_eq!((status, paths(&page["items"]).len()), (200, 2));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn runs_show_their_rejections(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let (status, _, run) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/run"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(
        (
            &run["files_rejected"],
            &run["records_rejected"],
            &run["rejected_records"]
        ),
        (&json!(0), &json!(0), &json!([])),
        "a new run has rejected nothing"
    );
    let run_id: Uuid = run["id"].as_str().and_then(|s| s.parse().ok()).expect("id");

    let records = json!([
        {"file": url("a.json"), "record": 3, "column": "amount", "reason": "'x' is not a number"},
        {"file": url("b.json"), "record": null, "column": null, "reason": "not JSON"}
    ]);
    sqlx::query(
        "update runs set files_rejected = 1, records_rejected = 5, rejected_records = $2
         where id = $1",
    )
    .bind(run_id)
    .bind(&records)
    .execute(&pool)
    .await
    .expect("record rejections");

    let (status, _, one) = api
        .call("GET", &format!("/api/v1/runs/{run_id}"), &token, None)
        .await;
    assert_eq!(status, 200, "{one}");
    let (status, _, history) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/runs"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let (status, _, cancelled) = api
        .call(
            "POST",
            &format!("/api/v1/runs/{run_id}/cancel"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    for (from, shown) in [
        ("GET /runs/{run_id}", &one),
        ("GET /ingestions/{id}/runs", &history["items"][0]),
        ("POST /runs/{run_id}/cancel", &cancelled),
    ] {
        assert_eq!(shown["id"], run_id.to_string(), "{from}");
        assert_eq!(shown["files_rejected"], 1, "{from}");
        assert_eq!(shown["records_rejected"], 5, "{from}");
        assert_eq!(shown["rejected_records"], records, "{from}");
    }

    // Null is none.
    sqlx::query("update runs set rejected_records = null where id = $1")
        .bind(run_id)
        .execute(&pool)
        .await
        .expect("clear");
    let (_, _, one) = api
        .call("GET", &format!("/api/v1/runs/{run_id}"), &token, None)
        .await;
    assert_eq!(one["rejected_records"], json!([]));
}
