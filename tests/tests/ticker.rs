//! The ticker against real PostgreSQL: each due tick becomes exactly one run, late ticks follow
//! the misfire rules, overlapping ticks are SKIPPED, and schedule edits take effect at once.

use std::time::Duration;

use autoloader_tests::{scheduled_ingestion, tenant};
use autoloader_worker::ticker::{tick_once, TickerConfig};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

fn config(grace: Duration, coalesce: bool) -> TickerConfig {
    TickerConfig {
        batch_size: 500,
        misfire_grace: grace,
        coalesce,
        safety_poll: Duration::from_secs(30),
    }
}

/// Makes the tick of `ingestion` due at `sql_instant` (an SQL expression), as if every ticker
/// had been away since then.
async fn make_due(pool: &PgPool, ingestion: Uuid, sql_instant: &str) -> DateTime<Utc> {
    sqlx::query_scalar(&format!(
        "update schedule_ticks set next_fire_at = {sql_instant}, recompute = false
         where ingestion_id = $1 returning next_fire_at"
    ))
    .bind(ingestion)
    .fetch_one(pool)
    .await
    .expect("make tick due")
}

#[derive(Debug, sqlx::FromRow)]
struct Run {
    id: Uuid,
    status: String,
    scheduled_for: Option<DateTime<Utc>>,
    data_interval_start: Option<DateTime<Utc>>,
    reason: Option<String>,
}

async fn runs(pool: &PgPool, ingestion: Uuid) -> Vec<Run> {
    sqlx::query_as(
        "select id, status, scheduled_for, data_interval_start, reason from runs
         where ingestion_id = $1 order by scheduled_for, id",
    )
    .bind(ingestion)
    .fetch_all(pool)
    .await
    .expect("runs")
}

