//! The admin API over real HTTP and real PostgreSQL: the product spec's examples (section 13),
//! validation, tenancy, manual runs.

use autoloader_tests::{uuid_v7_at, TestApi};
use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

fn instant(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an instant: {v}"))
}

fn instants(v: &Value) -> Vec<DateTime<Utc>> {
    v.as_array().expect("array").iter().map(instant).collect()
}

/// The spec's 13.1 request.
fn cloudtrail() -> Value {
    json!({
        "name": "Daily AWS CloudTrail Ingestion",
        "source_type": "s3",
        "source_path": "s3a://my-logs-bucket/cloudtrail/",
        "format_type": "json",
        "destination_table": "security.cloudtrail_logs",
        "schedule_frequency": "daily",
        "schedule_time": "02:00",
        "schedule_timezone": "UTC",
        "schedule_enabled": true
    })
}

/// The first 02:00 UTC strictly after `now`.
fn next_two_am(now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now
        .date_naive()
        .and_hms_opt(2, 0, 0)
        .expect("time")
        .and_utc();
    if today > now {
        today
    } else {
        today + Duration::days(1)
    }
}

async fn create(api: &TestApi, token: &str, body: Value) -> Value {
    let (status, _, created) = api
        .call("POST", "/api/v1/ingestions", token, Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn spec_13_1_daily_at_two_utc(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (tenant, token) = api.tenant("acme").await;
    let before = Utc::now();
    let (status, ctype, body) = api
        .call("POST", "/api/v1/ingestions", &token, Some(cloudtrail()))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(ctype.starts_with("application/json"));
    for (field, want) in [
        ("name", "Daily AWS CloudTrail Ingestion"),
        ("status", "ACTIVE"),
        ("schedule_frequency", "daily"),
        ("schedule_time", "02:00"),
        ("schedule_timezone", "UTC"),
        ("source_type", "s3"),
        ("source_path", "s3a://my-logs-bucket/cloudtrail/"),
        ("format_type", "json"),
        ("destination_table", "security.cloudtrail_logs"),
    ] {
        assert_eq!(body[field], want, "{field}");
    }
    assert_eq!(body["schedule_enabled"], true);
    assert_eq!(body["tenant_id"], tenant.to_string());
    assert!(body["id"]
        .as_str()
        .and_then(|s| s.parse::<uuid::Uuid>().ok())
        .is_some());
    assert_eq!(instant(&body["next_run_time"]), next_two_am(before));
    assert!(body["last_scheduled_run"].is_null());
    let created = instant(&body["created_at"]);
    assert!((created - before).num_seconds().abs() < 60);

    // Reading it back gives the same.
    let id = body["id"].as_str().expect("id");
    let (status, _, read) = api
        .call("GET", &format!("/api/v1/ingestions/{id}"), &token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(read, body);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn spec_13_2_and_13_3_hourly_and_every_six_hours(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    let hourly = create(&api, &token, json!({
        "name": "Hourly Metrics Ingestion", "source_type": "s3", "source_path": "s3a://metrics-bucket/",
        "format_type": "parquet", "destination_table": "analytics.hourly_metrics",
        "schedule_frequency": "hourly", "schedule_timezone": "UTC", "schedule_enabled": true
    }))
    .await;
    let next = instant(&hourly["next_run_time"]);
    assert_eq!((next.minute(), next.second()), (0, 0), "top of the hour");
    assert!(next > Utc::now() && next - Utc::now() <= Duration::hours(1));
    let id = hourly["id"].as_str().expect("id");
    let (_, _, info) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/schedule"),
            &token,
            None,
        )
        .await;
    assert_eq!(info["cron_expression"], "0 * * * *");

    let six = create(&api, &token, json!({
        "name": "6-Hour Batch Ingestion", "source_type": "s3", "source_path": "s3a://data-lake/batch/",
        "format_type": "csv", "destination_table": "warehouse.batch_data",
        "schedule_frequency": "custom", "schedule_cron": "0 */6 * * *", "schedule_timezone": "UTC",
        "schedule_enabled": true
    }))
    .await;
    let id = six["id"].as_str().expect("id");
    let (_, _, info) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/schedule?count=8"),
            &token,
            None,
        )
        .await;
    assert_eq!(info["cron_expression"], "0 */6 * * *");
    let hours: Vec<u32> = instants(&info["upcoming_runs"])
        .iter()
        .map(|t| t.hour())
        .collect();
    assert_eq!(hours.len(), 8);
    assert!(
        hours.iter().all(|h| [0, 6, 12, 18].contains(h)),
        "{hours:?}"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn spec_13_4_nine_in_london_across_the_clock_change(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    create(&api, &token, json!({
        "name": "Morning Report Ingestion", "source_type": "s3", "source_path": "s3a://reports-bucket/",
        "format_type": "json", "destination_table": "reporting.daily_reports",
        "schedule_frequency": "daily", "schedule_time": "09:00", "schedule_timezone": "Europe/London",
        "schedule_enabled": true
    }))
    .await;
    // BST ends on 2025-10-26: 09:00 London is 08:00 UTC before and 09:00 UTC after.
    let (status, _, preview) = api
        .call("POST", "/api/v1/schedules/preview", &token, Some(json!({
            "schedule_frequency": "daily", "schedule_time": "09:00", "schedule_timezone": "Europe/London",
            "from": "2025-10-24T00:00:00Z", "count": 4
        })))
        .await;
    assert_eq!(status, 200, "{preview}");
    let want: Vec<DateTime<Utc>> = [
        "2025-10-24T08:00:00Z",
        "2025-10-25T08:00:00Z",
        "2025-10-26T09:00:00Z",
        "2025-10-27T09:00:00Z",
    ]
    .iter()
    .map(|s| s.parse().expect("instant"))
    .collect();
    assert_eq!(instants(&preview["upcoming_runs"]), want);
    let locals: Vec<&str> = preview["upcoming_runs_local"]
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["local"].as_str().expect("local"))
        .collect();
    assert_eq!(
        locals,
        [
            "2025-10-24T09:00:00+01:00",
            "2025-10-25T09:00:00+01:00",
            "2025-10-26T09:00:00+00:00",
            "2025-10-27T09:00:00+00:00"
        ]
    );
    assert_eq!(preview["cron_expression"], "0 9 * * *");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn spec_13_5_schedule_information(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    let before = Utc::now();
    let body = create(&api, &token, cloudtrail()).await;
    let id = body["id"].as_str().expect("id");
    let (status, _, info) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/schedule"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["enabled"], true);
    assert_eq!(info["frequency"], "daily");
    assert_eq!(info["cron_expression"], "0 2 * * *");
    assert_eq!(info["timezone"], "UTC");
    let first = next_two_am(before);
    assert_eq!(instant(&info["next_run_time"]), first);
    let want: Vec<DateTime<Utc>> = (0..5).map(|d| first + Duration::days(d)).collect();
    assert_eq!(instants(&info["upcoming_runs"]), want);

    let (status, _, many) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/schedule?count=100"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        (status, many["upcoming_runs"].as_array().map(Vec::len)),
        (200, Some(100))
    );
    let (status, ctype, problem) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/schedule?count=101"),
            &token,
            None,
        )
        .await;
    assert_eq!((status, ctype.as_str()), (422, "application/problem+json"));
    assert_eq!(problem["errors"][0]["field"], "count");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn spec_13_6_disable_keeps_the_ingestion_and_manual_runs(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let body = create(&api, &token, cloudtrail()).await;
    let id = body["id"].as_str().expect("id");
    let (status, _, off) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/schedule/disable"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            off["schedule_enabled"].clone(),
            off["next_run_time"].clone(),
            off["status"].clone()
        ),
        (json!(false), Value::Null, json!("ACTIVE"))
    );
    let ticks: i64 = sqlx::query_scalar("select count(*) from schedule_ticks")
        .fetch_one(&pool)
        .await
        .expect("n");
    assert_eq!(ticks, 0, "no tick left for a ticker to fire");

    let (status, _, run) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/run"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        (status, run["triggered_by"].as_str(), run["status"].as_str()),
        (202, Some("manual"), Some("QUEUED"))
    );

    let (status, _, on) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/schedule/enable"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(on["schedule_enabled"], true);
    assert_eq!(
        on["schedule_time"], "02:00",
        "re-enabled without reconfiguring"
    );
    assert_eq!(
        instant(&on["next_run_time"]),
        next_two_am(Utc::now() - Duration::seconds(5))
    );
}

