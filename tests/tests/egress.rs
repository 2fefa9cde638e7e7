//! A tenant's S3 endpoint may point only where the operator's allowlist says: never at the cloud
//! metadata service, a loopback admin port or anything else the workers can reach. And what the
//! endpoint answers cannot send the worker elsewhere (redirects are not followed) nor write into
//! the run's error (its error bodies are not shown).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use autoloader_tests::{
    database_url, s3, temp_dir, worker_bin, TestApi, WorkerProcess, ADMIN_TOKEN,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

fn with_endpoint(name: &str, endpoint: &str) -> Value {
    json!({
        "name": name, "source_type": "s3", "source_path": "s3://bucket-one/logs/",
        "format_type": "json", "destination_table": "analytics.events",
        "options": {"s3_endpoint": endpoint, "s3_allow_http": true}
    })
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_endpoint_outside_the_allowlist_is_refused_naming_the_option(pool: PgPool) {
    // The tests' API lists loopback, where their S3 server runs.
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    for (i, endpoint) in [
        "http://169.254.169.254",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1@169.254.169.254",
        "http://10.0.0.7:9000",
        "http://[::ffff:169.254.169.254]",
        "http://metadata.google.internal",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, ctype, body) = api
            .call(
                "POST",
                "/api/v1/ingestions",
                &token,
                Some(with_endpoint(&format!("x{i}"), endpoint)),
            )
            .await;
        assert_eq!(
            (status, ctype.as_str()),
            (422, "application/problem+json"),
            "{endpoint}: {body}"
        );
        assert_eq!(
            body["errors"][0]["field"], "options.s3_endpoint",
            "{endpoint}: {body}"
        );
    }
    let (status, _, body) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(with_endpoint("ok", "http://127.0.0.1:9000")),
        )
        .await;
    assert_eq!(status, 201, "a listed endpoint is taken: {body}");

    // An API whose operator lists nothing takes AWS only.
    let strict =
        TestApi::spawn_with_state(autoloader_api::AppState::new(pool, Some(ADMIN_TOKEN))).await;
    let (_, token) = strict.tenant("globex").await;
    let (status, _, body) = strict
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(with_endpoint("local", "http://127.0.0.1:9000")),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let mut aws = with_endpoint("aws", "");
    aws["options"] = json!({});
    let (status, _, body) = strict
        .call("POST", "/api/v1/ingestions", &token, Some(aws))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// A hostile "S3 server" on 127.0.0.1 (the tests' allowlist takes loopback): answers every request
/// with `answer` and counts the requests it got.
async fn hostile_server(answer: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let answer: Arc<str> = answer.into();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (answer, counter) = (answer.clone(), counter.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), requests)
}

/// An S3 ingestion of `bucket`/logs/ on `endpoint`; returns its id.
async fn s3_ingestion(
    api: &TestApi,
    token: &str,
    name: &str,
    endpoint: &str,
    bucket: &str,
) -> Uuid {
    api.create_ingestion(
        token,
        json!({
            "name": name, "source_type": "s3", "source_path": format!("s3://{bucket}/logs/"),
            "format_type": "json", "destination_table": format!("ns.{name}"),
            "options": {"s3_endpoint": endpoint, "s3_allow_http": true,
                        "s3_access_key_id": s3::ACCESS_KEY, "s3_secret_access_key": s3::SECRET_KEY}
        }),
    )
    .await
}

/// The endpoint's error answers reach the run's error as their HTTP status and S3 error code,
/// never their body (here carrying a marker); its redirects (307, 302) are not followed, so the
/// listener a redirect names gets no request at all. The same worker loads a bucket on the real
/// S3 server meanwhile.
#[sqlx::test(migrator = "MIGRATOR")]
async fn an_endpoints_answers_neither_redirect_the_worker_nor_reach_the_runs_error(pool: PgPool) {
    let marker = format!("MARKER-{}", Uuid::now_v7().simple());
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>\
         <Message>{marker} internal host db-7.corp:5432</Message><RequestId>{marker}</RequestId>\
         </Error>"
    );
    let (denying, _) = hostile_server(format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let (elsewhere, elsewhere_requests) = hostile_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: 0\r\n\r\n".into(),
    )
    .await;
    let redirect = |status: &str| {
        format!(
            "HTTP/1.1 {status}\r\nlocation: {elsewhere}/bucket/logs/\r\ncontent-length: 0\r\n\
             connection: close\r\n\r\n"
        )
    };
    let (temporary, temporary_requests) = hostile_server(redirect("307 Temporary Redirect")).await;
    let (found, found_requests) = hostile_server(redirect("302 Found")).await;

    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("hostile").await;
    let warehouse = temp_dir("hostile-warehouse");
    let _worker = WorkerProcess::spawn(
        worker_bin().to_str().expect("utf-8"),
        &database_url(&pool),
        "loader",
        &[("AUTOLOADER_WAREHOUSE", warehouse.to_str().expect("utf-8"))],
    );
    let run = |id: Uuid| {
        let (api, token) = (&api, &token);
        async move {
            let run = api.trigger(token, id).await;
            api.finished_run(token, run["id"].as_str().expect("id"))
                .await
        }
    };

    let denied = s3_ingestion(&api, &token, "denied", &denying, "bucket").await;
    let r = run(denied).await;
    assert_eq!(r["status"], "FAILED", "{r}");
    let error = r["error"].as_str().unwrap_or("");
    assert!(
        error.contains("403") && error.contains("AccessDenied"),
        "{error}"
    );
    assert!(
        !error.contains("MARKER") && !error.contains("db-7"),
        "{error}"
    );

    for (name, endpoint, status) in [("temporary", &temporary, "307"), ("found", &found, "302")] {
        let id = s3_ingestion(&api, &token, name, endpoint, "bucket").await;
        let r = run(id).await;
        assert_eq!(r["status"], "FAILED", "{r}");
        let error = r["error"].as_str().unwrap_or("");
        assert!(error.contains(status), "{name}: {error}");
    }
    assert!(
        temporary_requests.load(Ordering::SeqCst) >= 1
            && found_requests.load(Ordering::SeqCst) >= 1,
        "the redirecting endpoints were asked"
    );
    assert_eq!(
        elsewhere_requests.load(Ordering::SeqCst),
        0,
        "no request followed a redirect"
    );

    // Meanwhile, a bucket on the real S3 server loads.
    let bucket = format!("hostile-neighbour-{}", Uuid::now_v7().simple());
    s3::create_bucket(&bucket).await;
    s3::put_object(&bucket, "logs/a.json", b"{\"id\": 1}\n".to_vec()).await;
    let fine = s3_ingestion(&api, &token, "fine", &s3::endpoint(), &bucket).await;
    let r = run(fine).await;
    assert_eq!(
        (r["status"].as_str(), r["rows_ingested"].as_i64()),
        (Some("SUCCESS"), Some(1)),
        "{r}"
    );
    let _ = std::fs::remove_dir_all(&warehouse);
}
