//! Catch-up policies over real HTTP and real worker processes: the ticks a schedule missed while
//! paused, or while every worker was down for longer than the misfire grace, become one MISSED
//! row (`skip`), one run (`once`) or one run each, one at a time (`all`), and the run history has
//! no silent gap. The schedules fire on 1 January at 02:00, so the ticks the tests make missed
//! lie years back and no tick of the test's own time races them.

use std::time::Duration;

use autoloader_tests::{database_url, wait_for, TestApi, WorkerProcess, ADMIN_TOKEN};
use autoloader_worker::ticker::{tick_once, TickerConfig};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;
const BIN: &str = env!("CARGO_BIN_EXE_test-worker");
const LONG: Duration = Duration::from_secs(60);
const YEARLY: &str = "0 2 1 1 *";

fn new_year(y: i32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, 1, 1, 2, 0, 0)
        .single()
        .expect("an instant")
}

/// An ingestion with the yearly schedule, `catchup` and `max_catchup_runs` as given, whose runs
/// take `sleep_ms` (the test executor reads its description).
async fn ingestion(api: &TestApi, token: &str, name: &str, catchup: Value, sleep_ms: u64) -> Uuid {
    let mut body = json!({
        "name": name, "source_type": "s3", "source_path": "s3://bucket-one/in/",
        "format_type": "json", "destination_table": format!("raw.{name}"),
        "description": json!({"test_sleep_ms": sleep_ms}).to_string(),
        "schedule_frequency": "custom", "schedule_cron": YEARLY, "schedule_timezone": "UTC",
        "schedule_enabled": true
    });
    if let (Some(b), Some(c)) = (body.as_object_mut(), catchup.as_object()) {
        b.extend(c.clone());
    }
    api.create_ingestion(token, body).await
}

/// The run history as the API pages it, oldest tick first.
async fn history(api: &TestApi, token: &str, id: Uuid) -> Vec<Value> {
    let (status, _, page) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{id}/runs?page_size=100"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let mut runs = page["items"].as_array().cloned().unwrap_or_default();
    runs.reverse();
    runs
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an instant: {v}"))
}

fn reason(run: &Value) -> &str {
    run["reason"].as_str().unwrap_or("")
}

/// Waits until every run of `id` is finished and there are `n` of them.
async fn settled(api: &TestApi, token: &str, id: Uuid, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} finished runs of {id}"), LONG, || async {
        let runs = history(api, token, id).await;
        (runs.len() == n && runs.iter().all(|r| !r["finished_at"].is_null())).then_some(runs)
    })
    .await
}

