//! Tenants kept apart below the API, as a hostile tenant meets it: its own Iceberg namespace, its
//! own file roots, quotas on what it may create and trigger, a rate limit per token, and a cap on
//! the fleet's slots it may hold. Each test has a tenant trying and failing, and another tenant
//! going on unaffected.

use std::time::{Duration, Instant};

use autoloader::config::QuotaConfig;
use autoloader::runs::lease;
use autoloader_tests::loader::Loader;
use autoloader_tests::{
    assert_field_error, database_url, manual_run, scheduled_ingestion, tenant, test_egress,
    wait_for, TestApi, WorkerProcess, ADMIN_TOKEN,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;
const TEST_WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const TTL: Duration = Duration::from_secs(60);

fn s3_ingestion(name: &str) -> Value {
    json!({
        "name": name, "source_type": "s3", "source_path": "s3://bucket-one/logs/",
        "format_type": "json", "destination_table": "analytics.events"
    })
}

async fn admin_patch(api: &TestApi, tenant: Uuid, body: Value) -> (u16, Value) {
    let (status, _, body) = api
        .call(
            "PATCH",
            &format!("/api/v1/admin/tenants/{tenant}"),
            ADMIN_TOKEN,
            Some(body),
        )
        .await;
    (status, body)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_tenants_naming_one_destination_write_two_tables(pool: PgPool) {
    let w = Loader::new(pool, "two-tables").await;
    let (ops, ops_token) = w.api.tenant("Ops Team").await;
    let ops_dir = w.root.join("ops");
    std::fs::create_dir_all(&ops_dir).expect("ops dir");
    w.api.give_roots(ops, std::slice::from_ref(&ops_dir)).await;

    // The other tenant gets there first, with a schema of its own under the same name.
    std::fs::write(ops_dir.join("1.csv"), "name,score\nmallory,99\n").expect("write");
    let (status, _, ops_ing) = w
        .api
        .call(
            "POST",
            "/api/v1/ingestions",
            &ops_token,
            Some(json!({
                "name": "squatter", "source_type": "local",
                "source_path": format!("file://{}/", ops_dir.display()),
                "format_type": "csv", "destination_table": "shared.events"
            })),
        )
        .await;
    assert_eq!(status, 201, "{ops_ing}");
    assert_eq!(ops_ing["iceberg_table"], "ops_team.shared.events");
    let ops_id: Uuid = ops_ing["id"].as_str().expect("id").parse().expect("uuid");
    let _worker = w.worker("loader", &[]);
    let run = w.api.trigger(&ops_token, ops_id).await;
    let run = w
        .api
        .finished_run(&ops_token, run["id"].as_str().expect("id"))
        .await;
    assert_eq!(run["status"], "SUCCESS", "{run}");

    w.write("1.json", b"{\"id\": 1, \"value\": \"a\"}\n");
    let mine = w.ingestion("json", "shared.events", json!({})).await;
    let (_, _, shown) = w
        .api
        .call("GET", &format!("/api/v1/ingestions/{mine}"), &w.token, None)
        .await;
    assert_eq!(shown["iceberg_table"], "data_eng.shared.events");
    let run = w.run_by_hand(mine).await;
    assert_eq!(
        run["status"], "SUCCESS",
        "the other tenant's table is not in the way: {run}"
    );

    let t = w.table("shared.events").await.expect("this tenant's table");
    assert_eq!(t.rows, [json!({"id": 1, "value": "a"})]);
    let theirs = w
        .table_at("ops_team.shared.events")
        .await
        .expect("the other tenant's table");
    assert_eq!(theirs.rows, [json!({"name": "mallory", "score": 99})]);
    assert!(
        w.table_at("shared.events").await.is_none(),
        "no table lies outside a tenant's namespace"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_namespace_is_unique_valid_and_never_changes(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let create = |body: Value| {
        let api = &api;
        async move {
            let (status, _, body) = api
                .call("POST", "/api/v1/admin/tenants", ADMIN_TOKEN, Some(body))
                .await;
            (status, body)
        }
    };
    let (status, body) = create(json!({"name": "Acme", "namespace": "acme_prod"})).await;
    assert_eq!(
        (status, body["namespace"].clone()),
        (201, json!("acme_prod")),
        "{body}"
    );
    let acme: Uuid = body["tenant_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");

    let (status, body) = create(json!({"name": "Mallory", "namespace": "acme_prod"})).await;
    assert_eq!(status, 409, "{body}");
    assert_field_error(&body, "namespace", "acme_prod");
    for (n, bad) in ["Acme", "a.b", "9lives", "a-b", "", "x\u{0}"]
        .iter()
        .enumerate()
    {
        let (status, body) = create(json!({"name": format!("bad {n}"), "namespace": bad})).await;
        assert_eq!(status, 422, "{bad:?}: {body}");
        assert_field_error(&body, "namespace", "namespace");
    }
    // Derived from the name when not given.
    let (status, body) = create(json!({"name": "Globex Corp."})).await;
    assert_eq!(
        (status, body["namespace"].clone()),
        (201, json!("globex_corp")),
        "{body}"
    );

    // Fixed once set: not through the API, not at psql.
    let (status, body) = admin_patch(&api, acme, json!({"namespace": "other"})).await;
    assert_eq!(status, 422, "{body}");
    let psql = sqlx::query("update tenants set namespace = 'other' where id = $1")
        .bind(acme)
        .execute(&pool)
        .await;
    assert!(
        psql.is_err(),
        "PostgreSQL refuses to move a tenant's tables"
    );
    let (_, _, shown) = api
        .call(
            "GET",
            &format!("/api/v1/admin/tenants/{acme}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(shown["namespace"], "acme_prod");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_tenant_reads_only_under_its_own_file_roots(pool: PgPool) {
    let w = Loader::new(pool, "own-roots").await;
    let (mallory, mallory_token) = w.api.tenant("mallory").await;
    let mallory_dir = w.root.join("mallory");
    std::fs::create_dir_all(&mallory_dir).expect("dir");

    // An admin may give only directories inside the operator's roots.
    for (roots, needle) in [
        (
            json!(["/etc"]),
            "outside the directories this server allows",
        ),
        (json!(["relative/dir"]), "not an absolute path"),
        (json!([format!("{}/../..", w.root.display())]), ".."),
    ] {
        let (status, body) = admin_patch(&w.api, mallory, json!({ "file_roots": roots })).await;
        assert_eq!(status, 422, "{roots}: {body}");
        assert_field_error(&body, "file_roots", needle);
    }
    let (status, body) = admin_patch(&w.api, mallory, json!({"file_roots": [mallory_dir]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["file_roots"],
        json!([mallory_dir.display().to_string()])
    );

    // Mallory points at the other tenant's directory: refused, naming the field.
    let (status, _, body) = w
        .api
        .call(
            "POST",
            "/api/v1/ingestions",
            &mallory_token,
            Some(json!({
                "name": "theft", "source_type": "local",
                "source_path": format!("file://{}/", w.source.display()),
                "format_type": "json", "destination_table": "stolen.rows"
            })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_field_error(&body, "source_path", "outside the tenant's file roots");

    // Roots narrowed after an ingestion was made: its runs stop reading there.
    let _worker = w.worker("loader", &[]);
    w.write("1.json", b"{\"id\": 1}\n");
    let ingestion = w.ingestion("json", "mine.rows", json!({})).await;
    let me: Uuid = sqlx::query_scalar("select tenant_id from ingestions where id = $1")
        .bind(ingestion)
        .fetch_one(&w.pool)
        .await
        .expect("tenant");
    let (status, body) = admin_patch(&w.api, me, json!({"file_roots": [mallory_dir]})).await;
    assert_eq!(status, 200, "{body}");
    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("outside the tenant's file roots")),
        "{run}"
    );
    assert!(w.table("mine.rows").await.is_none(), "nothing was read");
    let (status, body) = admin_patch(&w.api, me, json!({"file_roots": [w.root]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(w.run_by_hand(ingestion).await["status"], "SUCCESS");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn quotas_refuse_past_the_limit_with_403_and_429(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (acme, acme_token) = api.tenant("acme").await;
    let (_, other_token) = api.tenant("globex").await;

    for (body, field) in [
        (json!({"max_ingestions": -1}), "max_ingestions"),
        (json!({"max_concurrent_runs": 1.5}), "max_concurrent_runs"),
        (
            json!({"max_manual_runs_per_minute": 9_999_999_999i64}),
            "max_manual_runs_per_minute",
        ),
    ] {
        let (status, reply) = admin_patch(&api, acme, body.clone()).await;
        assert_eq!(status, 422, "{body}: {reply}");
        assert!(reply.to_string().contains(field), "{body}: {reply}");
    }
    // A whole number may carry a zero fraction, as JSON allows.
    let (status, body) = admin_patch(
        &api,
        acme,
        json!({"max_ingestions": 2.0, "max_manual_runs_per_minute": 2, "max_concurrent_runs": 3}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["quotas"],
        json!({"max_ingestions": 2, "max_concurrent_runs": 3, "max_manual_runs_per_minute": 2})
    );

    let mut ids = Vec::new();
    for n in 0..2 {
        let (status, _, body) = api
            .call(
                "POST",
                "/api/v1/ingestions",
                &acme_token,
                Some(s3_ingestion(&format!("i{n}"))),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let (status, ctype, body) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &acme_token,
            Some(s3_ingestion("one too many")),
        )
        .await;
    assert_eq!(
        (status, ctype.as_str()),
        (403, "application/problem+json"),
        "{body}"
    );
    assert_eq!(body["type"], "/problems/quota");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("max_ingestions")),
        "{body}"
    );
    let count: i64 = sqlx::query_scalar("select count(*) from ingestions where tenant_id = $1")
        .bind(acme)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 2, "nothing half-written");

    // Two manual triggers a minute, then 429 with the wait.
    for id in &ids {
        let (status, _, body) = api
            .call(
                "POST",
                &format!("/api/v1/ingestions/{id}/run"),
                &acme_token,
                None,
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let res = reqwest::Client::new()
        .post(api.url(&format!("/api/v1/ingestions/{}/run", ids[0])))
        .bearer_auth(&acme_token)
        .send()
        .await
        .expect("trigger");
    assert_eq!(res.status(), 429);
    let wait: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["type"], "/problems/quota", "{body}");

    // The other tenant is unaffected by acme's quotas.
    for n in 0..3 {
        let (status, _, body) = api
            .call(
                "POST",
                "/api/v1/ingestions",
                &other_token,
                Some(s3_ingestion(&format!("g{n}"))),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // null puts a quota back to the operator's default.
    let (status, body) = admin_patch(&api, acme, json!({"max_ingestions": null})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["max_ingestions"], Value::Null);
    assert_eq!(
        body["quotas"]["max_ingestions"],
        QuotaConfig::default().default_max_ingestions
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_token_past_its_rate_gets_429_and_other_tokens_do_not(pool: PgPool) {
    let quotas = QuotaConfig {
        token_rate_limit: 2,
        ..QuotaConfig::default()
    };
    let api = TestApi::spawn_with_state(
        autoloader_api::AppState::new(pool, Some(ADMIN_TOKEN))
            .with_egress(test_egress())
            .with_quotas(quotas),
    )
    .await;
    let (_, noisy) = api.tenant("noisy").await;
    let (_, quiet) = api.tenant("quiet").await;
    let mut limited = 0;
    for _ in 0..20 {
        let (status, _, body) = api.call("GET", "/api/v1/ingestions", &noisy, None).await;
        match status {
            200 => {}
            429 => {
                assert_eq!(body["type"], "/problems/quota", "{body}");
                limited += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        limited >= 10,
        "a burst of 20 at 2/s (burst 4) is mostly refused: {limited}"
    );
    let (status, _, body) = api.call("GET", "/api/v1/ingestions", &quiet, None).await;
    assert_eq!(status, 200, "another token is unaffected: {body}");
}

/// Queues one manual run for each of `n` new ingestions of `tenant` (as the API would).
async fn queue_runs(pool: &PgPool, tenant: Uuid, prefix: &str, n: i64, knobs: Value) -> Vec<Uuid> {
    sqlx::query_scalar(
        "with i as (
             insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                                     destination_table, description)
             select gen_random_uuid(), $1, $2 || g, 'local', 'file:///data/in/', 'json',
                    'analytics.events', $4
             from generate_series(1, $3) g
             returning id, tenant_id
         )
         insert into runs (id, ingestion_id, tenant_id, triggered_by)
         select gen_random_uuid(), id, tenant_id, 'manual' from i
         returning id",
    )
    .bind(tenant)
    .bind(prefix)
    .bind(n)
    .bind(knobs.to_string())
    .fetch_all(pool)
    .await
    .expect("queue runs")
}

async fn running(pool: &PgPool, tenant: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from runs where tenant_id = $1 and status = 'RUNNING'")
        .bind(tenant)
        .fetch_one(pool)
        .await
        .expect("count running")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn concurrent_claims_never_exceed_a_tenants_cap(pool: PgPool) {
    let capped = tenant(&pool, "capped").await;
    let open = tenant(&pool, "open").await;
    sqlx::query("update tenants set max_concurrent_runs = 3 where id = $1")
        .bind(capped)
        .execute(&pool)
        .await
        .expect("cap");
    queue_runs(&pool, capped, "c", 60, json!({})).await;
    queue_runs(&pool, open, "o", 8, json!({})).await;

    // Eight claimers race, each asking for many runs, again and again.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            for _ in 0..5 {
                got += lease::run_claim(&pool, &format!("w{w}"), 10, TTL)
                    .await
                    .expect("claim")
                    .len();
            }
            got
        }));
    }
    for t in tasks {
        t.await.expect("claimer");
    }
    assert_eq!(
        running(&pool, capped).await,
        3,
        "exactly its cap, never more"
    );
    assert_eq!(
        running(&pool, open).await,
        8,
        "the uncapped tenant is not held back"
    );

    // A finished run frees one slot, and only one.
    let one: (Uuid, i32, String) = sqlx::query_as(
        "select id, attempt, worker_id from runs where tenant_id = $1 and status = 'RUNNING' limit 1",
    )
    .bind(capped)
    .fetch_one(&pool)
    .await
    .expect("one");
    lease::run_complete(
        &pool,
        &one.2,
        &[(
            lease::Lease {
                run_id: one.0,
                attempt: one.1,
            },
            lease::Outcome::Success(Default::default()),
        )],
    )
    .await
    .expect("complete");
    let again = lease::run_claim(&pool, "late", 10, TTL)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(running(&pool, capped).await, 3);

    // The operator's default caps a tenant without a cap of its own.
    let exchanged = lease::run_exchange(&pool, "default", &[], 10, TTL, Some(8))
        .await
        .expect("exchange");
    assert!(
        exchanged.claimed.is_empty(),
        "the open tenant already has 8 running"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_suspended_tenants_queued_runs_wait_until_it_is_active(pool: PgPool) {
    let t = tenant(&pool, "sleepy").await;
    let runs = queue_runs(&pool, t, "s", 2, json!({})).await;
    sqlx::query("update tenants set status = 'SUSPENDED', suspended_at = now() where id = $1")
        .bind(t)
        .execute(&pool)
        .await
        .expect("suspend");
    let got = lease::run_claim(&pool, "w", 10, TTL).await.expect("claim");
    assert!(got.is_empty(), "{got:?}");
    let status: Vec<String> = sqlx::query_scalar("select status from runs where id = any($1)")
        .bind(&runs)
        .fetch_all(&pool)
        .await
        .expect("status");
    assert_eq!(status, ["QUEUED", "QUEUED"], "kept, not failed");
    sqlx::query("update tenants set status = 'ACTIVE', suspended_at = null where id = $1")
        .bind(t)
        .execute(&pool)
        .await
        .expect("resume");
    assert_eq!(
        lease::run_claim(&pool, "w", 10, TTL)
            .await
            .expect("claim")
            .len(),
        2
    );
}

/// Tenant A holds every slot it may with slow runs and has a thousand more queued, older than
/// tenant B's one run. Two worker processes share four slots; A's cap comes from the operator's
/// default. B's run starts at once, while A's runs are still running, and A never holds more
/// than its cap across the two processes.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_tenant_at_its_cap_does_not_starve_another(pool: PgPool) {
    let a = tenant(&pool, "hog").await;
    let b = tenant(&pool, "small").await;
    queue_runs(&pool, a, "slow", 1000, json!({"test_sleep_ms": 600_000})).await;
    let url = database_url(&pool);
    let env = [
        ("SCHEDULER_MAX_WORKERS", "2"),
        ("AUTOLOADER_DEFAULT_MAX_CONCURRENT_RUNS", "3"),
        ("AUTOLOADER_NO_TICKER", "true"),
    ];
    let _w1 = WorkerProcess::spawn(TEST_WORKER, &url, "fair-1", &env);
    let _w2 = WorkerProcess::spawn(TEST_WORKER, &url, "fair-2", &env);
    wait_for(
        "tenant A to hold its cap",
        Duration::from_secs(30),
        || async { (running(&pool, a).await == 3).then_some(()) },
    )
    .await;
    let b_ingestion = scheduled_ingestion(&pool, b, "quick", "0 0 1 1 *", json!({})).await;
    let queued_at = Instant::now();
    let b_run = manual_run(&pool, b_ingestion).await;

    wait_for(
        "tenant B's run to finish",
        Duration::from_secs(30),
        || async {
            let n = running(&pool, a).await;
            assert!(n <= 3, "tenant A holds {n} slots, over its cap of 3");
            let status: String = sqlx::query_scalar("select status from runs where id = $1")
                .bind(b_run)
                .fetch_one(&pool)
                .await
                .expect("status");
            (status == "SUCCESS").then_some(())
        },
    )
    .await;
    println!(
        "tenant B's run finished {:?} after it was queued",
        queued_at.elapsed()
    );
    assert_eq!(
        running(&pool, a).await,
        3,
        "A's slow runs are still running"
    );
    let a_done: i64 = sqlx::query_scalar(
        "select count(*) from runs where tenant_id = $1 and status not in ('QUEUED', 'RUNNING')",
    )
    .bind(a)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(a_done, 0, "B did not wait for any of A's runs to end");
}

/// Without caps, a claim takes every tenant's oldest due run before any tenant's second: a
/// tenant's backlog, however old, does not push another tenant's run to the back.
#[sqlx::test(migrator = "MIGRATOR")]
async fn claims_go_round_robin_between_tenants(pool: PgPool) {
    let busy = tenant(&pool, "busy").await;
    let quiet = tenant(&pool, "quiet").await;
    queue_runs(&pool, busy, "old", 100, json!({})).await;
    let late = queue_runs(&pool, quiet, "new", 1, json!({})).await;
    let got = lease::run_claim(&pool, "w", 2, TTL).await.expect("claim");
    let ids: Vec<Uuid> = got.iter().map(|c| c.run_id).collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.contains(&late[0]),
        "the quiet tenant's newer run is in the first claim"
    );
    assert_eq!(running(&pool, busy).await, 1);
}
