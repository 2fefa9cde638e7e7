//! The invariants the database itself enforces, proven with real SQL against real PostgreSQL.
//! Each test gets a fresh database with every migration applied.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

async fn tenant(pool: &PgPool, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("insert into tenants (id, name) values ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await
        .expect("insert tenant");
    id
}

async fn ingestion(pool: &PgPool, tenant_id: Uuid, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                                 destination_table, schedule_frequency, schedule_time,
                                 schedule_timezone, schedule_enabled)
         values ($1, $2, $3, 's3', 's3://bucket/logs/', 'json', 'analytics.events',
                 'daily', '02:00', 'Europe/London', true)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(name)
    .execute(pool)
    .await
    .expect("insert ingestion");
    id
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339 instant")
}

/// Inserts a run the way the engine will, returning the constraint that refused it, if any.
async fn insert_run(
    pool: &PgPool,
    ingestion_id: Uuid,
    tenant_id: Uuid,
    triggered_by: &str,
    scheduled_for: Option<DateTime<Utc>>,
    status: &str,
) -> Result<Uuid, String> {
    let id = Uuid::now_v7();
    let finished = !matches!(status, "QUEUED" | "RUNNING");
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status,
                           worker_id, lease_expires_at, started_at, finished_at, reason)
         values ($1, $2, $3, $4, $5, $6,
                 case when $6 = 'RUNNING' then 'worker-a' end,
                 case when $6 = 'RUNNING' then now() + interval '30 seconds' end,
                 case when $6 <> 'QUEUED' then now() end,
                 case when $7 then now() end,
                 case when $6 in ('SKIPPED', 'MISSED') then 'test' end)",
    )
    .bind(id)
    .bind(ingestion_id)
    .bind(tenant_id)
    .bind(triggered_by)
    .bind(scheduled_for)
    .bind(status)
    .bind(finished)
    .execute(pool)
    .await
    .map(|_| id)
    .map_err(|e| match e {
        sqlx::Error::Database(d) => d.constraint().unwrap_or("<no constraint>").to_owned(),
        other => panic!("unexpected error: {other}"),
    })
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_tick_yields_at_most_one_run(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = ingestion(&pool, t, "events").await;
    let tick = at("2025-11-06T02:00:00Z");

    insert_run(&pool, i, t, "scheduler", Some(tick), "SUCCESS")
        .await
        .expect("first run");
    let second = insert_run(&pool, i, t, "scheduler", Some(tick), "SKIPPED").await;
    assert_eq!(second, Err("runs_one_per_tick".to_owned()));

    // The next tick is a different slot, and manual runs have no tick at all.
    insert_run(
        &pool,
        i,
        t,
        "scheduler",
        Some(at("2025-11-07T02:00:00Z")),
        "SUCCESS",
    )
    .await
    .expect("next tick");
    insert_run(&pool, i, t, "manual", None, "SUCCESS")
        .await
        .expect("manual run");
    insert_run(&pool, i, t, "manual", None, "SUCCESS")
        .await
        .expect("another manual run");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_ingestion_has_at_most_one_queued_or_running_run(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = ingestion(&pool, t, "events").await;
    let other = ingestion(&pool, t, "other").await;

    insert_run(
        &pool,
        i,
        t,
        "scheduler",
        Some(at("2025-11-06T02:00:00Z")),
        "RUNNING",
    )
    .await
    .expect("running run");
    for (status, by, tick) in [
        ("QUEUED", "scheduler", Some(at("2025-11-07T02:00:00Z"))),
        ("RUNNING", "scheduler", Some(at("2025-11-08T02:00:00Z"))),
        ("QUEUED", "manual", None),
    ] {
        let refused = insert_run(&pool, i, t, by, tick, status).await;
        assert_eq!(
            refused,
            Err("runs_one_active_per_ingestion".to_owned()),
            "{status} {by}"
        );
    }

    // Finished runs do not count, and other ingestions are independent.
    insert_run(
        &pool,
        i,
        t,
        "scheduler",
        Some(at("2025-11-09T02:00:00Z")),
        "SKIPPED",
    )
    .await
    .expect("skipped tick is recorded beside the running one");
    insert_run(&pool, other, t, "manual", None, "QUEUED")
        .await
        .expect("another ingestion");

    // Once the running run finishes, a new one may queue.
    sqlx::query("update runs set status = 'SUCCESS', finished_at = now() where ingestion_id = $1 and status = 'RUNNING'")
        .bind(i)
        .execute(&pool)
        .await
        .expect("finish");
    insert_run(&pool, i, t, "manual", None, "QUEUED")
        .await
        .expect("queues after finish");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn racing_writers_never_get_two_active_runs(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = ingestion(&pool, t, "events").await;

    // Thirty connections insert at once; Postgres must let exactly one through.
    let attempts = (0..30).map(|n| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let tick = Utc
                .timestamp_opt(1_700_000_000 + n * 3600, 0)
                .single()
                .expect("instant");
            insert_run(&pool, i, t, "scheduler", Some(tick), "QUEUED").await
        })
    });
    let mut won = 0;
    for a in attempts {
        match a.await.expect("task") {
            Ok(_) => won += 1,
            Err(c) => assert_eq!(c, "runs_one_active_per_ingestion"),
        }
    }
    assert_eq!(won, 1);
    let active: i64 = sqlx::query_scalar(
        "select count(*) from runs where ingestion_id = $1 and status in ('QUEUED', 'RUNNING')",
    )
    .bind(i)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(active, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn run_rows_must_be_coherent(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = ingestion(&pool, t, "events").await;

    let no_lease = sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, status, started_at)
         values ($1, $2, $3, 'manual', 'RUNNING', now())",
    )
    .bind(Uuid::now_v7())
    .bind(i)
    .bind(t)
    .execute(&pool)
    .await
    .expect_err("a RUNNING run without a worker and lease");
    assert_eq!(constraint(&no_lease), Some("runs_running_has_lease"));

    let scheduler_without_tick = insert_run(&pool, i, t, "scheduler", None, "QUEUED").await;
    assert_eq!(
        scheduler_without_tick,
        Err("runs_scheduler_has_tick".to_owned())
    );

    let bad_status = sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, status)
         values ($1, $2, $3, 'manual', 'running')",
    )
    .bind(Uuid::now_v7())
    .bind(i)
    .bind(t)
    .execute(&pool)
    .await
    .expect_err("lower-case status");
    assert_eq!(constraint(&bad_status), Some("runs_status_check"));

    let skipped_without_reason = sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status, finished_at)
         values ($1, $2, $3, 'scheduler', now(), 'SKIPPED', now())",
    )
    .bind(Uuid::now_v7())
    .bind(i)
    .bind(t)
    .execute(&pool)
    .await
    .expect_err("skipped without a reason");
    assert_eq!(
        constraint(&skipped_without_reason),
        Some("runs_skip_or_miss_has_reason")
    );

    // A run cannot claim another tenant's ingestion.
    let intruder = tenant(&pool, "intruder").await;
    let cross = insert_run(&pool, i, intruder, "manual", None, "QUEUED").await;
    assert_eq!(cross, Err("runs_ingestion_id_tenant_id_fkey".to_owned()));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn schedules_must_be_complete_when_enabled(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    for (frequency, time, cron, want) in [
        (
            None,
            None,
            None::<&str>,
            "ingestions_enabled_needs_frequency",
        ),
        (
            Some("daily"),
            None,
            None,
            "ingestions_daily_weekly_need_time",
        ),
        (Some("custom"), None, None, "ingestions_custom_needs_cron"),
        (
            Some("daily"),
            Some("2:00"),
            None,
            "ingestions_schedule_time_check",
        ),
        (
            Some("monthly"),
            None,
            None,
            "ingestions_schedule_frequency_check",
        ),
    ] {
        let err = sqlx::query(
            "insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                                     destination_table, schedule_frequency, schedule_time,
                                     schedule_cron, schedule_enabled)
             values ($1, $2, 'x', 'local', 'file:///data/in/', 'csv', 'a.b', $3, $4, $5, true)",
        )
        .bind(Uuid::now_v7())
        .bind(t)
        .bind(frequency)
        .bind(time)
        .bind(cron)
        .execute(&pool)
        .await
        .expect_err("incomplete schedule");
        assert_eq!(constraint(&err), Some(want), "{frequency:?} {time:?}");
    }
    // Disabled, the same definitions are stored: completeness is a rule of enabled schedules.
    for (n, (frequency, cron)) in [("daily", None::<&str>), ("weekly", None), ("custom", None)]
        .into_iter()
        .enumerate()
    {
        sqlx::query(
            "insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                                     destination_table, schedule_frequency, schedule_cron,
                                     schedule_enabled)
             values ($1, $2, $3, 'local', 'file:///data/in/', 'csv', 'a.b', $4, $5, false)",
        )
        .bind(Uuid::now_v7())
        .bind(t)
        .bind(format!("disabled {n}"))
        .bind(frequency)
        .bind(cron)
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("a disabled {frequency} schedule may be incomplete: {e}"));
    }
    let enable = sqlx::query(
        "update ingestions set schedule_enabled = true where name = 'disabled 0' and tenant_id = $1",
    )
    .bind(t)
    .execute(&pool)
    .await
    .expect_err("enabling a daily schedule without a time");
    assert_eq!(
        constraint(&enable),
        Some("ingestions_daily_weekly_need_time")
    );

    ingestion(&pool, t, "events").await;
    let dup = sqlx::query(
        "insert into ingestions (id, tenant_id, name, source_type, source_path, format_type, destination_table)
         values ($1, $2, 'events', 'local', 'file:///data/in/', 'csv', 'a.b')",
    )
    .bind(Uuid::now_v7())
    .bind(t)
    .execute(&pool)
    .await
    .expect_err("same name twice in one tenant");
    assert_eq!(constraint(&dup), Some("ingestions_name_unique_per_tenant"));
    let elsewhere = tenant(&pool, "globex").await;
    ingestion(&pool, elsewhere, "events").await; // same name, other tenant: fine
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn deleting_an_ingestion_removes_its_tick(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = ingestion(&pool, t, "events").await;
    let ticks: i64 =
        sqlx::query_scalar("select count(*) from schedule_ticks where ingestion_id = $1")
            .bind(i)
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(
        ticks, 1,
        "an enabled schedule of an ACTIVE ingestion has its tick row"
    );
    sqlx::query("delete from ingestions where id = $1")
        .bind(i)
        .execute(&pool)
        .await
        .expect("delete");
    let ticks: i64 = sqlx::query_scalar("select count(*) from schedule_ticks")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(ticks, 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn psql_views_show_names_lateness_and_local_times(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = ingestion(&pool, t, "events").await;
    let run = insert_run(
        &pool,
        i,
        t,
        "scheduler",
        Some(at("2025-11-06T02:00:00Z")),
        "QUEUED",
    )
    .await
    .expect("run");
    // Claimed, then finished: the state machine has no QUEUED -> SUCCESS.
    for step in [
        "update runs set status = 'RUNNING', worker_id = 'worker-a',
                started_at = '2025-11-06T02:00:03Z', lease_expires_at = now() + interval '1 minute'
         where id = $1",
        "update runs set status = 'SUCCESS', finished_at = '2025-11-06T02:01:03Z',
                lease_expires_at = null
         where id = $1",
    ] {
        sqlx::query(step)
            .bind(run)
            .execute(&pool)
            .await
            .expect("finish");
    }

    let (name, lateness, duration): (String, f64, f64) = sqlx::query_as(
        "select ingestion, extract(epoch from lateness)::float8, extract(epoch from duration)::float8
         from run_overview where run_id = $1",
    )
    .bind(run)
    .fetch_one(&pool)
    .await
    .expect("overview");
    assert_eq!((name.as_str(), lateness, duration), ("events", 3.0, 60.0));

    // 2025-07-01T01:00Z is 02:00 BST in London.
    sqlx::query(
        "update schedule_ticks set next_fire_at = $2, recompute = false where ingestion_id = $1",
    )
    .bind(i)
    .bind(at("2025-07-01T01:00:00Z"))
    .execute(&pool)
    .await
    .expect("tick");
    let (local, cron): (String, String) = sqlx::query_as(
        "select to_char(next_fire_local, 'YYYY-MM-DD HH24:MI'), cron_expression from upcoming_ticks",
    )
    .fetch_one(&pool)
    .await
    .expect("upcoming");
    assert_eq!(
        (local.as_str(), cron.as_str()),
        ("2025-07-01 02:00", "0 2 * * *")
    );
}

fn constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(d) => d.constraint(),
        _ => None,
    }
}
