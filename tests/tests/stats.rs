//! Statistics per ingestion over real HTTP: a known history of loads (written as a person at
//! psql would, through the API's cancel, and by a schedule dropping its catch-up backlog) against
//! a hand count, the windows' bounds (a load belongs to the window of its tick, or of its manual
//! trigger), the real run-retention sweep folding runs without changing a number, tenants kept
//! apart, and bad windows.
//!
//! Percentiles are read from fixed log-scale buckets (`autoloader::runs::stats::BOUNDS_MS`): each
//! expected percentile below is worked out by hand as the upper bound of the bucket holding the
//! nearest-rank value, or the maximum when that is lower.

use autoloader::runs::stats::BOUNDS_MS;
use autoloader_tests::{uuid_v7_at, TestApi, ADMIN_TOKEN};
use autoloader_worker::retention;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

async fn ingestion(api: &TestApi, token: &str, name: &str) -> Uuid {
    api.create_ingestion(
        token,
        json!({
            "name": name, "source_type": "s3", "source_path": "s3://bucket-one/in/",
            "format_type": "json", "destination_table": "raw.events",
            "schedule_frequency": "hourly", "schedule_timezone": "UTC",
            "schedule_enabled": false
        }),
    )
    .await
}

async fn stats(api: &TestApi, token: &str, id: Uuid, window: Option<&str>) -> Value {
    let path = match window {
        Some(w) => format!("/api/v1/ingestions/{id}/stats?window={w}"),
        None => format!("/api/v1/ingestions/{id}/stats"),
    };
    let (status, _, body) = api.call("GET", &path, token, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// A load of `ingestion` that finished at `finished` in `status`, written in one INSERT as a
/// person at psql could: it ran `duration_ms` (SUCCESS, FAILED) and started `lateness_ms` after
/// its tick (a run for a tick), or had no tick (a manual run, `lateness_ms` None).
struct Load {
    status: &'static str,
    finished: DateTime<Utc>,
    duration_ms: Option<i64>,
    lateness_ms: Option<i64>,
    files: i64,
    rows: i64,
    bytes: i64,
    tick: Option<DateTime<Utc>>,
    asked: Option<DateTime<Utc>>,
}

impl Load {
    fn new(status: &'static str, finished: DateTime<Utc>) -> Load {
        Load {
            status,
            finished,
            duration_ms: None,
            lateness_ms: None,
            files: 0,
            rows: 0,
            bytes: 0,
            tick: None,
            asked: None,
        }
    }

    /// A run of this tick (whatever its lateness).
    fn for_tick(mut self, tick: DateTime<Utc>) -> Load {
        self.tick = Some(tick);
        self
    }

    /// A manual run asked for (queued) at this instant.
    fn asked_at(mut self, queued: DateTime<Utc>) -> Load {
        self.asked = Some(queued);
        self
    }

    fn ran(mut self, duration_ms: i64, lateness_ms: Option<i64>) -> Load {
        self.duration_ms = Some(duration_ms);
        self.lateness_ms = lateness_ms;
        self
    }

    fn loaded(mut self, files: i64, rows: i64, bytes: i64) -> Load {
        (self.files, self.rows, self.bytes) = (files, rows, bytes);
        self
    }

    async fn insert(&self, pool: &PgPool, ingestion: Uuid) -> Uuid {
        let started = self
            .duration_ms
            .map(|d| self.finished - Duration::milliseconds(d));
        // Skipped and missed rows are ticks that did not run; a cancelled run had no tick.
        let tick = match (
            self.asked,
            self.tick,
            self.status,
            started,
            self.lateness_ms,
        ) {
            (Some(_), ..) => None,
            (None, Some(t), ..) => Some(t),
            (None, None, "SKIPPED" | "MISSED", _, _) => Some(self.finished),
            (None, None, _, Some(s), Some(l)) => Some(s - Duration::milliseconds(l)),
            _ => None,
        };
        let queued = self
            .asked
            .unwrap_or_else(|| tick.or(started).unwrap_or(self.finished) - Duration::seconds(1));
        let id = uuid_v7_at(queued);
        sqlx::query(
            "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, queued_at,
                               status, attempt, worker_id, started_at, finished_at, reason, error,
                               files_processed, rows_ingested, bytes_read)
             select $1, i.id, i.tenant_id, case when $3::timestamptz is null then 'manual'
                                                else 'scheduler' end,
                    $3, $4, $5, case when $6::timestamptz is null then 0 else 1 end,
                    case when $6::timestamptz is null then null else 'w' end, $6, $7,
                    case when $5 in ('SKIPPED', 'MISSED', 'CANCELLED') then 'by hand' end,
                    case when $5 = 'FAILED' then 'it broke' end, $8, $9, $10
             from ingestions i where i.id = $2",
        )
        .bind(id)
        .bind(ingestion)
        .bind(tick)
        .bind(queued)
        .bind(self.status)
        .bind(started)
        .bind(self.finished)
        .bind(self.files)
        .bind(self.rows)
        .bind(self.bytes)
        .execute(pool)
        .await
        .expect("insert a finished run");
        id
    }
}

fn counts(s: &Value) -> [i64; 6] {
    let r = &s["runs"];
    [
        "total",
        "succeeded",
        "failed",
        "cancelled",
        "skipped",
        "missed",
    ]
    .map(|k| r[k].as_i64().unwrap_or_else(|| panic!("runs.{k} in {s}")))
}

fn ms(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number, got {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// The database's now, to the millisecond.
async fn db_now(pool: &PgPool) -> DateTime<Utc> {
    let now: DateTime<Utc> = sqlx::query_scalar("select now()")
        .fetch_one(pool)
        .await
        .expect("now");
    now.duration_trunc(Duration::milliseconds(1))
        .expect("truncate")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn stats_match_a_hand_count_of_a_known_history_in_every_window(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let now = db_now(&pool).await;
    let ago = |m: i64| now - Duration::minutes(m);
    let h = 60;
    let d = 24 * h;
    // ids: a..k, newest first.
    let history = [
        // The last hour.
        Load::new("SUCCESS", ago(10))
            .ran(1_500, Some(2_000))
            .loaded(2, 100, 1_000),
        Load::new("SUCCESS", ago(20))
            .ran(3_000, None)
            .loaded(1, 50, 500),
        Load::new("FAILED", ago(30)).ran(40_000, Some(500)),
        Load::new("SKIPPED", ago(40)),
        // The last day.
        Load::new("SUCCESS", ago(5 * h))
            .ran(90_000, Some(10_000))
            .loaded(3, 300, 3_000),
        Load::new("MISSED", ago(5 * h)),
        Load::new("CANCELLED", ago(6 * h)),
        // The last week.
        Load::new("FAILED", ago(3 * d)).ran(200, Some(60_000)),
        // The last 30 days.
        Load::new("SUCCESS", ago(20 * d))
            .ran(7_000, None)
            .loaded(10, 1_000, 10_000),
        // Older than any window.
        Load::new("SUCCESS", ago(40 * d))
            .ran(1, Some(1))
            .loaded(99, 99, 99),
    ];
    let mut ids = Vec::new();
    for load in &history {
        ids.push(load.insert(&pool, id).await);
    }
    // A maintenance run of the table is not a load of the ingestion.
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, kind, maintained_table,
                           status, attempt, worker_id, started_at, finished_at, error)
         select $1, id, tenant_id, 'scheduler', 'compact', 'acme.raw.events', 'FAILED', 1, 'w',
                now() - interval '1 minute', now(), 'no'
         from ingestions where id = $2",
    )
    .bind(Uuid::now_v7())
    .bind(id)
    .execute(&pool)
    .await
    .expect("maintenance run");

    // 1h: a, b, c, d.
    let s = stats(&api, &token, id, Some("1h")).await;
    assert_eq!(s["window"], "1h");
    assert_eq!(counts(&s), [4, 2, 1, 0, 1, 0], "{s}");
    assert!(close(ms(&s["success_rate"]), 2.0 / 3.0), "{s}");
    // Durations 1500, 3000, 40000: p50 is the 2nd, 3000, in [2560, 3072); p95 the 3rd, 40000,
    // in [32768, 40960), capped by the maximum 40000.
    let dur = &s["duration_ms"];
    assert_eq!(dur["count"], 3);
    assert!(close(ms(&dur["mean"]), 44_500.0 / 3.0), "{dur}");
    assert_eq!((ms(&dur["p50"]), ms(&dur["p95"])), (3_072.0, 40_000.0));
    assert_eq!(ms(&dur["max"]), 40_000.0);
    // Lateness of the runs for a tick: 2000 and 500 (b was manual). p50 is 500, in [448, 512).
    let late = &s["lateness_ms"];
    assert_eq!(late["count"], 2);
    assert!(close(ms(&late["mean"]), 1_250.0), "{late}");
    assert_eq!((ms(&late["p50"]), ms(&late["p95"])), (512.0, 2_000.0));
    assert_eq!(
        (&s["files_loaded"], &s["rows_loaded"], &s["bytes_loaded"]),
        (&json!(3), &json!(150), &json!(1_500))
    );
    assert_eq!(s["last_success"]["run_id"], ids[0].to_string());
    assert_eq!(s["last_failure"]["run_id"], ids[2].to_string());
    let at: DateTime<Utc> = s["last_success"]["finished_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("finished_at");
    assert_eq!(at, history[0].finished);

    // 24h, the default: a..g.
    let s = stats(&api, &token, id, None).await;
    assert_eq!(s["window"], "24h");
    assert_eq!(counts(&s), [7, 3, 1, 1, 1, 1], "{s}");
    assert!(close(ms(&s["success_rate"]), 0.75));
    // Durations 1500, 3000, 40000, 90000: p50 the 2nd (3000: 3072), p95 the 4th (90000, in
    // [81920, 98304): the maximum). Lateness 500, 2000, 10000: p50 2000 in [1792, 2048).
    let dur = &s["duration_ms"];
    assert_eq!(dur["count"], 4);
    assert_eq!((ms(&dur["p50"]), ms(&dur["p95"])), (3_072.0, 90_000.0));
    let late = &s["lateness_ms"];
    assert_eq!(late["count"], 3);
    assert!(close(ms(&late["mean"]), 12_500.0 / 3.0));
    assert_eq!((ms(&late["p50"]), ms(&late["max"])), (2_048.0, 10_000.0));
    assert_eq!(s["files_loaded"], 6);
    assert_eq!(s["last_failure"]["run_id"], ids[2].to_string());

    // 7d: a..h. Durations 200, 1500, 3000, 40000, 90000: p50 the 3rd (3000: 3072). Lateness
    // 500, 2000, 10000, 60000: p50 the 2nd (2048), p95 the 4th (60000 in [57344, 65536): the
    // maximum).
    let s = stats(&api, &token, id, Some("7d")).await;
    assert_eq!(counts(&s), [8, 3, 2, 1, 1, 1], "{s}");
    assert!(close(ms(&s["success_rate"]), 0.6));
    assert_eq!(ms(&s["duration_ms"]["p50"]), 3_072.0);
    let late = &s["lateness_ms"];
    assert_eq!((ms(&late["p50"]), ms(&late["p95"])), (2_048.0, 60_000.0));

    // 30d: a..i; j finished 40 days ago and counts nowhere.
    let s = stats(&api, &token, id, Some("30d")).await;
    assert_eq!(counts(&s), [9, 4, 2, 1, 1, 1], "{s}");
    assert_eq!(
        (&s["files_loaded"], &s["rows_loaded"], &s["bytes_loaded"]),
        (&json!(16), &json!(1_450), &json!(14_500))
    );
    // Durations 200, 1500, 3000, 7000, 40000, 90000: p50 the 3rd (3072), p95 the 6th (max).
    let dur = &s["duration_ms"];
    assert_eq!(dur["count"], 6);
    assert!(close(ms(&dur["mean"]), 141_700.0 / 6.0));
    assert_eq!((ms(&dur["p50"]), ms(&dur["p95"])), (3_072.0, 90_000.0));
    assert_eq!(s["last_success"]["run_id"], ids[0].to_string());
}

/// The expected bucket of every percentile above is read off PostgreSQL's own list.
#[sqlx::test(migrator = "MIGRATOR")]
async fn the_databases_buckets_are_the_documented_ones(pool: PgPool) {
    let bounds: Vec<f64> = sqlx::query_scalar("select run_stats_bounds()")
        .fetch_one(&pool)
        .await
        .expect("bounds");
    assert_eq!(bounds, BOUNDS_MS.to_vec());
}

/// Twenty loads a second apart: p50 and p95 come from buckets away from the maximum.
#[sqlx::test(migrator = "MIGRATOR")]
async fn percentiles_are_read_from_the_buckets_a_hand_count_names(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let now = db_now(&pool).await;
    // Durations 1, 2, ..., 19 s and 60 s; lateness 0.1, 0.2, ..., 2.0 s.
    for i in 1..=20 {
        let duration = if i == 20 { 60_000 } else { i * 1_000 };
        Load::new("SUCCESS", now - Duration::minutes(i))
            .ran(duration, Some(i * 100))
            .insert(&pool, id)
            .await;
    }
    let s = stats(&api, &token, id, Some("1h")).await;
    // Durations: p50 is the 10th value, 10000 ms, in [8192, 10240); p95 the 19th, 19000, in
    // [16384, 20480).
    let dur = &s["duration_ms"];
    assert_eq!(
        (ms(&dur["p50"]), ms(&dur["p95"]), ms(&dur["max"])),
        (10_240.0, 20_480.0, 60_000.0)
    );
    // Lateness: p50 the 10th, 1000 ms, in [896, 1024); p95 the 19th, 1900, in [1792, 2048),
    // whose bound 2048 passes the maximum 2000: capped.
    let late = &s["lateness_ms"];
    assert_eq!(
        (ms(&late["p50"]), ms(&late["p95"]), ms(&late["max"])),
        (1_024.0, 2_000.0, 2_000.0)
    );
    assert!(close(ms(&late["mean"]), 1_050.0));
    // The same over 24h.
    let day = stats(&api, &token, id, Some("24h")).await;
    assert_eq!(day["duration_ms"], s["duration_ms"]);
    assert_eq!(day["lateness_ms"], s["lateness_ms"]);
}

/// A window is `[now - window, now]` over the loads' tick times (or, for a manual run, the
/// instant it was asked for), whatever instant they finished: a catch-up run for a tick just
/// inside the window counts though it finished now, and loads that finished inside the window
/// for a tick or a trigger a second before it do not.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_window_holds_the_loads_whose_tick_or_trigger_is_in_it(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    for (window, span) in [
        ("1h", 3_600),
        ("24h", 86_400),
        ("7d", 7 * 86_400),
        ("30d", 30 * 86_400),
    ] {
        let id = ingestion(&api, &token, &format!("edge-{window}")).await;
        let now = db_now(&pool).await;
        let start = now - Duration::seconds(span);
        // In (the request follows within 30 s): a run of a tick 30 s after the start, and a
        // manual run asked for then, both finished just now.
        Load::new("SUCCESS", now)
            .ran(10, None)
            .for_tick(start + Duration::seconds(30))
            .insert(&pool, id)
            .await;
        Load::new("FAILED", now)
            .ran(10, None)
            .asked_at(start + Duration::seconds(30))
            .insert(&pool, id)
            .await;
        // Out: a tick and a manual trigger a second before the start, finished just now; a
        // tick ahead of now.
        Load::new("SUCCESS", now)
            .ran(10, None)
            .for_tick(start - Duration::seconds(1))
            .insert(&pool, id)
            .await;
        Load::new("CANCELLED", now)
            .asked_at(start - Duration::seconds(1))
            .insert(&pool, id)
            .await;
        Load::new("SKIPPED", now)
            .for_tick(now + Duration::hours(1))
            .insert(&pool, id)
            .await;
        let s = stats(&api, &token, id, Some(window)).await;
        assert_eq!(counts(&s), [2, 1, 1, 0, 0, 0], "{window}: {s}");
        let at = |k: &str| -> DateTime<Utc> {
            s[k].as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{k} in {s}"))
        };
        assert_eq!((at("to") - at("from")).num_seconds(), span, "{window}");
        assert!(at("from") >= start, "{window}");
    }
}

/// The real run-retention sweep (a one-day retention, two runs per statement so that later
/// statements add to a bucket an earlier one opened) deletes the runs inside the 7d and 30d
/// windows and folds them into hour buckets by tick: every window answers exactly as before,
/// and the folded and live loads combine as a hand count says.
#[sqlx::test(migrator = "MIGRATOR")]
async fn the_run_retention_folds_what_it_deletes_and_no_window_changes(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let now = db_now(&pool).await;
    let minutes = Duration::minutes;
    let h3 = (now - Duration::days(3))
        .duration_trunc(Duration::hours(1))
        .expect("hour");
    let mut ids = Vec::new();
    for load in [
        // Four loads of one hour three days ago.
        Load::new("SUCCESS", h3 + minutes(11))
            .ran(2_000, None)
            .for_tick(h3 + minutes(10))
            .loaded(1, 10, 100),
        Load::new("FAILED", h3 + minutes(21))
            .ran(40_000, None)
            .for_tick(h3 + minutes(20)),
        Load::new("SKIPPED", h3 + minutes(30)),
        Load::new("CANCELLED", h3 + minutes(41)).asked_at(h3 + minutes(40)),
        // A manual run ten days ago, a missed tick twenty days ago.
        Load::new("SUCCESS", now - Duration::days(10))
            .ran(7_000, None)
            .loaded(2, 20, 200),
        Load::new("MISSED", now - Duration::days(20)),
        // Live: a load half an hour ago, and a catch-up run for a tick two days ago that
        // finished an hour ago (too recent to prune; counted in its tick's window).
        Load::new("SUCCESS", now - minutes(30))
            .ran(500, Some(5))
            .loaded(1, 1, 1),
        Load::new("SUCCESS", now - minutes(60))
            .ran(3_000, None)
            .for_tick(now - Duration::days(2))
            .loaded(4, 40, 400),
    ] {
        ids.push(load.insert(&pool, id).await);
    }
    // A maintenance run five days ago: pruned, never counted.
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, kind, maintained_table,
                           queued_at, status, attempt, worker_id, started_at, finished_at, error)
         select $1, id, tenant_id, 'scheduler', 'compact', 'acme.raw.events', $3, 'FAILED', 1,
                'w', $3, $3, 'no'
         from ingestions where id = $2",
    )
    .bind(uuid_v7_at(now - Duration::days(5)))
    .bind(id)
    .bind(now - Duration::days(5))
    .execute(&pool)
    .await
    .expect("maintenance run");

    let windows = ["1h", "24h", "7d", "30d"];
    let mut before = Vec::new();
    for w in windows {
        before.push(stats(&api, &token, id, Some(w)).await);
    }
    let pruned = retention::prune(&pool, 1, 2, &CancellationToken::new())
        .await
        .expect("prune");
    assert_eq!(pruned, 7);
    let left: Vec<Uuid> =
        sqlx::query_scalar("select id from runs where ingestion_id = $1 order by id")
            .bind(id)
            .fetch_all(&pool)
            .await
            .expect("runs");
    let mut live = vec![ids[6], ids[7]];
    live.sort();
    assert_eq!(left, live);
    let buckets: i64 = sqlx::query_scalar("select count(*) from run_stats where ingestion_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("buckets");
    assert_eq!(
        buckets, 3,
        "the hour three days ago, ten days ago, twenty days ago"
    );

    for (w, was) in windows.into_iter().zip(&before) {
        let mut after = stats(&api, &token, id, Some(w)).await;
        let mut was = was.clone();
        // Only the clock moved.
        for s in [&mut after, &mut was] {
            s["to"] = Value::Null;
            s["from"] = Value::Null;
        }
        assert_eq!(after, was, "{w}");
    }

    // By hand, after: 24h holds the half-hour-old load only.
    let s = stats(&api, &token, id, Some("24h")).await;
    assert_eq!(counts(&s), [1, 1, 0, 0, 0, 0], "{s}");
    // 7d: the hour three days ago (folded) and both live loads.
    let s = stats(&api, &token, id, Some("7d")).await;
    assert_eq!(counts(&s), [6, 3, 1, 1, 1, 0], "{s}");
    assert_eq!(s["files_loaded"], 6);
    // 30d: everything but the maintenance run. Durations 500, 2000, 3000 (live and folded),
    // 7000, 40000: p50 the 3rd, 3000, in [2560, 3072); p95 the 5th, 40000, in [32768, 40960),
    // capped by the maximum.
    let s = stats(&api, &token, id, Some("30d")).await;
    assert_eq!(counts(&s), [8, 4, 1, 1, 1, 1], "{s}");
    assert_eq!(
        (&s["files_loaded"], &s["rows_loaded"], &s["bytes_loaded"]),
        (&json!(8), &json!(71), &json!(701))
    );
    let dur = &s["duration_ms"];
    assert_eq!(dur["count"], 5);
    assert!(close(ms(&dur["mean"]), 52_500.0 / 5.0), "{dur}");
    assert_eq!((ms(&dur["p50"]), ms(&dur["p95"])), (3_072.0, 40_000.0));
    assert_eq!(s["last_success"]["run_id"], ids[6].to_string());
    assert_eq!(
        s["last_failure"]["run_id"],
        ids[1].to_string(),
        "a folded run"
    );
    assert!(s["success_rate"].as_f64().is_some_and(|r| close(r, 0.8)));
}

