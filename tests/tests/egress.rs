//! A tenant's S3 endpoint may point only where the operator's allowlist says: never at the cloud
//! metadata service, a loopback admin port or anything else the workers can reach.

use autoloader_tests::{TestApi, ADMIN_TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;

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
