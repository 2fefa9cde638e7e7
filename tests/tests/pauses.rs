//! Pausing with a reason: a disabled schedule says why, since when and by whom (the token's
//! name, `database` for a change made at psql) until it is enabled again; bad reasons are 422s.

use autoloader_tests::{TestApi, ADMIN_TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

async fn ingestion(api: &TestApi, token: &str, name: &str) -> Uuid {
    api.create_ingestion(
        token,
        json!({
            "name": name, "source_type": "s3", "source_path": "s3://bucket-one/in/",
            "format_type": "json", "destination_table": "raw.events",
            "schedule_frequency": "hourly", "schedule_timezone": "UTC",
            "schedule_enabled": true
        }),
    )
    .await
}

async fn disable(api: &TestApi, token: &str, id: Uuid, body: Option<Value>) -> (u16, Value) {
    let (status, _, res) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/schedule/disable"),
            token,
            body,
        )
        .await;
    (status, res)
}

async fn read(api: &TestApi, token: &str, id: Uuid) -> Value {
    let (status, _, res) = api
        .call("GET", &format!("/api/v1/ingestions/{id}"), token, None)
        .await;
    assert_eq!(status, 200, "{res}");
    res
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_paused_schedule_says_why_since_when_and_by_whom(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (tenant, token) = api.tenant("data-eng").await;
    let (status, _, labelled) = api
        .call(
            "POST",
            &format!("/api/v1/admin/tenants/{tenant}/tokens"),
            ADMIN_TOKEN,
            Some(json!({"label": "oncall-bot"})),
        )
        .await;
    assert_eq!(status, 201, "{labelled}");
    let bot = labelled["token"].as_str().expect("token").to_owned();
    let id = ingestion(&api, &token, "events").await;
    let fresh = read(&api, &token, id).await;
    for f in ["paused_reason", "paused_at", "paused_by"] {
        assert_eq!(fresh[f], Value::Null, "{f}: {fresh}");
    }

    let (status, paused) = disable(
        &api,
        &bot,
        id,
        Some(json!({"reason": "upstream outage INC-42"})),
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["schedule_enabled"], false);
    assert_eq!(paused["paused_reason"], "upstream outage INC-42");
    assert_eq!(paused["paused_by"], "oncall-bot");
    assert!(paused["paused_at"].is_string(), "{paused}");
    assert_eq!(
        read(&api, &token, id).await["paused_reason"],
        "upstream outage INC-42"
    );

    // Disabling again keeps the first pause.
    let (_, again) = disable(&api, &token, id, Some(json!({"reason": "other"}))).await;
    assert_eq!(again["paused_reason"], "upstream outage INC-42", "{again}");
    assert_eq!(again["paused_at"], paused["paused_at"]);

    // Enabling clears it.
    let (status, _, enabled) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/schedule/enable"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{enabled}");
    for f in ["paused_reason", "paused_at", "paused_by"] {
        assert_eq!(enabled[f], Value::Null, "{f}: {enabled}");
    }

    // No body: a pause without a reason, by the tenant's first token (labelled so); a token
    // without a label is named by its id.
    let (status, plain) = disable(&api, &token, id, None).await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["paused_reason"], Value::Null);
    assert_eq!(plain["paused_by"], "first token", "{plain}");
    let (_, _, unlabelled) = api
        .call(
            "POST",
            &format!("/api/v1/admin/tenants/{tenant}/tokens"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    let anonymous = unlabelled["token"].as_str().expect("token");
    let third = ingestion(&api, &token, "third").await;
    let (_, by_id) = disable(&api, anonymous, third, None).await;
    assert_eq!(
        by_id["paused_by"],
        format!(
            "token {}",
            unlabelled["token_id"].as_str().expect("token id")
        ),
        "{by_id}"
    );

    // A PATCH that switches the schedule off is a pause by its token too.
    api.call(
        "POST",
        &format!("/api/v1/ingestions/{id}/schedule/enable"),
        &token,
        None,
    )
    .await;
    let (status, _, patched) = api
        .call(
            "PATCH",
            &format!("/api/v1/ingestions/{id}"),
            &bot,
            Some(json!({"schedule_enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["paused_by"], "oncall-bot", "{patched}");
    assert!(patched["paused_at"].is_string());

    // At psql: the pause is stamped, by "database".
    let other = ingestion(&api, &token, "other events").await;
    sqlx::query("update ingestions set schedule_enabled = false where id = $1")
        .bind(other)
        .execute(&pool)
        .await
        .expect("disable at psql");
    let at_psql = read(&api, &token, other).await;
    assert_eq!(at_psql["paused_by"], "database", "{at_psql}");
    assert!(at_psql["paused_at"].is_string());
    // ...and PostgreSQL keeps a pause only on a disabled schedule.
    let refused =
        sqlx::query("update ingestions set paused_reason = 'x' where id = $1 and schedule_enabled")
            .bind(id)
            .execute(&pool)
            .await;
    assert!(refused.is_ok());
    sqlx::query("update ingestions set schedule_enabled = true where id = $1")
        .bind(other)
        .execute(&pool)
        .await
        .expect("enable at psql");
    let err = sqlx::query("update ingestions set paused_reason = 'x' where id = $1")
        .bind(other)
        .execute(&pool)
        .await
        .expect_err("a pause on an enabled schedule");
    assert!(
        err.to_string()
            .contains("ingestions_paused_only_while_disabled"),
        "{err}"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_bad_reason_is_a_422_naming_it_and_changes_nothing(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("data-eng").await;
    let id = ingestion(&api, &token, "events").await;
    for (body, field) in [
        (json!({"reason": "x".repeat(1001)}), "reason"),
        (json!({"reason": "a\u{0}b"}), "reason"),
        (json!({"reason": 42}), "reason"),
        (json!({"why": "x"}), "why"),
    ] {
        let (status, res) = disable(&api, &token, id, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {res}");
        assert_eq!(res["errors"][0]["field"], field, "{body}: {res}");
    }
    let (status, res) = disable(&api, &token, id, Some(json!(["reason"]))).await;
    assert_eq!(status, 422, "{res}");
    assert_eq!(read(&api, &token, id).await["schedule_enabled"], true);
    let (status, res) = disable(&api, &token, id, Some(json!({"reason": "é".repeat(1000)}))).await;
    assert_eq!(status, 200, "1000 characters are fine: {res}");
}
