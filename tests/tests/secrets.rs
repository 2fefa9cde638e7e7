//! Secret options stay secret through the API: never shown, and a client that sends back what
//! it was shown (the mask) keeps the stored secret instead of storing the mask.

use autoloader_tests::TestApi;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

async fn stored_secret(pool: &PgPool, id: &str) -> Option<String> {
    sqlx::query_scalar(
        "select options->>'s3_secret_access_key' from ingestions where id = $1::uuid",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("read the stored options")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn echoing_a_read_back_through_put_or_patch_keeps_the_stored_secret(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let (status, _, created) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(json!({
                "name": "events", "source_type": "s3", "source_path": "s3://bucket-one/logs/",
                "format_type": "json", "destination_table": "analytics.events",
                "options": {"s3_access_key_id": "AKIA1", "s3_secret_access_key": "hunter2"}
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["options"]["s3_secret_access_key"], "********");

    // PUT the body as read, with one change: the mask comes back, the secret stays.
    let path = format!("/api/v1/ingestions/{id}");
    let (_, _, read) = api.call("GET", &path, &token, None).await;
    let mut body = serde_json::Map::new();
    for key in [
        "name",
        "description",
        "source_type",
        "source_path",
        "format_type",
        "destination_table",
        "options",
        "schedule_frequency",
        "schedule_time",
        "schedule_timezone",
        "schedule_cron",
        "schedule_enabled",
        "status",
    ] {
        body.insert(key.to_owned(), read[key].clone());
    }
    body.insert("description".into(), Value::from("echoed"));
    let (status, _, put) = api
        .call("PUT", &path, &token, Some(Value::Object(body)))
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["description"], "echoed");
    assert_eq!(stored_secret(&pool, &id).await.as_deref(), Some("hunter2"));

    // PATCH with the options as read: the same.
    let (status, _, patched) = api
        .call(
            "PATCH",
            &path,
            &token,
            Some(json!({"options": read["options"]})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(stored_secret(&pool, &id).await.as_deref(), Some("hunter2"));

    // A new secret replaces the old; no secret at all removes it.
    let (status, _, _) = api
        .call(
            "PATCH",
            &path,
            &token,
            Some(
                json!({"options": {"s3_access_key_id": "AKIA1", "s3_secret_access_key": "s3cr3t"}}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(stored_secret(&pool, &id).await.as_deref(), Some("s3cr3t"));
    let (status, _, _) = api
        .call("PATCH", &path, &token, Some(json!({"options": {}})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(stored_secret(&pool, &id).await, None);
}