/// Every path that finishes a load counts it: the API's cancel, and status changes made at psql
/// along the state machine (claim, then outcome).
#[sqlx::test(migrator = "MIGRATOR")]
async fn loads_finished_by_the_api_and_at_psql_are_counted(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let run = api.trigger(&token, id).await;
    let run_id = run["id"].as_str().expect("run id").to_owned();
    let (status, _, body) = api
        .call(
            "POST",
            &format!("/api/v1/runs/{run_id}/cancel"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let s = stats(&api, &token, id, Some("1h")).await;
    assert_eq!(counts(&s), [1, 0, 0, 1, 0, 0], "{s}");

    let run = api.trigger(&token, id).await;
    let run_id: Uuid = run["id"].as_str().and_then(|r| r.parse().ok()).expect("id");
    sqlx::query(
        "update runs set status = 'RUNNING', attempt = 1, worker_id = 'psql',
                         started_at = now() - interval '2 seconds',
                         lease_expires_at = now() + interval '1 minute'
         where id = $1",
    )
    .bind(run_id)
    .execute(&pool)
    .await
    .expect("claim at psql");
    // Not finished yet: active, not counted in the total.
    let s = stats(&api, &token, id, Some("1h")).await;
    assert_eq!((counts(&s)[0], &s["runs"]["active"]), (1, &json!(1)), "{s}");
    sqlx::query(
        "update runs set status = 'SUCCESS', finished_at = now(), lease_expires_at = null,
                         files_processed = 4, rows_ingested = 40, bytes_read = 400
         where id = $1",
    )
    .bind(run_id)
    .execute(&pool)
    .await
    .expect("outcome at psql");
    let s = stats(&api, &token, id, Some("1h")).await;
    assert_eq!(counts(&s), [2, 1, 0, 1, 0, 0], "{s}");
    assert_eq!(s["files_loaded"], 4);
    assert_eq!(s["rows_loaded"], 40);
    assert_eq!(s["last_success"]["run_id"], run_id.to_string());
    // Two seconds, in [1792, 2048) ms... or a little more by the clock: at least 2000.
    let d = ms(&s["duration_ms"]["max"]);
    assert!((2_000.0..3_000.0).contains(&d), "{d}");
    assert_eq!(s["lateness_ms"]["count"], 0, "a manual run has no lateness");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn another_tenants_ingestion_is_404_and_a_bad_window_is_a_400_naming_it(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, acme) = api.tenant("acme").await;
    let (_, other) = api.tenant("other").await;
    let id = ingestion(&api, &acme, "events").await;
    Load::new("SUCCESS", db_now(&pool).await)
        .ran(5, None)
        .insert(&pool, id)
        .await;
    let path = format!("/api/v1/ingestions/{id}/stats");
    let (status, ctype, body) = api.call("GET", &path, &other, None).await;
    assert_eq!(status, 404, "{body}");
    assert!(ctype.starts_with("application/problem+json"));
    let (status, _, _) = api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{}/stats", Uuid::now_v7()),
            &acme,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = api.call("GET", &path, ADMIN_TOKEN, None).await;
    assert_ne!(status, 200, "the admin token is not a tenant's");

    for bad in ["2h", "1d", "", "24H", "30d%20", "-1h"] {
        let (status, ctype, body) = api
            .call("GET", &format!("{path}?window={bad}"), &acme, None)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(ctype.starts_with("application/problem+json"));
        assert!(
            body["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["field"] == "window")),
            "{bad}: {body}"
        );
    }
    let (status, _, body) = api
        .call("GET", &format!("{path}?windows=1h"), &acme, None)
        .await;
    assert_eq!(status, 400, "an unknown parameter: {body}");

    // The document lists the windows.
    let (_, _, doc) = api.call("GET", "/openapi.json", &acme, None).await;
    let op = &doc["paths"]["/api/v1/ingestions/{id}/stats"]["get"];
    assert!(op.is_object(), "the operation is documented");
    let text = doc.to_string();
    for w in ["\"1h\"", "\"24h\"", "\"7d\"", "\"30d\""] {
        assert!(text.contains(w), "{w} is in the document");
    }
}

/// A catch-up backlog still owed when the schedule is disabled is recorded as one MISSED row for
/// its oldest tick: counted in the window of that tick.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_dropped_catch_up_backlog_counts_as_missed_in_its_ticks_window(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let (status, _, body) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/schedule/enable"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let owed = sqlx::query(
        "update schedule_ticks
         set backlog_next = now() - interval '3 hours', backlog_start = now() - interval '4 hours',
             backlog_last = now() - interval '1 hour', backlog_count = 3,
             backlog_check_at = now() + interval '1 hour'
         where ingestion_id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("a backlog");
    assert_eq!(owed.rows_affected(), 1);
    let (status, _, body) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/schedule/disable"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        counts(&stats(&api, &token, id, Some("1h")).await),
        [0, 0, 0, 0, 0, 0]
    );
    let s = stats(&api, &token, id, Some("24h")).await;
    assert_eq!(counts(&s), [1, 0, 0, 0, 0, 1], "{s}");
    assert_eq!(s["success_rate"], Value::Null);
}

/// Every window of `id`, with the clock fields (`from`, `to`) left out.
async fn every_window(api: &TestApi, token: &str, id: Uuid) -> Vec<Value> {
    let mut out = Vec::new();
    for w in ["1h", "24h", "7d", "30d"] {
        let mut s = stats(api, token, id, Some(w)).await;
        s["from"] = Value::Null;
        s["to"] = Value::Null;
        out.push(s);
    }
    out
}

/// The hour `at` falls in (UTC).
fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::hours(1)).expect("hour")
}

