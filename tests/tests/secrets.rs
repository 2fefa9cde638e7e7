//! Secret options stay secret: sealed at rest (AES-256-GCM under AUTOLOADER_SECRET_KEY, bound
//! to their tenant), never shown, opened only by the worker running the ingestion, rotated by a
//! command; a client that sends back what it was shown (the mask) keeps the stored secret.

use std::process::Command;

use autoloader::secrets::{Opened, SecretKeys};
use autoloader_tests::{
    api_bin, database_url, s3, temp_dir, test_secret_keys, worker_bin, TestApi, WorkerProcess,
    TEST_SECRET_KEY,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// The stored secret of ingestion `id`, opened with `keys` (`None`: no secret stored). Panics
/// unless it is sealed.
async fn stored_secret_with(pool: &PgPool, id: &str, keys: &SecretKeys) -> Option<String> {
    let (tenant, stored): (Uuid, Option<String>) = sqlx::query_as(
        "select tenant_id, options->>'s3_secret_access_key' from ingestions where id = $1::uuid",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("read the stored options");
    let stored = stored?;
    assert!(stored.starts_with("enc:v1:"), "stored sealed: {stored}");
    match keys.open(tenant, "s3_secret_access_key", &stored) {
        Ok(Opened::Current(s)) => Some(s),
        other => panic!("the stored secret opens under the current key: {other:?}"),
    }
}

async fn stored_secret(pool: &PgPool, id: &str) -> Option<String> {
    stored_secret_with(pool, id, &test_secret_keys().expect("keys")).await
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

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_server_without_a_key_stores_no_secret(pool: PgPool) {
    let api = TestApi::spawn_with_state(
        autoloader_api::AppState::new(pool.clone(), Some(autoloader_tests::ADMIN_TOKEN))
            .with_egress(autoloader_tests::test_egress()),
    )
    .await;
    let (_, token) = api.tenant("acme").await;
    let (status, _, body) = api
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
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["errors"][0]["field"], "options.s3_secret_access_key",
        "{body}"
    );
    assert!(!body.to_string().contains("hunter2"));
    let n: i64 = sqlx::query_scalar("select count(*) from ingestions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 0);
}

/// A tenant copies another tenant's sealed secret into its own ingestion at psql (as an insider
/// with database access might): the worker refuses to open it, and the run's error says why
/// without the secret. The owner's run goes on.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_secret_opens_only_for_its_own_tenant_in_the_worker(pool: PgPool) {
    let bucket = format!("sealed-{}", Uuid::now_v7().simple());
    s3::create_bucket(&bucket).await;
    s3::put_object(&bucket, "a.json", b"{\"id\": 1}\n".to_vec()).await;
    let api = TestApi::spawn(pool.clone()).await;
    let secret = format!("secret-{}", Uuid::now_v7().simple());
    let mut ids = Vec::new();
    for tenant in ["owner", "thief"] {
        let (_, token) = api.tenant(tenant).await;
        let (status, _, body) = api
            .call(
                "POST",
                "/api/v1/ingestions",
                &token,
                Some(json!({
                    "name": "events", "source_type": "s3",
                    "source_path": format!("s3://{bucket}/"),
                    "format_type": "json", "destination_table": "raw.events",
                    "options": {
                        "s3_endpoint": s3::endpoint(), "s3_region": s3::REGION,
                        "s3_access_key_id": s3::ACCESS_KEY, "s3_secret_access_key": secret,
                        "s3_allow_http": true,
                    }
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push((token, body["id"].as_str().expect("id").to_owned()));
    }
    sqlx::query(
        "update ingestions set options = jsonb_set(options, '{s3_secret_access_key}',
             (select options->'s3_secret_access_key' from ingestions where id = $1::uuid))
         where id = $2::uuid",
    )
    .bind(&ids[0].1)
    .bind(&ids[1].1)
    .execute(&pool)
    .await
    .expect("copy the sealed secret");

    let warehouse = temp_dir("sealed-warehouse");
    let _worker = WorkerProcess::spawn(
        worker_bin().to_str().expect("utf-8"),
        &database_url(&pool),
        "sealed",
        &[("AUTOLOADER_WAREHOUSE", warehouse.to_str().expect("utf-8"))],
    );
    let mut outcomes = Vec::new();
    for (token, id) in &ids {
        let run = api.trigger(token, id.parse().expect("uuid")).await;
        outcomes.push(
            api.finished_run(token, run["id"].as_str().expect("id"))
                .await,
        );
    }
    assert_eq!(outcomes[0]["status"], "SUCCESS", "{}", outcomes[0]);
    assert_eq!(outcomes[1]["status"], "FAILED", "{}", outcomes[1]);
    let error = outcomes[1]["error"].as_str().expect("error");
    assert!(error.contains("does not open"), "{error}");
    assert!(!error.contains(&secret), "{error}");
    let _ = std::fs::remove_dir_all(warehouse);
}

fn rotate(url: &str, current: &str, previous: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(api_bin());
    cmd.env_clear()
        .env("DATABASE_URL", url)
        .env("AUTOLOADER_SECRET_KEY", current)
        .arg("rotate-secrets");
    if let Some(p) = previous {
        cmd.env("AUTOLOADER_SECRET_KEY_PREVIOUS", p);
    }
    cmd.output().expect("run rotate-secrets")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn rotation_seals_every_secret_under_the_new_key(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (tenant, token) = api.tenant("acme").await;
    let (status, _, body) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(json!({
                "name": "sealed", "source_type": "s3", "source_path": "s3://bucket-one/logs/",
                "format_type": "json", "destination_table": "analytics.events",
                "options": {"s3_access_key_id": "AKIA1", "s3_secret_access_key": "old-key-secret"}
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sealed_id = body["id"].as_str().expect("id").to_owned();
    // One stored in the clear, as before sealing existed.
    let clear_id = Uuid::now_v7();
    sqlx::query(
        "insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                                 destination_table, options)
         values ($1, $2, 'clear', 's3', 's3://bucket-one/logs/', 'json', 'analytics.events',
                 '{\"s3_access_key_id\": \"AKIA1\", \"s3_secret_access_key\": \"clear-secret\"}')",
    )
    .bind(clear_id)
    .bind(tenant)
    .execute(&pool)
    .await
    .expect("insert");

    let new_key = "bmV3LWtleS10aGF0LWlzLTMyLWJ5dGVzLWxvbmchISE=";
    let url = database_url(&pool);
    // Without the old key the sealed secret cannot move: the command seals what it can, says
    // which one does not open, and fails.
    let out = rotate(&url, new_key, None);
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("ingestion {sealed_id}")), "{said}");
    assert!(said.contains("neither AUTOLOADER_SECRET_KEY"), "{said}");
    assert!(
        said.contains("0 moved from the previous key, 1 sealed"),
        "{said}"
    );
    assert!(
        !said.contains("old-key-secret") && !said.contains("clear-secret"),
        "{said}"
    );

    let out = rotate(&url, new_key, Some(TEST_SECRET_KEY));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("1 moved from the previous key, 0 sealed"),
        "{said}"
    );
    let only_new = SecretKeys::new(new_key, None).expect("key");
    assert_eq!(
        stored_secret_with(&pool, &sealed_id, &only_new)
            .await
            .as_deref(),
        Some("old-key-secret")
    );
    assert_eq!(
        stored_secret_with(&pool, &clear_id.to_string(), &only_new)
            .await
            .as_deref(),
        Some("clear-secret")
    );
    let again = rotate(&url, new_key, Some(TEST_SECRET_KEY));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 moved from the previous key, 0 sealed")
    );
}