/// Run history is newest first by the instant each run stands for (its tick, or when it was
/// triggered by hand), page by page, with scheduled and manual runs interleaved, and filterable.
#[sqlx::test(migrator = "MIGRATOR")]
async fn run_history_interleaves_ticks_and_manual_runs_newest_first(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let created = create(&api, &token, cloudtrail()).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let ingestion: uuid::Uuid = id.parse().expect("uuid");
    // Ticks at 10:00, 11:00 and 12:00; manual runs triggered at 10:30, 11:00 (the same instant as
    // a tick: the newer id goes first), 11:30 and 12:30 (still queued). The 10:00 tick was
    // materialised late (at 13:00): its place is still its tick's.
    let t = |h: u32, m: u32| -> DateTime<Utc> {
        format!("2026-03-02T{h:02}:{m:02}:00Z")
            .parse()
            .expect("instant")
    };
    let runs = [
        ("10:00", Some(t(10, 0)), t(13, 0), "FAILED"),
        ("10:30", None, t(10, 30), "SUCCESS"),
        ("11:00", Some(t(11, 0)), t(11, 0), "SUCCESS"),
        ("11:00 by hand", None, t(11, 0), "CANCELLED"),
        ("11:30", None, t(11, 30), "SUCCESS"),
        ("12:00", Some(t(12, 0)), t(12, 0), "SUCCESS"),
        ("12:30", None, t(12, 30), "QUEUED"),
    ];
    let mut ids = std::collections::HashMap::new();
    for (label, tick, queued, status) in runs {
        let run = uuid::Uuid::now_v7();
        sqlx::query(
            "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, queued_at,
                               status, finished_at, error)
             select $1, i.id, i.tenant_id, case when $2::timestamptz is null then 'manual'
                                                else 'scheduler' end,
                    $2, $3, $4,
                    case when $4 <> 'QUEUED' then $3 + interval '1 minute' end,
                    case when $4 = 'FAILED' then 'boom' end
             from ingestions i where i.id = $5",
        )
        .bind(run)
        .bind(tick)
        .bind(queued)
        .bind(status)
        .bind(ingestion)
        .execute(&pool)
        .await
        .expect("run");
        ids.insert(run.to_string(), label);
    }
    let page = |query: String| {
        let api = &api;
        let token = &token;
        let id = &id;
        let ids = &ids;
        async move {
            let (status, _, body) = api
                .call(
                    "GET",
                    &format!("/api/v1/ingestions/{id}/runs?{query}"),
                    token,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let labels: Vec<&str> = body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|r| ids[r["id"].as_str().expect("id")])
                .collect();
            (labels, body["total"].as_i64())
        }
    };
    assert_eq!(
        page("page_size=2".into()).await,
        (vec!["12:30", "12:00"], Some(7))
    );
    assert_eq!(
        page("page_size=2&page=2".into()).await,
        (vec!["11:30", "11:00 by hand"], Some(7))
    );
    assert_eq!(
        page("page_size=2&page=3".into()).await,
        (vec!["11:00", "10:30"], Some(7))
    );
    assert_eq!(
        page("page_size=2&page=4".into()).await,
        (vec!["10:00"], Some(7))
    );
    assert_eq!(page("page_size=2&page=5".into()).await, (vec![], Some(7)));
    assert_eq!(page("status=QUEUED".into()).await, (vec!["12:30"], Some(1)));
    assert_eq!(
        page("status=SUCCESS".into()).await,
        (vec!["12:00", "11:30", "11:00", "10:30"], Some(4))
    );
    assert_eq!(page("status=FAILED".into()).await, (vec!["10:00"], Some(1)));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn manual_trigger_conflicts_while_a_run_is_active(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = create(&api, &token, cloudtrail()).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _, first) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/run"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let (status, ctype, conflict) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/run"),
            &token,
            None,
        )
        .await;
    assert_eq!((status, ctype.as_str()), (409, "application/problem+json"));
    assert_eq!(conflict["active_run_id"], first["id"]);
    assert_eq!(conflict["type"], "/problems/conflict");

    // A worker claims the run and it succeeds (the state machine has no QUEUED -> SUCCESS).
    let first_id = first["id"]
        .as_str()
        .and_then(|s| s.parse::<uuid::Uuid>().ok())
        .expect("uuid");
    for step in [
        "update runs set status = 'RUNNING', worker_id = 'w', started_at = now(),
                lease_expires_at = now() + interval '1 minute' where id = $1",
        "update runs set status = 'SUCCESS', finished_at = now(), lease_expires_at = null where id = $1",
    ] {
        sqlx::query(step)
            .bind(first_id)
            .execute(&pool)
            .await
            .expect("finish");
    }
    let (status, _, second) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/run"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 202);

    // History newest first, filterable by status; a queued run can be cancelled, once.
    let (_, _, runs) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/runs"),
            &token,
            None,
        )
        .await;
    let ids: Vec<&Value> = runs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids, vec![&second["id"], &first["id"]]);
    assert_eq!(runs["total"], 2);
    let (_, _, done) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/runs?status=SUCCESS"),
            &token,
            None,
        )
        .await;
    assert_eq!(done["items"].as_array().map(Vec::len), Some(1));
    assert!(done["items"][0]["duration_seconds"].is_number());
    let run_id = second["id"].as_str().expect("id");
    let (status, _, cancelled) = api
        .call(
            "POST",
            &format!("/api/v1/runs/{run_id}/cancel"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("CANCELLED"))
    );
    let (status, _, again) = api
        .call(
            "POST",
            &format!("/api/v1/runs/{run_id}/cancel"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 409, "{again}");
    let (status, _, one) = api
        .call("GET", &format!("/api/v1/runs/{run_id}"), &token, None)
        .await;
    assert_eq!((status, one["status"].as_str()), (200, Some("CANCELLED")));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn patch_changes_only_what_is_sent_and_recomputes_the_schedule(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    let id = create(&api, &token, cloudtrail()).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _, patched) = api
        .call("PATCH", &format!("/api/v1/ingestions/{id}"), &token, Some(json!({
            "schedule_time": "14:30", "schedule_timezone": "Asia/Kathmandu", "description": "moved"
        })))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "Daily AWS CloudTrail Ingestion");
    assert_eq!(patched["description"], "moved");
    // 14:30 in Kathmandu (+05:45) is 08:45 UTC.
    let next = instant(&patched["next_run_time"]);
    assert_eq!((next.hour(), next.minute()), (8, 45));

    // Switching to custom without a cron is refused, and nothing changes.
    let (status, _, problem) = api
        .call(
            "PATCH",
            &format!("/api/v1/ingestions/{id}"),
            &token,
            Some(json!({"schedule_frequency": "custom"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "schedule_cron");
    let (_, _, still) = api
        .call("GET", &format!("/api/v1/ingestions/{id}"), &token, None)
        .await;
    assert_eq!(still["schedule_frequency"], "daily");

    // A second ingestion cannot take the first one's name.
    let mut other = cloudtrail();
    other["name"] = json!("Another");
    let other_id = create(&api, &token, other).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _, problem) = api
        .call(
            "PATCH",
            &format!("/api/v1/ingestions/{other_id}"),
            &token,
            Some(json!({"name": "Daily AWS CloudTrail Ingestion"})),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (409, Some("name"))
    );

    let (status, _, _) = api
        .call("DELETE", &format!("/api/v1/ingestions/{id}"), &token, None)
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = api
        .call("GET", &format!("/api/v1/ingestions/{id}"), &token, None)
        .await;
    assert_eq!(status, 404);
    let (_, _, list) = api
        .call(
            "GET",
            "/api/v1/ingestions?page=1&page_size=10",
            &token,
            None,
        )
        .await;
    assert_eq!(
        (
            list["total"].as_i64(),
            list["page"].as_i64(),
            list["page_size"].as_i64()
        ),
        (Some(1), Some(1), Some(10))
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn tenants_never_see_each_other(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, a) = api.tenant("a").await;
    let (_, b) = api.tenant("b").await;
    let id = create(&api, &b, cloudtrail()).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, _, run) = api
        .call("POST", &format!("/api/v1/ingestions/{id}/run"), &b, None)
        .await;
    let run_id = run["id"].as_str().expect("run id").to_owned();

    for (method, path, body) in [
        ("GET", format!("/api/v1/ingestions/{id}"), None),
        (
            "PATCH",
            format!("/api/v1/ingestions/{id}"),
            Some(json!({"description": "mine now"})),
        ),
        (
            "PUT",
            format!("/api/v1/ingestions/{id}"),
            Some(cloudtrail()),
        ),
        ("DELETE", format!("/api/v1/ingestions/{id}"), None),
        ("GET", format!("/api/v1/ingestions/{id}/schedule"), None),
        (
            "POST",
            format!("/api/v1/ingestions/{id}/schedule/disable"),
            None,
        ),
        ("POST", format!("/api/v1/ingestions/{id}/run"), None),
        ("GET", format!("/api/v1/ingestions/{id}/runs"), None),
        ("GET", format!("/api/v1/ingestions/{id}/files"), None),
        (
            "POST",
            format!("/api/v1/ingestions/{id}/files/retry"),
            Some(json!({})),
        ),
        ("GET", format!("/api/v1/runs/{run_id}"), None),
        ("POST", format!("/api/v1/runs/{run_id}/cancel"), None),
    ] {
        let (status, ctype, _) = api.call(method, &path, &a, body).await;
        assert_eq!(
            (status, ctype.as_str()),
            (404, "application/problem+json"),
            "{method} {path}"
        );
    }
    let (_, _, list) = api.call("GET", "/api/v1/ingestions", &a, None).await;
    assert_eq!(list["total"], 0);
    // B still has everything.
    let (status, _, _) = api
        .call("GET", &format!("/api/v1/runs/{run_id}"), &b, None)
        .await;
    assert_eq!(status, 200);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn tokens_are_required_and_revocable(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (tenant, token) = api.tenant("acme").await;
    let res = api
        .client
        .get(api.url("/api/v1/ingestions"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let (status, _, _) = api
        .call("GET", "/api/v1/ingestions", "not-a-token", None)
        .await;
    assert_eq!(status, 401);
    let preview = api
        .client
        .post(api.url("/api/v1/schedules/preview"))
        .json(&json!({"schedule_frequency": "hourly"}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        preview.status(),
        401,
        "every /api/v1 endpoint needs a token, the preview too"
    );
    let (status, _, _) = api
        .call(
            "POST",
            "/api/v1/admin/tenants",
            &token,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, 401, "a tenant token is not the admin token");

    let (status, _, second) = api
        .call(
            "POST",
            &format!("/api/v1/admin/tenants/{tenant}/tokens"),
            autoloader_tests::ADMIN_TOKEN,
            Some(json!({"label": "ci"})),
        )
        .await;
    assert_eq!(status, 201);
    let second_token = second["token"].as_str().expect("token");
    let (status, _, _) = api
        .call("GET", "/api/v1/ingestions", second_token, None)
        .await;
    assert_eq!(status, 200);
    let token_id = second["token_id"].as_str().expect("token id");
    let (status, _, _) = api
        .call(
            "DELETE",
            &format!("/api/v1/admin/tokens/{token_id}"),
            autoloader_tests::ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, problem) = api
        .call("GET", "/api/v1/ingestions", second_token, None)
        .await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (401, Some("unknown or revoked token"))
    );
    let (status, _, _) = api.call("GET", "/api/v1/ingestions", &token, None).await;
    assert_eq!(status, 200, "other tokens of the tenant still work");
}

/// The Prometheus text of `GET /metrics`.
async fn scrape(api: &TestApi) -> String {
    api.client
        .get(api.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Asserts that each needle is in the Prometheus text of a scrape.
fn assert_scraped(metrics: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn metrics_count_runs_by_status_and_bucket_their_lateness(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let created = create(&api, &token, cloudtrail()).await;
    let ingestion: uuid::Uuid = created["id"].as_str().expect("id").parse().expect("uuid");
    // Three finished scheduled runs started 0.05 s, exactly 1 s and 400 s after their ticks,
    // one that never started, and one manual run still queued.
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status,
                           attempt, worker_id, started_at, finished_at)
         select gen_random_uuid(), i.id, i.tenant_id, 'scheduler',
                timestamptz '2026-01-01 00:00:00+00' + make_interval(hours => l.n),
                'SUCCESS', 1, 'w',
                timestamptz '2026-01-01 00:00:00+00' + make_interval(hours => l.n, secs => l.late),
                timestamptz '2026-01-01 00:00:00+00' + make_interval(hours => l.n, secs => l.late + 1)
         from ingestions i, (values (1, 0.05), (2, 1.0), (3, 400.0)) as l(n, late)
         where i.id = $1",
    )
    .bind(ingestion)
    .execute(&pool)
    .await
    .expect("finished runs");
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status,
                           finished_at, reason)
         select gen_random_uuid(), id, tenant_id, 'scheduler', timestamptz '2026-01-01 05:00:00+00',
                'MISSED', now(), 'missed 1 tick'
         from ingestions where id = $1",
    )
    .bind(ingestion)
    .execute(&pool)
    .await
    .expect("missed run");
    let (status, _, _) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{ingestion}/run"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 202);

    let metrics = scrape(&api).await;
    assert_scraped(
        &metrics,
        &[
            "autoloader_scheduled_executions_total{status=\"success\"} 3\n",
            "autoloader_scheduled_executions_total{status=\"missed\"} 1\n",
            "autoloader_runs{triggered_by=\"manual\",status=\"QUEUED\"} 1\n",
            "autoloader_queue_depth 1\n",
            "autoloader_run_lateness_seconds_bucket{le=\"0.1\"} 1\n",
            "autoloader_run_lateness_seconds_bucket{le=\"0.5\"} 1\n",
            "autoloader_run_lateness_seconds_bucket{le=\"1\"} 2\n",
            "autoloader_run_lateness_seconds_bucket{le=\"300\"} 2\n",
            "autoloader_run_lateness_seconds_bucket{le=\"+Inf\"} 3\n",
            "autoloader_run_lateness_seconds_sum 401.05\n",
            "autoloader_run_lateness_seconds_count 3\n",
        ],
    );
}

/// `/metrics` counts a run once however many scrapes see it: one read an hour after it was made
/// (settled), one that finishes after the scrape that first saw it running, one made just now.
/// Finished runs stay counted after their ingestion is deleted: a counter never goes down.
#[sqlx::test(migrator = "MIGRATOR")]
async fn metrics_count_each_run_once_and_keep_counting_deleted_ones(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let mut ids = Vec::new();
    for name in ["old", "new"] {
        let mut body = cloudtrail();
        body["name"] = json!(name);
        let created = create(&api, &token, body).await;
        ids.push(
            created["id"]
                .as_str()
                .expect("id")
                .parse::<uuid::Uuid>()
                .expect("uuid"),
        );
    }
    let (old, new) = (ids[0], ids[1]);
    let hour_ago = Utc::now() - Duration::hours(1);
    let insert = |id: uuid::Uuid, ingestion: uuid::Uuid, tick: DateTime<Utc>, status: &str| {
        let pool = pool.clone();
        let status = status.to_owned();
        async move {
            sqlx::query(
                "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for,
                                   status, attempt, worker_id, started_at, lease_expires_at,
                                   finished_at)
                 select $1, i.id, i.tenant_id, 'scheduler', $3, $4, 1, 'w',
                        $3 + interval '2 seconds',
                        case when $4 = 'RUNNING' then now() + interval '1 hour' end,
                        case when $4 = 'SUCCESS' then $3 + interval '3 seconds' end
                 from ingestions i where i.id = $2",
            )
            .bind(id)
            .bind(ingestion)
            .bind(tick)
            .bind(status)
            .execute(&pool)
            .await
            .expect("run");
        }
    };
    let settled_run = uuid_v7_at(hour_ago);
    let running = uuid_v7_at(hour_ago + Duration::milliseconds(1));
    insert(settled_run, old, hour_ago, "SUCCESS").await;
    insert(running, old, hour_ago + Duration::minutes(5), "RUNNING").await;

    for _ in 0..2 {
        let metrics = scrape(&api).await;
        assert_scraped(
            &metrics,
            &[
                "autoloader_scheduled_executions_total{status=\"success\"} 1\n",
                "autoloader_runs{triggered_by=\"scheduler\",status=\"RUNNING\"} 1\n",
                "autoloader_run_lateness_seconds_count 2\n",
            ],
        );
    }

    insert(uuid::Uuid::now_v7(), new, Utc::now(), "SUCCESS").await;
    sqlx::query(
        "update runs set status = 'SUCCESS', finished_at = now(), lease_expires_at = null
         where id = $1",
    )
    .bind(running)
    .execute(&pool)
    .await
    .expect("finish");
    for _ in 0..2 {
        let metrics = scrape(&api).await;
        assert_scraped(
            &metrics,
            &[
                "autoloader_scheduled_executions_total{status=\"success\"} 3\n",
                "autoloader_run_lateness_seconds_count 3\n",
                "autoloader_run_lateness_seconds_sum 6\n",
            ],
        );
        assert!(!metrics.contains("status=\"RUNNING\""), "{metrics}");
    }

    sqlx::query("delete from ingestions where id = $1")
        .bind(old)
        .execute(&pool)
        .await
        .expect("delete");
    let metrics = scrape(&api).await;
    assert_scraped(
        &metrics,
        &["autoloader_scheduled_executions_total{status=\"success\"} 3\n"],
    );
}

/// A run made after the first scrape is counted while it is recent, then once more as it ages
/// past the minute after which the fold settles runs: still once.
#[sqlx::test(migrator = "MIGRATOR")]
async fn metrics_count_a_run_once_as_it_settles(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let created = create(&api, &token, cloudtrail()).await;
    let ingestion: uuid::Uuid = created["id"].as_str().expect("id").parse().expect("uuid");
    let first = scrape(&api).await;
    assert!(!first.contains("status=\"success\""), "{first}");
    // Made 59 s ago by the database's clock: recent now, settled a second from now.
    let made: DateTime<Utc> = sqlx::query_scalar("select now() - interval '59 seconds'")
        .fetch_one(&pool)
        .await
        .expect("now");
    let id = uuid_v7_at(made);
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status,
                           attempt, worker_id, started_at, finished_at)
         select $1, i.id, i.tenant_id, 'scheduler', $3, 'SUCCESS', 1, 'w',
                $3 + interval '2 seconds', $3 + interval '3 seconds'
         from ingestions i where i.id = $2",
    )
    .bind(id)
    .bind(ingestion)
    .bind(made)
    .execute(&pool)
    .await
    .expect("run");
    let want = "autoloader_scheduled_executions_total{status=\"success\"} 1\n";
    let recent = scrape(&api).await;
    assert!(recent.contains(want), "{recent}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for _ in 0..2 {
        let settled = scrape(&api).await;
        assert!(settled.contains(want), "{settled}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn operations_endpoints(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    create(&api, &token, cloudtrail()).await;
    let metrics = scrape(&api).await;
    assert_scraped(
        &metrics,
        &[
            "autoloader_scheduled_jobs_total 1",
            "# TYPE autoloader_scheduled_executions_total counter",
            "autoloader_queue_depth 0",
            "autoloader_active_leases 0",
            "autoloader_run_lateness_seconds_count 0",
        ],
    );
    let doc: Value = api
        .client
        .get(api.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3.1"));
    for path in [
        "/api/v1/ingestions",
        "/api/v1/ingestions/{id}/schedule",
        "/api/v1/schedules/preview",
        "/api/v1/ingestions/{id}/run",
        "/api/v1/ingestions/{id}/files",
        "/api/v1/ingestions/{id}/files/retry",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} not documented");
    }
    let docs = api.client.get(api.url("/docs")).send().await.expect("docs");
    assert_eq!(docs.status(), 200);
    let res = api
        .client
        .get(api.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(
        res.headers().contains_key("x-request-id"),
        "every response carries a request id"
    );
}

/// `GET /{id}/schedule` answers from memory, but never with a stale schedule: the API's own
/// writes show at once, edits made directly in PostgreSQL (another API process, a person at
/// psql) show as soon as their notification arrives, and tenancy holds for cached answers too.
#[sqlx::test(migrator = "MIGRATOR")]
async fn the_schedule_view_follows_every_change(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let (_, other) = api.tenant("globex").await;
    let created = create(&api, &token, cloudtrail()).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/ingestions/{id}/schedule");
    // Let the cache's LISTEN connection come up, then fill the cache.
    autoloader_tests::wait_for(
        "the schedule view",
        std::time::Duration::from_secs(10),
        || async {
            (schedule_timezone(&api, &path, &token).await == (200, "UTC".to_owned())).then_some(())
        },
    )
    .await;
    assert_eq!(
        schedule_timezone(&api, &path, &other).await.0,
        404,
        "cached, still tenant-scoped"
    );

    // This API's own write: visible to the very next read.
    let (status, _, _) = api
        .call(
            "PATCH",
            &format!("/api/v1/ingestions/{id}"),
            &token,
            Some(json!({"schedule_timezone": "Europe/London"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        schedule_timezone(&api, &path, &token).await,
        (200, "Europe/London".to_owned())
    );

    // A write this process did not make: it shows once PostgreSQL's notification arrives.
    sqlx::query("update ingestions set schedule_timezone = 'Asia/Tokyo' where id = $1::uuid")
        .bind(&id)
        .execute(&pool)
        .await
        .expect("edit in SQL");
    autoloader_tests::wait_for(
        "the SQL edit to show",
        std::time::Duration::from_secs(5),
        || async { (schedule_timezone(&api, &path, &token).await.1 == "Asia/Tokyo").then_some(()) },
    )
    .await;

    sqlx::query("delete from ingestions where id = $1::uuid")
        .bind(&id)
        .execute(&pool)
        .await
        .expect("delete in SQL");
    autoloader_tests::wait_for(
        "the SQL delete to show",
        std::time::Duration::from_secs(5),
        || async { (schedule_timezone(&api, &path, &token).await.0 == 404).then_some(()) },
    )
    .await;
}

async fn schedule_timezone(api: &TestApi, path: &str, token: &str) -> (u16, String) {
    let (status, _, body) = api.call("GET", path, token, None).await;
    (status, body["timezone"].as_str().unwrap_or("").to_owned())
}