async fn next_fire(pool: &PgPool, ingestion: Uuid) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    sqlx::query_as(
        "select s.next_fire_at, i.next_run_time from schedule_ticks s
         join ingestions i on i.id = s.ingestion_id where s.ingestion_id = $1",
    )
    .bind(ingestion)
    .fetch_one(pool)
    .await
    .expect("tick row")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn enabling_a_schedule_computes_its_next_tick_without_firing(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 2 * * *", json!({})).await;

    let report = tick_once(&pool, &config(Duration::from_secs(300), true))
        .await
        .expect("tick");
    assert_eq!((report.recomputed, report.queued), (1, 0));
    assert!(
        runs(&pool, i).await.is_empty(),
        "creating a schedule never fires a run"
    );
    let (next, shown) = next_fire(&pool, i).await;
    assert_eq!(
        Some(next),
        shown,
        "ingestions.next_run_time mirrors the tick row"
    );
    assert_eq!(next.format("%H:%M:%S").to_string(), "02:00:00");
    let until = next - Utc::now();
    assert!(
        until > chrono::Duration::zero() && until <= chrono::Duration::days(1),
        "{next}"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_due_tick_becomes_one_queued_run_and_the_tick_advances(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 * * * *", json!({})).await;
    let due = make_due(&pool, i, "date_trunc('hour', now()) - interval '1 hour'").await;
    let grace = Duration::from_secs(3 * 3600);

    let report = tick_once(&pool, &config(grace, true)).await.expect("tick");
    // Two ticks are due (the one we set and the current hour's); coalescing makes one run.
    assert_eq!(
        (report.queued, report.skipped, report.missed_rows),
        (1, 0, 0)
    );
    let all = runs(&pool, i).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, "QUEUED");
    assert_eq!(all[0].scheduled_for, Some(due + chrono::Duration::hours(1)));
    assert_eq!(
        all[0].data_interval_start, None,
        "first tick of the schedule"
    );
    assert!(all[0]
        .reason
        .as_deref()
        .unwrap_or("")
        .starts_with("coalesced 2 late ticks"));

    let (next, shown) = next_fire(&pool, i).await;
    assert_eq!(
        next,
        due + chrono::Duration::hours(2),
        "next tick after now"
    );
    assert_eq!(shown, Some(next));
    let last: Option<DateTime<Utc>> =
        sqlx::query_scalar("select last_scheduled_run from ingestions where id = $1")
            .bind(i)
            .fetch_one(&pool)
            .await
            .expect("ingestion");
    assert_eq!(last, all[0].scheduled_for);

    // Nothing is due any more: ticking again changes nothing.
    let again = tick_once(&pool, &config(grace, true)).await.expect("tick");
    assert_eq!(again.rows, 0);
    assert_eq!(runs(&pool, i).await.len(), 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn concurrent_tickers_materialise_every_tick_exactly_once(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    for n in 0..200 {
        scheduled_ingestion(&pool, t, &format!("events-{n}"), "* * * * *", json!({})).await;
    }
    let tick: DateTime<Utc> = sqlx::query_scalar("select date_trunc('minute', now())")
        .fetch_one(&pool)
        .await
        .expect("now");
    sqlx::query("update schedule_ticks set next_fire_at = $1, recompute = false")
        .bind(tick)
        .execute(&pool)
        .await
        .expect("all due");

    // Four tickers with small batches race over the same due rows.
    let small = TickerConfig {
        batch_size: 7,
        ..config(Duration::from_secs(300), true)
    };
    let tickers = (0..4).map(|_| {
        let pool = pool.clone();
        let cfg = small.clone();
        tokio::spawn(async move {
            let mut queued = 0;
            loop {
                let r = tick_once(&pool, &cfg).await.expect("tick");
                queued += r.queued;
                if r.rows == 0 {
                    return queued;
                }
            }
        })
    });
    let mut queued = 0;
    for t in tickers {
        queued += t.await.expect("ticker task");
    }
    assert_eq!(queued, 200, "the tickers together queued each tick once");
    let (runs, distinct, still_due): (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from runs where status = 'QUEUED'),
                (select count(distinct ingestion_id) from runs where scheduled_for = $1),
                (select count(*) from schedule_ticks where next_fire_at <= $1)",
    )
    .bind(tick)
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!((runs, distinct, still_due), (200, 200, 0));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_tick_while_a_run_is_active_is_recorded_as_skipped(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 * * * *", json!({})).await;
    let active = autoloader_tests::manual_run(&pool, i).await;
    let due = make_due(&pool, i, "date_trunc('hour', now())").await;

    let report = tick_once(&pool, &config(Duration::from_secs(3600), true))
        .await
        .expect("tick");
    assert_eq!((report.queued, report.skipped), (0, 1));
    let skipped = runs(&pool, i)
        .await
        .into_iter()
        .find(|r| r.scheduled_for == Some(due))
        .expect("tick row");
    assert_eq!(skipped.status, "SKIPPED");
    assert_eq!(
        skipped.reason.as_deref(),
        Some(format!("previous run still active (run {active}, QUEUED)").as_str())
    );
}

/// Hourly ticks 10 hours back, grace 5 hours: ticks 10..5 hours old are MISSED (they are all
/// later than the grace, since the current hour has begun), ticks 4..0 hours old may still run.
async fn ten_hours_behind(pool: &PgPool, coalesce: bool) -> (Uuid, DateTime<Utc>, Vec<Run>) {
    let t = tenant(pool, "acme").await;
    let i = scheduled_ingestion(pool, t, "events", "0 * * * *", json!({})).await;
    let first = make_due(pool, i, "date_trunc('hour', now()) - interval '10 hours'").await;
    tick_once(pool, &config(Duration::from_secs(5 * 3600), coalesce))
        .await
        .expect("tick");
    (i, first, runs(pool, i).await)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn late_ticks_beyond_the_grace_are_missed_and_the_rest_coalesce(pool: PgPool) {
    let (i, first, all) = ten_hours_behind(&pool, true).await;
    let h = chrono::Duration::hours;
    assert_eq!(all.len(), 2, "{all:#?}");
    let (missed, run) = (&all[0], &all[1]);
    assert_eq!(missed.status, "MISSED");
    assert_eq!(missed.scheduled_for, Some(first + h(5)));
    let reason = missed.reason.as_deref().unwrap_or("");
    assert!(
        reason.starts_with(&format!(
            "6 tick(s) from {} to {}",
            first.to_rfc3339(),
            (first + h(5)).to_rfc3339()
        )),
        "{reason}"
    );
    assert_eq!(run.status, "QUEUED");
    assert_eq!(run.scheduled_for, Some(first + h(10)));
    assert_eq!(
        run.data_interval_start,
        Some(first + h(5)),
        "the run covers every tick since the last one"
    );
    assert!(run
        .reason
        .as_deref()
        .unwrap_or("")
        .starts_with("coalesced 5 late ticks"));
    assert_eq!(next_fire(&pool, i).await.0, first + h(11));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn without_coalescing_each_late_tick_gets_its_own_row(pool: PgPool) {
    let (_, first, all) = ten_hours_behind(&pool, false).await;
    let h = chrono::Duration::hours;
    let statuses: Vec<(&str, Option<DateTime<Utc>>)> = all
        .iter()
        .map(|r| (r.status.as_str(), r.scheduled_for))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("MISSED", Some(first + h(5))),
            ("QUEUED", Some(first + h(6))),
            ("SKIPPED", Some(first + h(7))),
            ("SKIPPED", Some(first + h(8))),
            ("SKIPPED", Some(first + h(9))),
            ("SKIPPED", Some(first + h(10))),
        ]
    );
    let queued = &all[1];
    assert_eq!(queued.data_interval_start, Some(first + h(5)));
    assert!(
        all[2]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains(&queued.id.to_string()),
        "a skipped tick names the run in its way"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn editing_a_schedule_recomputes_its_tick_and_disabling_removes_it(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 2 * * *", json!({})).await;
    tick_once(&pool, &config(Duration::from_secs(300), true))
        .await
        .expect("tick");
    assert_eq!(
        next_fire(&pool, i).await.0.format("%H:%M").to_string(),
        "02:00"
    );

    // A person at psql edits the schedule: the next tick follows the new definition at once,
    // and the edit fires nothing.
    sqlx::query("update ingestions set schedule_cron = '30 14 * * *', schedule_timezone = 'Asia/Kathmandu' where id = $1")
        .bind(i)
        .execute(&pool)
        .await
        .expect("edit");
    let report = tick_once(&pool, &config(Duration::from_secs(300), true))
        .await
        .expect("tick");
    assert_eq!((report.recomputed, report.queued), (1, 0));
    // 14:30 in Kathmandu (+05:45) is 08:45 UTC.
    assert_eq!(
        next_fire(&pool, i).await.0.format("%H:%M").to_string(),
        "08:45"
    );

    sqlx::query("update ingestions set schedule_enabled = false where id = $1")
        .bind(i)
        .execute(&pool)
        .await
        .expect("disable");
    let (ticks, next_run): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "select (select count(*) from schedule_ticks), (select next_run_time from ingestions where id = $1)",
    )
    .bind(i)
    .fetch_one(&pool)
    .await
    .expect("state");
    assert_eq!((ticks, next_run), (0, None));

    // Pausing the ingestion does the same; resuming starts afresh.
    sqlx::query("update ingestions set schedule_enabled = true, status = 'PAUSED' where id = $1")
        .bind(i)
        .execute(&pool)
        .await
        .expect("pause");
    let ticks: i64 = sqlx::query_scalar("select count(*) from schedule_ticks")
        .fetch_one(&pool)
        .await
        .expect("n");
    assert_eq!(ticks, 0, "a paused ingestion has no tick");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_stored_schedule_that_no_longer_parses_is_switched_off_visibly(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let i = scheduled_ingestion(&pool, t, "events", "0 2 * * *", json!({})).await;
    sqlx::query("update ingestions set schedule_timezone = 'Mars/Olympus' where id = $1")
        .bind(i)
        .execute(&pool)
        .await
        .expect("bad edit");
    let report = tick_once(&pool, &config(Duration::from_secs(300), true))
        .await
        .expect("tick");
    assert_eq!(report.invalid, 1);
    let all = runs(&pool, i).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, "MISSED");
    let reason = all[0].reason.as_deref().unwrap_or("");
    assert!(
        reason.contains("unknown timezone 'Mars/Olympus'"),
        "{reason}"
    );
    let enabled: bool = sqlx::query_scalar("select schedule_enabled from ingestions where id = $1")
        .bind(i)
        .fetch_one(&pool)
        .await
        .expect("ingestion");
    assert!(!enabled);
}