async fn watermark(pool: &PgPool, id: Uuid) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("select folded_before from run_stats_folds where ingestion_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .expect("watermark")
}

/// The loads counted in `id`'s hour buckets.
async fn bucketed(pool: &PgPool, id: Uuid) -> i64 {
    sqlx::query_scalar(
        "select coalesce(sum(succeeded + failed + cancelled + skipped + missed), 0)::bigint
         from run_stats where ingestion_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("bucketed")
}

/// The fold moves every finished load more than a day (and an hour) old into its hour bucket:
/// no window changes, the loads of the last day stay in `runs` as they are read live, and the
/// retention then deletes the folded runs without counting them again. A hand count of the
/// result.
#[sqlx::test(migrator = "MIGRATOR")]
async fn the_fold_moves_loads_older_than_a_day_into_buckets_and_no_window_changes(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let now = db_now(&pool).await;
    let ago = |m: i64| now - Duration::minutes(m);
    let (h, d) = (60, 24 * 60);
    let history = [
        // a, b: the last day, live.
        Load::new("SUCCESS", ago(10))
            .ran(1_500, Some(2_000))
            .loaded(2, 100, 1_000),
        Load::new("FAILED", ago(5 * h)).ran(40_000, Some(500)),
        // c..i: folded. j: older than any window, folded too.
        Load::new("SUCCESS", ago(30 * h))
            .ran(3_000, Some(100))
            .loaded(1, 10, 100),
        Load::new("SKIPPED", ago(2 * d)),
        Load::new("CANCELLED", ago(3 * d)).asked_at(ago(3 * d + 1)),
        Load::new("MISSED", ago(6 * d)),
        Load::new("SUCCESS", ago(10 * d))
            .ran(7_000, Some(1))
            .loaded(10, 1_000, 10_000),
        Load::new("FAILED", ago(20 * d)).ran(200, Some(60_000)),
        Load::new("SUCCESS", ago(29 * d))
            .ran(100, None)
            .asked_at(ago(29 * d) - Duration::milliseconds(100))
            .loaded(1, 1, 1),
        Load::new("SUCCESS", ago(40 * d)).ran(1, Some(1)),
    ];
    let mut ids = Vec::new();
    for load in &history {
        ids.push(load.insert(&pool, id).await);
    }
    let before = every_window(&api, &token, id).await;

    let folded = retention::fold_stats(&pool, &CancellationToken::new())
        .await
        .expect("fold");
    assert_eq!(folded, 8, "c..j");
    assert_eq!(bucketed(&pool, id).await, 8);
    let target = hour_of(db_now(&pool).await - Duration::hours(25));
    assert!(
        watermark(&pool, id)
            .await
            .is_some_and(|w| w == target || w == target - Duration::hours(1)),
        "the hour a day and an hour ago"
    );
    assert_eq!(
        every_window(&api, &token, id).await,
        before,
        "after the fold"
    );
    // A 30d window reaching folded hours starts on the hour.
    let s = stats(&api, &token, id, Some("30d")).await;
    let at = |k: &str| -> DateTime<Utc> { s[k].as_str().and_then(|t| t.parse().ok()).expect(k) };
    assert_eq!(at("from"), hour_of(at("to") - Duration::days(30)), "{s}");
    // A second fold finds nothing more.
    let again = retention::fold_stats(&pool, &CancellationToken::new())
        .await
        .expect("fold again");
    assert_eq!(again, 0);

    // The retention (one day) deletes the folded runs and adds nothing.
    let pruned = retention::prune(&pool, 1, 3, &CancellationToken::new())
        .await
        .expect("prune");
    assert_eq!(pruned, 8);
    assert_eq!(bucketed(&pool, id).await, 8);
    let left: Vec<Uuid> =
        sqlx::query_scalar("select id from runs where ingestion_id = $1 order by id")
            .bind(id)
            .fetch_all(&pool)
            .await
            .expect("runs");
    let mut live = vec![ids[0], ids[1]];
    live.sort();
    assert_eq!(left, live);
    assert_eq!(
        every_window(&api, &token, id).await,
        before,
        "after the retention"
    );

    // By hand. 24h: a, b.
    let s = stats(&api, &token, id, Some("24h")).await;
    assert_eq!(counts(&s), [2, 1, 1, 0, 0, 0], "{s}");
    // 7d: a..f.
    let s = stats(&api, &token, id, Some("7d")).await;
    assert_eq!(counts(&s), [6, 2, 1, 1, 1, 1], "{s}");
    // 30d: a..i. Durations 100, 200, 1500, 3000, 7000, 40000: p50 the 3rd, 1500, in
    // [1280, 1536); p95 the 6th, the maximum. Lateness 1, 100, 500, 2000, 60000: p50 the 3rd,
    // 500, in [448, 512).
    let s = stats(&api, &token, id, Some("30d")).await;
    assert_eq!(counts(&s), [9, 4, 2, 1, 1, 1], "{s}");
    assert_eq!(
        (&s["files_loaded"], &s["rows_loaded"], &s["bytes_loaded"]),
        (&json!(14), &json!(1_111), &json!(11_101))
    );
    let dur = &s["duration_ms"];
    assert_eq!(dur["count"], 6);
    assert!(close(ms(&dur["mean"]), 51_800.0 / 6.0), "{dur}");
    assert_eq!((ms(&dur["p50"]), ms(&dur["p95"])), (1_536.0, 40_000.0));
    let late = &s["lateness_ms"];
    assert_eq!(late["count"], 5);
    assert_eq!((ms(&late["p50"]), ms(&late["max"])), (512.0, 60_000.0));
    assert_eq!(s["last_success"]["run_id"], ids[0].to_string());
    assert_eq!(s["last_failure"]["run_id"], ids[1].to_string());
}

/// A load still running three days after its tick holds the fold back at its hour and is
/// counted once, active and then finished; a catch-up run written now for a tick four days
/// ago, and a MISSED row inserted at psql now for a tick six days ago, are late: counted once,
/// live, through every fold, and the MISSED row once more when the retention deletes it (folded
/// then). A finished run's tick cannot be moved under the fold.
#[sqlx::test(migrator = "MIGRATOR")]
async fn late_finished_and_late_written_loads_are_each_counted_once(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let now = db_now(&pool).await;
    let fold = || async {
        retention::fold_stats(&pool, &CancellationToken::new())
            .await
            .expect("fold")
    };
    let week = |s: &Value| (counts(s), s["runs"]["active"].as_i64().expect("active"));
    Load::new("SUCCESS", now - Duration::days(5))
        .ran(1_000, Some(10))
        .insert(&pool, id)
        .await;
    let tick = now - Duration::days(3);
    let long: Uuid = uuid_v7_at(tick);
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, queued_at,
                           status, attempt, worker_id, started_at, lease_expires_at)
         select $1, id, tenant_id, 'scheduler', $3, $3, 'RUNNING', 1, 'w',
                $3 + interval '1 second', now() + interval '1 hour'
         from ingestions where id = $2",
    )
    .bind(long)
    .bind(id)
    .bind(tick)
    .execute(&pool)
    .await
    .expect("a long load");
    assert_eq!(fold().await, 1, "the load five days ago");
    assert_eq!(watermark(&pool, id).await, Some(hour_of(tick)), "held back");
    let s = stats(&api, &token, id, Some("7d")).await;
    assert_eq!(week(&s), ([1, 1, 0, 0, 0, 0], 1), "{s}");

    sqlx::query(
        "update runs set status = 'SUCCESS', finished_at = now(), lease_expires_at = null,
                         files_processed = 3
         where id = $1",
    )
    .bind(long)
    .execute(&pool)
    .await
    .expect("finished three days late");
    let s = stats(&api, &token, id, Some("7d")).await;
    assert_eq!(week(&s), ([2, 2, 0, 0, 0, 0], 0), "{s}");
    assert_eq!(fold().await, 1, "the long load");
    assert_eq!(bucketed(&pool, id).await, 2);
    let s = stats(&api, &token, id, Some("7d")).await;
    assert_eq!(week(&s), ([2, 2, 0, 0, 0, 0], 0), "{s}");
    assert_eq!(s["files_loaded"], 3);
    assert_eq!(s["last_success"]["run_id"], long.to_string());

    // Written now, below the watermark (queued_at now): a catch-up run, and a MISSED row whose
    // id says six days ago, so that a one-day retention deletes it.
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status,
                           attempt, worker_id, started_at, finished_at, reason, rows_ingested)
         select uuid_v7_now(), id, tenant_id, 'scheduler', now() - interval '4 days', 'SUCCESS',
                1, 'w', now() - interval '2 seconds', now(), null, 7
         from ingestions where id = $1
         union all
         select $2, id, tenant_id, 'scheduler', now() - interval '6 days', 'MISSED',
                0, null, null, now() - interval '6 days', 'by hand', 0
         from ingestions where id = $1",
    )
    .bind(id)
    .bind(uuid_v7_at(now - Duration::days(6)))
    .execute(&pool)
    .await
    .expect("late rows");
    let expect = ([4, 3, 0, 0, 0, 1], 0);
    let s = stats(&api, &token, id, Some("7d")).await;
    assert_eq!(week(&s), expect, "{s}");
    assert_eq!(s["rows_loaded"], 7);
    assert_eq!(fold().await, 0, "late rows are not folded");
    let s = stats(&api, &token, id, Some("7d")).await;
    assert_eq!(week(&s), expect, "{s}");
    // The retention deletes what finished over a day ago: the load five days ago, folded, and
    // the MISSED row, which it folds as it goes.
    let pruned = retention::prune(&pool, 1, 10, &CancellationToken::new())
        .await
        .expect("prune");
    assert_eq!(pruned, 2);
    assert_eq!(bucketed(&pool, id).await, 3);
    for w in ["7d", "30d"] {
        let s = stats(&api, &token, id, Some(w)).await;
        assert_eq!(week(&s), expect, "{w}: {s}");
    }

    // The fields that place a finished run are history.
    let err = sqlx::query(
        "update runs set scheduled_for = scheduled_for + interval '2 days'
         where ingestion_id = $1 and status = 'SUCCESS'",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect_err("a finished run's tick moved");
    let constraint = err
        .as_database_error()
        .and_then(|e| e.constraint().map(str::to_owned));
    assert_eq!(constraint.as_deref(), Some("runs_history_fixed"), "{err}");
}