/// The `all` history: `missed` ticks counted in one MISSED row, then one successful run per
/// remaining tick up to 2026, oldest first, never two at once.
fn assert_all_caught_up(runs: &[Value], missed: u64, first_run: i32) {
    assert_eq!(runs[0]["status"], "MISSED", "{runs:#?}");
    assert_eq!(at(&runs[0]["scheduled_for"]), new_year(first_run - 1));
    assert!(
        reason(&runs[0]).starts_with(&format!("{missed} tick(s) from 2021-01-01T02:00:00+00:00")),
        "{}",
        reason(&runs[0])
    );
    assert!(reason(&runs[0]).contains("max_catchup_runs"));
    let caught: Vec<&Value> = runs[1..].iter().collect();
    assert_eq!(caught.len() as i32, 2026 - first_run + 1, "{runs:#?}");
    for (i, run) in caught.iter().enumerate() {
        assert_eq!(run["status"], "SUCCESS", "{run}");
        assert_eq!(at(&run["scheduled_for"]), new_year(first_run + i as i32));
        assert!(
            reason(run).starts_with("catch-up of a missed tick"),
            "{run}"
        );
        if i > 0 {
            assert_eq!(
                at(&run["data_interval_start"]),
                new_year(first_run + i as i32 - 1)
            );
            // One at a time: each started after the one before finished.
            assert!(
                at(&run["started_at"]) >= at(&caught[i - 1]["finished_at"]),
                "{run} overlaps {}",
                caught[i - 1]
            );
        }
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_pause_is_caught_up_as_each_ingestion_asks(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("data-eng").await;
    let skip = ingestion(&api, &token, "skipped", json!({}), 0).await;
    let once = ingestion(&api, &token, "once", json!({"catchup": "once"}), 0).await;
    let all = ingestion(
        &api,
        &token,
        "all",
        json!({"catchup": "all", "max_catchup_runs": 4}),
        300,
    )
    .await;
    let (_, _, shown) = api
        .call("GET", &format!("/api/v1/ingestions/{all}"), &token, None)
        .await;
    assert_eq!(
        (
            &shown["catchup"],
            &shown["max_catchup_runs"],
            &shown["catchup_backlog"]
        ),
        (&json!("all"), &json!(4), &json!(0))
    );

    for id in [skip, once, all] {
        let (status, _, res) = api
            .call(
                "POST",
                &format!("/api/v1/ingestions/{id}/schedule/disable"),
                &token,
                Some(json!({"reason": "source migration"})),
            )
            .await;
        assert_eq!(status, 200, "{res}");
    }
    // Paused since mid-2020: six ticks (2021..2026) fell during the pause.
    sqlx::query("update ingestions set paused_at = '2020-06-01T00:00:00Z'")
        .execute(&pool)
        .await
        .expect("pause in the past");
    for id in [skip, once, all] {
        let (status, _, res) = api
            .call(
                "POST",
                &format!("/api/v1/ingestions/{id}/schedule/enable"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{res}");
    }
    let _w = WorkerProcess::spawn(BIN, &database_url(&pool), "worker-a", &[]);

    let runs = settled(&api, &token, skip, 1).await;
    assert_eq!(runs[0]["status"], "MISSED");
    assert_eq!(at(&runs[0]["scheduled_for"]), new_year(2026));
    assert_eq!(
        reason(&runs[0]),
        "6 tick(s) from 2021-01-01T02:00:00+00:00 to 2026-01-01T02:00:00+00:00 fell while the \
         schedule was paused; not run (catchup: skip)"
    );

    let runs = settled(&api, &token, once, 1).await;
    assert_eq!(runs[0]["status"], "SUCCESS");
    assert_eq!(at(&runs[0]["scheduled_for"]), new_year(2026));
    assert!(
        reason(&runs[0]).starts_with("caught up 6 tick(s) from 2021-01-01T02:00:00+00:00"),
        "{}",
        runs[0]
    );

    let runs = settled(&api, &token, all, 5).await;
    assert_all_caught_up(&runs, 2, 2023);
    let (_, _, shown) = api
        .call("GET", &format!("/api/v1/ingestions/{all}"), &token, None)
        .await;
    assert_eq!(shown["catchup_backlog"], 0, "{shown}");
    assert_eq!(at(&shown["next_run_time"]), new_year(2027));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_worker_outage_past_the_grace_is_caught_up_as_each_ingestion_asks(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("data-eng").await;
    let skip = ingestion(&api, &token, "skipped", json!({"catchup": "skip"}), 0).await;
    let once = ingestion(&api, &token, "once", json!({"catchup": "once"}), 0).await;
    let all = ingestion(
        &api,
        &token,
        "all",
        json!({"catchup": "all", "max_catchup_runs": 3}),
        300,
    )
    .await;
    let url = database_url(&pool);
    let mut before = WorkerProcess::spawn(BIN, &url, "worker-before", &[]);
    wait_for("the ticker to take the new schedules", LONG, || async {
        let pending: i64 =
            sqlx::query_scalar("select count(*) from schedule_ticks where recompute")
                .fetch_one(&pool)
                .await
                .expect("count");
        (pending == 0).then_some(())
    })
    .await;
    before.signal("TERM");
    assert_eq!(before.wait_exit(LONG).await, Some(0));

    // Every worker was down since the end of 2020: the tick row still waits for 2021.
    sqlx::query(
        "update schedule_ticks set next_fire_at = '2021-01-01T02:00:00Z',
                last_fire_at = '2020-01-01T02:00:00Z'",
    )
    .execute(&pool)
    .await
    .expect("outage");
    let _after = WorkerProcess::spawn(
        BIN,
        &url,
        "worker-after",
        &[("SCHEDULER_MISFIRE_GRACE_TIME", "300")],
    );

    let runs = settled(&api, &token, skip, 1).await;
    assert_eq!(runs[0]["status"], "MISSED");
    assert_eq!(
        reason(&runs[0]),
        "6 tick(s) from 2021-01-01T02:00:00+00:00 to 2026-01-01T02:00:00+00:00 were more than \
         300s late (no worker was ticking); not run"
    );

    let runs = settled(&api, &token, once, 1).await;
    assert_eq!(runs[0]["status"], "SUCCESS");
    assert_eq!(at(&runs[0]["scheduled_for"]), new_year(2026));
    // Its data interval covers every missed tick.
    assert_eq!(at(&runs[0]["data_interval_start"]), new_year(2020));
    assert!(
        reason(&runs[0]).starts_with("caught up 6 tick(s)"),
        "{}",
        runs[0]
    );

    let runs = settled(&api, &token, all, 4).await;
    assert_all_caught_up(&runs, 3, 2024);
}

fn ticker() -> TickerConfig {
    TickerConfig {
        batch_size: 100,
        misfire_grace: Duration::from_secs(300),
        coalesce: true,
        safety_poll: Duration::from_secs(30),
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_backlog_waits_for_the_active_run_and_a_pause_records_what_it_still_owed(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("data-eng").await;
    let id = ingestion(&api, &token, "all", json!({"catchup": "all"}), 0).await;
    tick_once(&pool, &ticker()).await.expect("recompute");
    sqlx::query(
        "update schedule_ticks set next_fire_at = '2021-01-01T02:00:00Z',
                last_fire_at = '2020-01-01T02:00:00Z'",
    )
    .execute(&pool)
    .await
    .expect("outage");
    let report = tick_once(&pool, &ticker()).await.expect("tick");
    assert_eq!((report.queued, report.backlog_queued), (1, 1));
    // The head runs; the other five wait, and a ticker looking again queues none of them.
    let (_, _, shown) = api
        .call("GET", &format!("/api/v1/ingestions/{id}"), &token, None)
        .await;
    assert_eq!(shown["catchup_backlog"], 5, "{shown}");
    sqlx::query("update schedule_ticks set backlog_check_at = now()")
        .execute(&pool)
        .await
        .expect("look again now");
    let report = tick_once(&pool, &ticker()).await.expect("tick");
    assert_eq!((report.rows, report.queued, report.skipped), (1, 0, 0));

    // Paused with five ticks still owed: they are counted in a MISSED row, not lost.
    let (status, _, _) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/schedule/disable"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let runs = history(&api, &token, id).await;
    let statuses: Vec<&str> = runs.iter().filter_map(|r| r["status"].as_str()).collect();
    assert_eq!(statuses, vec!["QUEUED", "MISSED"], "{runs:#?}");
    assert_eq!(at(&runs[1]["scheduled_for"]), new_year(2022));
    assert_eq!(
        reason(&runs[1]),
        "5 missed tick(s) from 2022-01-01T02:00:00Z to 2026-01-01T02:00:00Z were still waiting \
         to catch up when the schedule stopped; not run"
    );
    let run_id: Uuid = runs[1]["id"].as_str().expect("id").parse().expect("uuid");
    assert_eq!(run_id.get_version_num(), 7, "run ids stay time-ordered");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_policy_is_checked_named_and_defaults_from_scheduler_coalesce(pool: PgPool) {
    let api = TestApi::spawn_with_state(
        autoloader_api::AppState::new(pool.clone(), Some(ADMIN_TOKEN))
            .with_egress(autoloader_tests::test_egress())
            .with_default_catchup(autoloader::ingestions::catchup::Catchup::All),
    )
    .await;
    let (_, token) = api.tenant("data-eng").await;
    let id = ingestion(&api, &token, "events", json!({}), 0).await;
    let path = format!("/api/v1/ingestions/{id}");
    let (_, _, shown) = api.call("GET", &path, &token, None).await;
    assert_eq!(
        (&shown["catchup"], &shown["max_catchup_runs"]),
        (&json!("all"), &json!(100))
    );

    for (body, field, needle) in [
        (json!({"catchup": "always"}), "catchup", "skip, once or all"),
        (
            json!({"max_catchup_runs": 0}),
            "max_catchup_runs",
            "between 1 and 1000",
        ),
        (
            json!({"max_catchup_runs": 1001}),
            "max_catchup_runs",
            "between 1 and 1000",
        ),
        (json!({"max_catchup_runs": "ten"}), "max_catchup_runs", ""),
        (json!({"catchup": 3}), "catchup", ""),
    ] {
        let (status, _, res) = api.call("PATCH", &path, &token, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {res}");
        autoloader_tests::assert_field_error(&res, field, needle);
    }
    let (status, _, patched) = api
        .call(
            "PATCH",
            &path,
            &token,
            Some(json!({"catchup": "once", "max_catchup_runs": 7})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (&patched["catchup"], &patched["max_catchup_runs"]),
        (&json!("once"), &json!(7))
    );
    // A patch of something else keeps the policy.
    let (_, _, kept) = api
        .call("PATCH", &path, &token, Some(json!({"description": "{}"})))
        .await;
    assert_eq!(kept["catchup"], "once", "{kept}");

    // PostgreSQL refuses what the API would, whoever writes.
    for (set, constraint) in [
        ("catchup = 'sometimes'", "ingestions_catchup_known"),
        ("max_catchup_runs = 0", "ingestions_max_catchup_runs_range"),
        (
            "max_catchup_runs = 5000",
            "ingestions_max_catchup_runs_range",
        ),
    ] {
        let e = sqlx::query(&format!("update ingestions set {set} where id = $1"))
            .bind(id)
            .execute(&pool)
            .await
            .expect_err(set);
        assert!(e.to_string().contains(constraint), "{set}: {e}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_minutely_schedule_paused_for_a_year_is_settled_in_one_short_batch(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("data-eng").await;
    let mut ids = Vec::new();
    for (name, policy) in [
        ("skipped", json!({})),
        ("all", json!({"catchup": "all", "max_catchup_runs": 1000})),
    ] {
        let id = ingestion(&api, &token, name, policy, 0).await;
        let path = format!("/api/v1/ingestions/{id}");
        let (status, _, res) = api
            .call(
                "PATCH",
                &path,
                &token,
                Some(json!({"schedule_cron": "* * * * *", "schedule_enabled": false})),
            )
            .await;
        assert_eq!(status, 200, "{res}");
        ids.push(id);
    }
    // Paused a year ago: some 525,600 minutes fell during the pause.
    sqlx::query("update ingestions set paused_at = now() - interval '365 days'")
        .execute(&pool)
        .await
        .expect("pause a year back");
    sqlx::query("update ingestions set schedule_enabled = true")
        .execute(&pool)
        .await
        .expect("resume at psql");

    let started = std::time::Instant::now();
    let report = tick_once(&pool, &ticker()).await.expect("tick");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(report.rows, 2);
    assert_eq!(report.backlog_queued, 1);

    let skipped = history(&api, &token, ids[0]).await;
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    let why = reason(&skipped[0]);
    // Counted, not listed: a lower bound past the enumeration cap, never the whole year.
    let counted: u64 = why
        .strip_prefix("at least ")
        .and_then(|w| w.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{why}"));
    assert!((10_000..525_600).contains(&counted), "{why}");
    assert!(why.ends_with("fell while the schedule was paused; not run (catchup: skip)"));

    // `all`: the newest 1000 minutes are owed (one queued), the older ones counted.
    let all = history(&api, &token, ids[1]).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[0]["status"], "MISSED");
    assert!(reason(&all[0]).starts_with("at least "), "{}", all[0]);
    assert_eq!(all[1]["status"], "QUEUED");
    let (_, _, shown) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{}", ids[1]),
            &token,
            None,
        )
        .await;
    assert_eq!(shown["catchup_backlog"], 999, "{shown}");
    // The head is the oldest of the newest 1000 minutes.
    let age = Utc::now() - at(&all[1]["scheduled_for"]);
    assert!(
        (998..=1001).contains(&age.num_minutes()),
        "head {} minutes old",
        age.num_minutes()
    );
}
