//! Tenant administration as an attacker and an operator meet it: a suspended tenant's schedules
//! stop and its tokens are refused while every other tenant goes on; tokens expire; an admin
//! sees a tenant's settings and tokens, never a token itself.

use autoloader_api::auth::digest;
use autoloader_tests::{TestApi, ADMIN_TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

fn scheduled(name: &str) -> Value {
    json!({
        "name": name, "source_type": "s3", "source_path": "s3://bucket-one/logs/",
        "format_type": "json", "destination_table": "analytics.events",
        "schedule_frequency": "hourly", "schedule_enabled": true
    })
}

async fn ticks(pool: &PgPool, tenant: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from schedule_ticks where tenant_id = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await
        .expect("count ticks")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_suspended_tenant_stops_and_every_other_goes_on(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (a, token_a) = api.tenant("acme").await;
    let (b, token_b) = api.tenant("globex").await;
    for (token, name) in [(&token_a, "a events"), (&token_b, "b events")] {
        let (status, _, body) = api
            .call("POST", "/api/v1/ingestions", token, Some(scheduled(name)))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // The token is remembered by this process before the suspension: it must be refused anyway.
    let (status, _, _) = api.call("GET", "/api/v1/ingestions", &token_a, None).await;
    assert_eq!(status, 200);
    assert_eq!((ticks(&pool, a).await, ticks(&pool, b).await), (1, 1));

    let tenant_path = format!("/api/v1/admin/tenants/{a}");
    let (status, _, suspended) = api
        .call(
            "PATCH",
            &tenant_path,
            ADMIN_TOKEN,
            Some(json!({"status": "SUSPENDED"})),
        )
        .await;
    assert_eq!(status, 200, "{suspended}");
    assert_eq!(suspended["status"], "SUSPENDED");
    assert!(suspended["suspended_at"].is_string(), "{suspended}");

    let (status, ctype, refused) = api.call("GET", "/api/v1/ingestions", &token_a, None).await;
    assert_eq!(
        (status, ctype.as_str()),
        (403, "application/problem+json"),
        "{refused}"
    );
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or("")
            .contains("suspended"),
        "{refused}"
    );
    assert_eq!(
        ticks(&pool, a).await,
        0,
        "no schedule of a suspended tenant fires"
    );
    // Nothing of it is deleted.
    let kept: i64 = sqlx::query_scalar("select count(*) from ingestions where tenant_id = $1")
        .bind(a)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(kept, 1);
    // The other tenant is untouched.
    let (status, _, list) = api.call("GET", "/api/v1/ingestions", &token_b, None).await;
    assert_eq!((status, list["total"].as_i64()), (200, Some(1)));
    assert_eq!(ticks(&pool, b).await, 1);
    // An edit made at psql while suspended does not bring a schedule back either.
    sqlx::query("update ingestions set schedule_frequency = 'daily', schedule_time = '02:00' where tenant_id = $1")
        .bind(a)
        .execute(&pool)
        .await
        .expect("edit at psql");
    assert_eq!(ticks(&pool, a).await, 0);

    let (status, _, shown) = api.call("GET", &tenant_path, ADMIN_TOKEN, None).await;
    assert_eq!((status, shown["status"].as_str()), (200, Some("SUSPENDED")));

    let (status, _, active) = api
        .call(
            "PATCH",
            &tenant_path,
            ADMIN_TOKEN,
            Some(json!({"status": "ACTIVE"})),
        )
        .await;
    assert_eq!(
        (status, active["status"].as_str()),
        (200, Some("ACTIVE")),
        "{active}"
    );
    assert!(active["suspended_at"].is_null());
    assert_eq!(ticks(&pool, a).await, 1, "its schedule is live again");
    let (status, _, _) = api.call("GET", "/api/v1/ingestions", &token_a, None).await;
    assert_eq!(status, 200, "its tokens work again");

    let (status, ctype, bad) = api
        .call(
            "PATCH",
            &tenant_path,
            ADMIN_TOKEN,
            Some(json!({"status": "GONE"})),
        )
        .await;
    assert_eq!(
        (status, ctype.as_str()),
        (422, "application/problem+json"),
        "{bad}"
    );
    // Only the admin token may do any of this.
    let (status, _, _) = api
        .call(
            "PATCH",
            &tenant_path,
            &token_a,
            Some(json!({"status": "ACTIVE"})),
        )
        .await;
    assert_eq!(status, 401);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn tokens_expire_and_an_admin_sees_them_but_never_their_secret(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (tenant, first) = api.tenant("acme").await;
    let tokens_path = format!("/api/v1/admin/tenants/{tenant}/tokens");

    let (status, ctype, past) = api
        .call(
            "POST",
            &tokens_path,
            ADMIN_TOKEN,
            Some(json!({"expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        (status, ctype.as_str()),
        (422, "application/problem+json"),
        "{past}"
    );
    assert_eq!(past["errors"][0]["field"], "expires_at");

    let (status, _, created) = api
        .call(
            "POST",
            &tokens_path,
            ADMIN_TOKEN,
            Some(json!({"label": "airflow", "expires_at": "2999-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().expect("token").to_owned();
    // Its expiry passes (moved by hand before the token is first used, so no process
    // remembers it).
    sqlx::query(
        "update api_tokens set expires_at = now() - interval '1 second' where id = $1::uuid",
    )
    .bind(created["token_id"].as_str().expect("id"))
    .execute(&pool)
    .await
    .expect("expire");
    let (status, _, expired) = api.call("GET", "/api/v1/ingestions", &token, None).await;
    assert_eq!(status, 401, "{expired}");
    assert!(
        expired["detail"].as_str().unwrap_or("").contains("expired"),
        "{expired}"
    );
    let (status, _, _) = api.call("GET", "/api/v1/ingestions", &first, None).await;
    assert_eq!(status, 200, "the tenant's other token still works");

    let (status, _, list) = api.call("GET", &tokens_path, ADMIN_TOKEN, None).await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["label"], "airflow");
    assert!(items[1]["expires_at"].is_string());
    let text = list.to_string();
    assert!(
        !text.contains(&token) && !text.contains(&first),
        "no token is ever shown"
    );
    let (status, _, _) = api
        .call(
            "GET",
            &format!("/api/v1/admin/tenants/{}/tokens", Uuid::now_v7()),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// A flood of requests with a bad token costs one database query: the refusal is remembered
/// (shown here by making the token valid behind the API's back: the API keeps refusing it, as it
/// never asks again within the cache's TTL), while a token issued through the API works at once.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_refused_token_is_remembered_and_refused_without_asking_again(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (tenant, _) = api.tenant("acme").await;
    let bad = "al_0000000000000000000000000000000000000000000000000000000000000000";
    for _ in 0..20 {
        let (status, _, _) = api.call("GET", "/api/v1/ingestions", bad, None).await;
        assert_eq!(status, 401);
    }
    sqlx::query(
        "insert into api_tokens (id, tenant_id, token_sha256, label) values ($1, $2, $3, 'behind the back')",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(&digest(bad)[..])
    .execute(&pool)
    .await
    .expect("store the token directly");
    let (status, _, _) = api.call("GET", "/api/v1/ingestions", bad, None).await;
    assert_eq!(status, 401, "the refusal is remembered: no query was made");

    // A token issued through the API is never held back by such a memory.
    let (status, _, created) = api
        .call(
            "POST",
            &format!("/api/v1/admin/tenants/{tenant}/tokens"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 201);
    let token = created["token"].as_str().expect("token");
    let (status, _, _) = api.call("GET", "/api/v1/ingestions", token, None).await;
    assert_eq!(status, 200);
}