/// Two sweeps folding at once (as two worker processes would) take turns: every load is in a
/// bucket once, and no ingestion's window changes.
#[sqlx::test(migrator = "MIGRATOR")]
async fn two_folds_at_once_count_nothing_twice(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let now = db_now(&pool).await;
    let statuses = [
        "SUCCESS", "FAILED", "SUCCESS", "SKIPPED", "MISSED", "SUCCESS",
    ];
    let mut ingestions = Vec::new();
    for n in 0..25 {
        let id = ingestion(&api, &token, &format!("events-{n}")).await;
        // Every 13 hours over 30 days, the newest 5 minutes ago.
        for k in 0..55 {
            let at = now - Duration::minutes(5 + 13 * 60 * k);
            let status = statuses[usize::try_from(k + n).expect("index") % statuses.len()];
            let load = Load::new(status, at);
            let load = if matches!(status, "SUCCESS" | "FAILED") {
                load.ran(100 * (k + 1), Some(k)).loaded(1, k, 10 * k)
            } else {
                load
            };
            load.insert(&pool, id).await;
        }
        ingestions.push(id);
    }
    let mut before = Vec::new();
    for id in &ingestions {
        before.push(every_window(&api, &token, *id).await);
    }
    let stop = CancellationToken::new();
    let (a, b) = tokio::join!(
        retention::fold_stats(&pool, &stop),
        retention::fold_stats(&pool, &stop)
    );
    let folded = a.expect("fold a") + b.expect("fold b");
    // Of each ingestion's 55 loads, those whose tick is before its watermark.
    let below: i64 = sqlx::query_scalar(
        "select count(*) from runs r join run_stats_folds f on f.ingestion_id = r.ingestion_id
         where r.scheduled_for < f.folded_before",
    )
    .fetch_one(&pool)
    .await
    .expect("below");
    assert!(below > 25 * 50, "{below}");
    assert_eq!(i64::try_from(folded).expect("count"), below);
    let mut bucketed_all = 0;
    for (id, was) in ingestions.iter().zip(&before) {
        assert_eq!(&every_window(&api, &token, *id).await, was, "{id}");
        bucketed_all += bucketed(&pool, *id).await;
    }
    assert_eq!(bucketed_all, below);
}

