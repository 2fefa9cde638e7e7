//! The audit trail: every change through the API is recorded with who (token id and name, or the
//! admin), when, the request id and what (before/after, secrets masked); a change at psql is
//! recorded as by `database`; the engine's bookkeeping is not a change; PostgreSQL refuses to
//! change or delete an audit row; an ingestion's events outlive it; tenants read only their own.

use autoloader_tests::{TestApi, ADMIN_TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;
const SECRET: &str = "hunter2-plaintext";
const NEW_SECRET: &str = "correct-horse-plaintext";

/// Sends a request with its own `x-request-id`; returns (status, body).
async fn call_as(
    api: &TestApi,
    method: &str,
    path: &str,
    token: &str,
    request_id: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = api
        .client
        .request(method, api.url(path))
        .bearer_auth(token)
        .header("x-request-id", request_id);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(request_id),
        "the answer carries the request id"
    );
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn definition(name: &str) -> Value {
    json!({
        "name": name, "source_type": "s3", "source_path": "s3://bucket-one/in/",
        "format_type": "json", "destination_table": "raw.events",
        "schedule_frequency": "hourly", "schedule_timezone": "UTC", "schedule_enabled": true,
        "options": {"s3_access_key_id": "AKIA1", "s3_secret_access_key": SECRET}
    })
}

/// Every event of an ingestion, newest first, through the tenant's route.
async fn events(api: &TestApi, token: &str, id: Uuid) -> Vec<Value> {
    let (status, _, page) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/events?page_size=200"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().expect("items").clone()
}

/// The admin's page for `query`.
async fn admin_audit(api: &TestApi, query: &str) -> Value {
    let (status, _, page) = api
        .call(
            "GET",
            &format!("/api/v1/admin/audit?{query}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_change_through_the_api_is_recorded_with_who_when_which_request_and_what(
    pool: PgPool,
) {
    let api = TestApi::spawn(pool.clone()).await;
    let (tenant, _first) = api.tenant("data-eng").await;
    let (status, issued) = call_as(
        &api,
        "POST",
        &format!("/api/v1/admin/tenants/{tenant}/tokens"),
        ADMIN_TOKEN,
        "req-issue",
        Some(json!({"label": "oncall-bot"})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let bot = issued["token"].as_str().expect("token").to_owned();
    let bot_id = issued["token_id"].as_str().expect("token id").to_owned();

    // Created, by the bot, in request req-create.
    let (status, created) = call_as(
        &api,
        "POST",
        "/api/v1/ingestions",
        &bot,
        "req-create",
        Some(definition("events")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id: Uuid = created["id"].as_str().expect("id").parse().expect("uuid");
    let evs = events(&api, &bot, id).await;
    assert_eq!(actions(&evs), ["ingestion.created"]);
    let e = &evs[0];
    assert_eq!(e["by"], "token");
    assert_eq!(e["actor"], "oncall-bot");
    assert_eq!(e["token_id"], bot_id.as_str());
    assert_eq!(e["request_id"], "req-create");
    assert_eq!(e["tenant_id"], tenant.to_string());
    assert_eq!(e["ingestion_id"], id.to_string());
    assert!(e["at"].is_string(), "{e}");
    assert_eq!(e["detail"]["after"]["name"], "events");
    assert_eq!(e["detail"]["after"]["schedule_frequency"], "hourly");
    assert_eq!(
        e["detail"]["after"]["options.s3_secret_access_key"],
        "********"
    );
    assert_eq!(e["detail"]["after"]["options.s3_access_key_id"], "AKIA1");

    // Updated: exactly the changed fields, before and after; a changed secret shows as changed,
    // masked on both sides.
    let (status, patched) = call_as(
        &api,
        "PATCH",
        &format!("/api/v1/ingestions/{id}"),
        &bot,
        "req-patch",
        Some(json!({
            "description": "clicks from the web shop",
            "schedule_frequency": "daily", "schedule_time": "02:30",
            "options": {"s3_access_key_id": "AKIA1", "s3_secret_access_key": NEW_SECRET}
        })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let evs = events(&api, &bot, id).await;
    assert_eq!(actions(&evs), ["ingestion.updated", "ingestion.created"]);
    assert_eq!(evs[0]["request_id"], "req-patch");
    assert_eq!(
        evs[0]["detail"]["changes"],
        json!({
            "description": {"before": null, "after": "clicks from the web shop"},
            "schedule_frequency": {"before": "hourly", "after": "daily"},
            "schedule_time": {"before": null, "after": "02:30"},
            "options.s3_secret_access_key": {"before": "********", "after": "********"},
        }),
        "{}",
        evs[0]
    );

    // A PUT of what the GET shows (the mask echoed back) changes nothing: no event.
    let (_, _, shown) = api
        .call("GET", &format!("/api/v1/ingestions/{id}"), &bot, None)
        .await;
    let mut same = definition("events");
    same["description"] = shown["description"].clone();
    same["schedule_frequency"] = json!("daily");
    same["schedule_time"] = json!("02:30");
    same["options"]["s3_secret_access_key"] = json!("********");
    let (status, put) = call_as(
        &api,
        "PUT",
        &format!("/api/v1/ingestions/{id}"),
        &bot,
        "req-put",
        Some(same),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(
        events(&api, &bot, id).await.len(),
        2,
        "a no-op PUT is no change"
    );

    // Paused with a reason, then resumed.
    let (status, _) = call_as(
        &api,
        "POST",
        &format!("/api/v1/ingestions/{id}/schedule/disable"),
        &bot,
        "req-pause",
        Some(json!({"reason": "upstream outage INC-42"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call_as(
        &api,
        "POST",
        &format!("/api/v1/ingestions/{id}/schedule/enable"),
        &bot,
        "req-resume",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let evs = events(&api, &bot, id).await;
    assert_eq!(
        actions(&evs)[..2],
        ["schedule.enabled", "schedule.disabled"]
    );
    assert_eq!(evs[1]["request_id"], "req-pause");
    assert_eq!(
        evs[1]["detail"]["changes"]["paused_reason"],
        json!({"before": null, "after": "upstream outage INC-42"})
    );
    assert_eq!(
        evs[1]["detail"]["changes"]["schedule_enabled"],
        json!({"before": true, "after": false})
    );
    assert_eq!(
        evs[0]["detail"]["changes"]["schedule_enabled"],
        json!({"before": false, "after": true})
    );

    // Triggered by hand, then cancelled.
    let (status, run) = call_as(
        &api,
        "POST",
        &format!("/api/v1/ingestions/{id}/run"),
        &bot,
        "req-trigger",
        None,
    )
    .await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_str().expect("run id").to_owned();
    let (status, _) = call_as(
        &api,
        "POST",
        &format!("/api/v1/runs/{run_id}/cancel"),
        &bot,
        "req-cancel",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let evs = events(&api, &bot, id).await;
    assert_eq!(actions(&evs)[..2], ["run.cancelled", "run.triggered"]);
    for (e, req) in evs[..2].iter().zip(["req-cancel", "req-trigger"]) {
        assert_eq!(e["detail"]["run_id"], run_id.as_str(), "{e}");
        assert_eq!(e["request_id"], req);
        assert_eq!(e["actor"], "oncall-bot");
    }

    // The tenant changed and the token revoked, by the admin.
    let (status, _) = call_as(
        &api,
        "PATCH",
        &format!("/api/v1/admin/tenants/{tenant}"),
        ADMIN_TOKEN,
        "req-tenant",
        Some(json!({"max_ingestions": 7, "status": "ACTIVE"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call_as(
        &api,
        "DELETE",
        &format!("/api/v1/admin/tokens/{bot_id}"),
        ADMIN_TOKEN,
        "req-revoke",
        None,
    )
    .await;
    assert_eq!(status, 204);
    // Revoking again changes nothing: no second event.
    api.call(
        "DELETE",
        &format!("/api/v1/admin/tokens/{bot_id}"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    let page = admin_audit(&api, &format!("tenant={tenant}")).await;
    let all = page["items"].as_array().expect("items");
    let tenant_events: Vec<&Value> = all.iter().filter(|e| e["ingestion_id"].is_null()).collect();
    assert_eq!(
        tenant_events
            .iter()
            .map(|e| e["action"].as_str().expect("action"))
            .collect::<Vec<_>>(),
        [
            "token.revoked",
            "tenant.updated",
            "token.issued",
            "tenant.created"
        ]
    );
    let [revoked, updated, issued_ev, created_tenant] = tenant_events[..] else {
        panic!("four tenant events");
    };
    assert_eq!(revoked["by"], "admin");
    assert_eq!(revoked["request_id"], "req-revoke");
    assert_eq!(revoked["detail"]["token_id"], bot_id.as_str());
    assert_eq!(revoked["detail"]["label"], "oncall-bot");
    assert_eq!(
        updated["detail"]["changes"],
        json!({"max_ingestions": {"before": null, "after": 7}}),
        "status was sent but did not change"
    );
    assert_eq!(updated["request_id"], "req-tenant");
    assert_eq!(issued_ev["detail"]["token_id"], bot_id.as_str());
    assert_eq!(issued_ev["request_id"], "req-issue");
    assert_eq!(created_tenant["detail"]["name"], "data-eng");
    assert_eq!(created_tenant["by"], "admin");

    // Deleted by another token: the events stay, for the admin to read.
    let (status, fresh) = call_as(
        &api,
        "POST",
        &format!("/api/v1/admin/tenants/{tenant}/tokens"),
        ADMIN_TOKEN,
        "req-issue-2",
        Some(json!({"label": "cleanup-job"})),
    )
    .await;
    assert_eq!(status, 201);
    let cleaner = fresh["token"].as_str().expect("token");
    let (status, _) = call_as(
        &api,
        "DELETE",
        &format!("/api/v1/ingestions/{id}"),
        cleaner,
        "req-delete",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, gone) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/events"),
            cleaner,
            None,
        )
        .await;
    assert_eq!(status, 404, "a deleted ingestion's path is gone: {gone}");
    let page = admin_audit(&api, &format!("ingestion={id}")).await;
    let kept = page["items"].as_array().expect("items");
    assert_eq!(
        actions(kept),
        [
            "ingestion.deleted",
            "run.cancelled",
            "run.triggered",
            "schedule.enabled",
            "schedule.disabled",
            "ingestion.updated",
            "ingestion.created"
        ]
    );
    assert_eq!(kept[0]["actor"], "cleanup-job");
    assert_eq!(kept[0]["request_id"], "req-delete");
    assert_eq!(kept[0]["detail"]["before"]["name"], "events");
    assert_eq!(
        kept[0]["detail"]["before"]["options.s3_secret_access_key"],
        "********"
    );

    // No secret, plain or sealed, is anywhere in the trail.
    let stored: Vec<String> = sqlx::query_scalar("select detail::text from audit_events")
        .fetch_all(&pool)
        .await
        .expect("audit rows");
    for d in &stored {
        assert!(
            !d.contains(SECRET) && !d.contains(NEW_SECRET) && !d.contains("enc:v1:"),
            "{d}"
        );
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_change_made_at_psql_is_recorded_as_by_database_and_bookkeeping_is_not_a_change(
    pool: PgPool,
) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("data-eng").await;
    let id = api.create_ingestion(&token, definition("events")).await;

    // What the ticker writes (its own statement), and an update that changes nothing.
    let mut tx = pool.begin().await.expect("tx");
    autoloader::ticks::tick_advance(
        &mut tx,
        &[autoloader::ticks::Advance {
            ingestion_id: id,
            next_fire_at: chrono::Utc::now() + chrono::Duration::hours(1),
            last_fire_at: Some(chrono::Utc::now()),
            last_queued: Some(chrono::Utc::now()),
            backlog: None,
        }],
    )
    .await
    .expect("tick advance");
    tx.commit().await.expect("commit");
    sqlx::query("update ingestions set name = name, updated_at = now() where id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("no-op update");
    assert_eq!(events(&api, &token, id).await.len(), 1, "only the creation");

    // A person at psql.
    sqlx::query(
        "update ingestions set schedule_cron = '*/5 * * * *', schedule_frequency = 'custom',
                options = options || '{\"s3_region\": \"eu-west-1\"}' where id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("psql edit");
    sqlx::query("update ingestions set schedule_enabled = false where id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("psql pause");
    let role: String = sqlx::query_scalar("select session_user::text")
        .fetch_one(&pool)
        .await
        .expect("role");
    let evs = events(&api, &token, id).await;
    assert_eq!(
        actions(&evs),
        [
            "schedule.disabled",
            "ingestion.updated",
            "ingestion.created"
        ]
    );
    for e in &evs[..2] {
        assert_eq!(e["by"], "database", "{e}");
        assert_eq!(e["actor"], role.as_str());
        assert_eq!(e["token_id"], Value::Null);
        assert_eq!(e["request_id"], Value::Null);
    }
    assert_eq!(
        evs[1]["detail"]["changes"],
        json!({
            "schedule_cron": {"before": null, "after": "*/5 * * * *"},
            "schedule_frequency": {"before": "hourly", "after": "custom"},
            "options.s3_region": {"before": null, "after": "eu-west-1"},
        })
    );

    // The engine switching off a schedule that no longer parses is the scheduler's change.
    sqlx::query("update ingestions set schedule_enabled = true where id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("psql resume");
    let mut tx = pool.begin().await.expect("tx");
    autoloader::ingestions::store::ingestion_schedule_switch_off(&mut tx, id)
        .await
        .expect("switch off");
    tx.commit().await.expect("commit");
    let evs = events(&api, &token, id).await;
    assert_eq!(evs[0]["action"], "schedule.disabled");
    assert_eq!(evs[0]["by"], "scheduler");
    assert_eq!(evs[1]["action"], "schedule.enabled");
    assert_eq!(evs[1]["by"], "database");

    // Deleted at psql: recorded, and kept.
    sqlx::query("delete from ingestions where id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("psql delete");
    let page = admin_audit(&api, &format!("ingestion={id}")).await;
    assert_eq!(page["total"], 6);
    assert_eq!(page["items"][0]["action"], "ingestion.deleted");
    assert_eq!(page["items"][0]["by"], "database");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn postgres_refuses_to_change_or_delete_an_audit_row(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    api.tenant("data-eng").await;
    let before: String = sqlx::query_scalar("select row_to_json(a)::text from audit_events a")
        .fetch_one(&pool)
        .await
        .expect("the tenant's creation");
    for statement in [
        "update audit_events set actor = 'someone else'",
        "update audit_events set detail = '{}'",
        "delete from audit_events",
        "truncate audit_events",
    ] {
        let err = sqlx::query(statement)
            .execute(&pool)
            .await
            .expect_err(statement);
        assert!(
            err.to_string().contains("audit_events is append-only"),
            "{statement}: {err}"
        );
    }
    let after: String = sqlx::query_scalar("select row_to_json(a)::text from audit_events a")
        .fetch_one(&pool)
        .await
        .expect("still there");
    assert_eq!(before, after);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn events_are_paged_newest_first(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("data-eng").await;
    let (_, _, created) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(definition("events")),
        )
        .await;
    let id = created["id"].as_str().expect("id");
    for n in 1..=4 {
        let (status, _, _) = api
            .call(
                "PATCH",
                &format!("/api/v1/ingestions/{id}"),
                &token,
                Some(json!({"description": format!("v{n}")})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let page = |p: u32| {
        let api = &api;
        let token = &token;
        async move {
            let (status, _, body) = api
                .call(
                    "GET",
                    &format!("/api/v1/ingestions/{id}/events?page={p}&page_size=2"),
                    token,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let first = page(1).await;
    assert_eq!(first["total"], 5);
    let after = |e: &Value| e["detail"]["changes"]["description"]["after"].clone();
    assert_eq!(after(&first["items"][0]), "v4");
    assert_eq!(after(&first["items"][1]), "v3");
    let second = page(2).await;
    assert_eq!(after(&second["items"][0]), "v2");
    let third = page(3).await;
    assert_eq!(third["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(third["items"][0]["action"], "ingestion.created");

    let (status, _, bad) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/events?page_size=500"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    autoloader_tests::assert_field_error(&bad, "page_size", "page_size");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_tenant_reads_only_its_own_events_and_the_admin_filters_them(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (tenant_a, token_a) = api.tenant("team-a").await;
    let (tenant_b, token_b) = api.tenant("team-b").await;
    let (_, _, a) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token_a,
            Some(definition("a")),
        )
        .await;
    let a_id = a["id"].as_str().expect("id");
    let (_, _, b) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token_b,
            Some(definition("b")),
        )
        .await;
    let b_id = b["id"].as_str().expect("id");

    let (status, _, body) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{a_id}/events"),
            &token_b,
            None,
        )
        .await;
    assert_eq!(status, 404, "B cannot read A's events: {body}");
    let (status, _, _) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{b_id}/events"),
            &token_b,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = api.call("GET", "/api/v1/admin/audit", &token_a, None).await;
    assert_eq!(status, 401, "a tenant's token is not the admin's");

    let only_a = admin_audit(&api, &format!("tenant={tenant_a}")).await;
    let items = only_a["items"].as_array().expect("items");
    assert_eq!(actions(items), ["ingestion.created", "tenant.created"]);
    assert!(items.iter().all(|e| e["tenant_id"] == tenant_a.to_string()));
    let everyone = admin_audit(&api, "").await;
    assert_eq!(everyone["total"], 4);
    assert!(everyone["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|e| e["tenant_id"] == tenant_b.to_string()));
    let future = admin_audit(&api, "since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["total"], 0);
    let past = admin_audit(&api, "since=2000-01-01T00:00:00%2B02:00").await;
    assert_eq!(past["total"], 4);

    for (query, field) in [
        ("since=yesterday", "since"),
        ("tenant=not-a-uuid", "tenant"),
        ("ingestion=42", "ingestion"),
        ("page=0", "page"),
    ] {
        let (status, _, bad) = api
            .call(
                "GET",
                &format!("/api/v1/admin/audit?{query}"),
                ADMIN_TOKEN,
                None,
            )
            .await;
        assert_eq!(status, 422, "{query}: {bad}");
        autoloader_tests::assert_field_error(&bad, field, field);
    }
    let (status, _, bad) = api
        .call("GET", "/api/v1/admin/audit?tenantt=x", ADMIN_TOKEN, None)
        .await;
    assert_eq!(status, 400, "an unknown parameter: {bad}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn secrets_are_masked_as_the_api_masks_them(pool: PgPool) {
    // The trigger's rule (`audit_is_secret_option`) and the API's (`is_secret_option`) agree.
    for key in [
        "s3_secret_access_key",
        "S3_SECRET_ACCESS_KEY",
        "db_password",
        "api_token",
        "private_key",
        "s3_access_key_id",
        "s3_region",
        "s3_endpoint",
        "glob",
        "keys",
        "key",
        "delimiter",
    ] {
        let masked: bool = sqlx::query_scalar("select audit_is_secret_option($1)")
            .bind(key)
            .fetch_one(&pool)
            .await
            .expect("rule");
        assert_eq!(
            masked,
            autoloader::ingestions::definition::is_secret_option(key),
            "{key}"
        );
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn maintenance_asked_for_and_files_retried_are_recorded(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("data-eng").await;
    let (_, _, created) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(definition("events")),
        )
        .await;
    let id: Uuid = created["id"].as_str().expect("id").parse().expect("uuid");

    let (status, _, run) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/maintenance"),
            &token,
            Some(json!({"kind": "compact"})),
        )
        .await;
    assert_eq!(status, 202, "{run}");

    // Two files a run rejected; a retry of both takes them out of the ledger.
    for name in ["a.json", "b.json"] {
        sqlx::query(
            "insert into loaded_files (ingestion_id, path, size_bytes, last_modified, run_id,
                                       attempt, snapshot_id, rows_loaded, status, error)
             values ($1, $2, 7, now(), $3, 1, null, 0, 'rejected', 'bad line')",
        )
        .bind(id)
        .bind(format!("s3://bucket-one/in/{name}"))
        .bind(Uuid::now_v7())
        .execute(&pool)
        .await
        .expect("rejected file");
    }
    let (status, _, retried) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/files/retry"),
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{retried}");
    // A retry that finds nothing to retry changes nothing: no event.
    api.call(
        "POST",
        &format!("/api/v1/ingestions/{id}/files/retry"),
        &token,
        Some(json!({})),
    )
    .await;

    let evs = events(&api, &token, id).await;
    assert_eq!(
        actions(&evs),
        ["files.retried", "maintenance.queued", "ingestion.created"]
    );
    assert_eq!(
        evs[0]["detail"],
        json!({"count": 2, "paths": ["s3://bucket-one/in/a.json", "s3://bucket-one/in/b.json"]})
    );
    assert_eq!(evs[1]["detail"]["run_id"], run["id"]);
    assert_eq!(evs[1]["detail"]["kind"], "compact");
    assert_eq!(evs[1]["actor"], "first token");
}
