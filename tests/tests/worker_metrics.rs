//! A worker's own metrics, scraped from the shipped worker binary while it works: Prometheus
//! text on `AUTOLOADER_WORKER_METRICS_ADDR`, counting what this process did.

use std::time::Duration;

use autoloader_tests::loader::Loader;
use autoloader_tests::wait_for;
use serde_json::json;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn scrape(url: &str) -> (u16, String) {
    let res = reqwest::get(url).await.expect("scrape");
    (res.status().as_u16(), res.text().await.expect("body"))
}

/// The value of the series `line_start` (name and labels) in `text`.
fn value(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' ')?.parse().ok())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_worker_serves_its_own_metrics_while_it_works(pool: PgPool) {
    let w = Loader::new(pool, "worker-metrics").await;
    let ingestion = w
        .ingestion("json", "raw.events", json!({"schedule_enabled": false}))
        .await;
    w.write("a.json", b"{\"id\": 1}\n{\"id\": 2}\n");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("http://{addr}/metrics");
    let _worker = w.worker(
        "scraped",
        &[("AUTOLOADER_WORKER_METRICS_ADDR", addr.as_str())],
    );
    wait_for("the metrics endpoint", Duration::from_secs(30), || async {
        reqwest::get(&url).await.ok().map(|_| ())
    })
    .await;

    let run = w.run_by_hand(ingestion).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let text = wait_for(
        "the run's outcome in the metrics",
        Duration::from_secs(30),
        || async {
            let (status, text) = scrape(&url).await;
            assert_eq!(status, 200);
            value(
                &text,
                "autoloader_scheduled_executions_total{status=\"success\"}",
            )
            .is_some_and(|n| n >= 1.0)
            .then_some(text)
        },
    )
    .await;
    assert_eq!(
        value(&text, "autoloader_runs_claimed_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "autoloader_files_loaded_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "autoloader_rows_loaded_total"),
        Some(2.0),
        "{text}"
    );
    assert!(
        value(&text, "autoloader_bytes_written_total").is_some_and(|b| b > 0.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "autoloader_run_duration_seconds_count{status=\"success\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE autoloader_run_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        value(
            &text,
            "autoloader_run_duration_seconds_bucket{status=\"success\",le=\"+Inf\"}"
        ) == Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains("ingestion"),
        "no per-ingestion label: {text}"
    );

    let (status, _) = scrape(&format!("http://{addr}/other")).await;
    assert_eq!(status, 404);

    // A second worker asked for the same address cannot serve it: it says so and stops.
    let mut clash = w.worker(
        "clash",
        &[("AUTOLOADER_WORKER_METRICS_ADDR", addr.as_str())],
    );
    let code = clash.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(code, Some(1), "{}", clash.log());
    assert!(
        clash.log().contains("AUTOLOADER_WORKER_METRICS_ADDR"),
        "{}",
        clash.log()
    );
}