/// Each day row against the hour rows of its day, summed here: the counts, sums and both
/// histograms. Empty when every day agrees.
async fn days_disagreeing(pool: &PgPool, id: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "with h as (
             select date_trunc('day', hour_start, 'UTC') as day_start,
                    succeeded + failed + cancelled + skipped + missed as runs,
                    rows_loaded, duration_count, duration_hist
             from run_stats where ingestion_id = $1
         ), per_bucket as (
             select h.day_start, u.i, sum(u.v) as x
             from h, unnest(h.duration_hist) with ordinality u(v, i)
             group by 1, 2
         ), hours as (
             select h.day_start, sum(h.runs) as runs, sum(h.rows_loaded) as rows_loaded,
                    sum(h.duration_count) as durations,
                    (select array_agg(b.x order by b.i) from per_bucket b
                     where b.day_start = h.day_start) as hist
             from h group by h.day_start
         )
         select coalesce(h.day_start, d.day_start)::text
         from hours h full join (select * from run_stats_days where ingestion_id = $1) d
           on d.day_start = h.day_start
         where d.day_start is null or h.day_start is null
            or (h.runs, h.rows_loaded, h.durations)
               is distinct from ((d.succeeded + d.failed + d.cancelled + d.skipped + d.missed)::numeric,
                                 d.rows_loaded::numeric, d.duration_count::numeric)
            or h.hist::bigint[] is distinct from d.duration_hist::bigint[]",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("compare days with hours")
}

#[sqlx::test(migrations = "../migrations")]
async fn day_rows_are_the_sum_of_their_hours_whoever_writes_the_hours(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = ingestion(&api, &token, "events").await;
    let now = db_now(&pool).await;
    let ago = |h: i64| now - Duration::hours(h);
    // Several loads in some of the hours of a few days, some days with one hour. Durations whose
    // seconds are exact binary fractions, so a mean summed in another order is the same number.
    for (h, ms) in [
        (30, 500),
        (31, 1_000),
        (31, 250),
        (50, 125),
        (75, 3_000),
        (76, 2_000),
        (200, 4_000),
    ] {
        Load::new("SUCCESS", ago(h))
            .ran(ms, Some(10))
            .loaded(1, 5, 50)
            .insert(&pool, id)
            .await;
    }
    Load::new("FAILED", ago(52))
        .ran(5, Some(1))
        .insert(&pool, id)
        .await;
    let before = every_window(&api, &token, id).await;
    retention::fold_stats(&pool, &CancellationToken::new())
        .await
        .expect("fold");
    let days: i64 =
        sqlx::query_scalar("select count(*) from run_stats_days where ingestion_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("statement");
    assert!(days >= 3, "the fold wrote day rows: {days}");
    assert_eq!(
        days_disagreeing(&pool, id).await,
        Vec::<String>::new(),
        "after the fold"
    );
    assert_eq!(
        every_window(&api, &token, id).await,
        before,
        "the windows read days now"
    );

    // Hour rows changed and deleted at psql: the days follow in the same statement.
    sqlx::query(
        "update run_stats set succeeded = succeeded + 2, rows_loaded = rows_loaded + 7
         where ingestion_id = $1 and hour_start = (select max(hour_start) from run_stats where ingestion_id = $1)",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("statement");
    sqlx::query(
        "delete from run_stats
         where ingestion_id = $1 and hour_start = (select min(hour_start) from run_stats where ingestion_id = $1)",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("statement");
    assert_eq!(
        days_disagreeing(&pool, id).await,
        Vec::<String>::new(),
        "after psql"
    );
    let left: i64 =
        sqlx::query_scalar("select count(*) from run_stats_days where ingestion_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("statement");
    assert_eq!(
        left,
        days - 1,
        "the day whose only hour was deleted is gone"
    );
}
