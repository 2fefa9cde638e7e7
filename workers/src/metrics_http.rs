//! The worker process's own metrics in Prometheus text, on `AUTOLOADER_WORKER_METRICS_ADDR`
//! (off by default): what this process did (claims, lost leases, rescues, run durations and
//! lateness, ticker batches, ...), recorded through the `metrics` facade. The API's `/metrics`
//! reports the fleet from PostgreSQL; this reports one process, so every series here is the
//! process's own and carries no ingestion label.
//!
//! The recorder keeps every series in memory: counters and gauges as atomics, histograms as
//! fixed buckets (seconds-scale, [`BUCKETS`]). The server answers `GET /metrics` and nothing
//! else; a request is read up to 8 KiB and 5 s, one connection at a time per accept, so a slow
//! or hostile client cannot hold the worker.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Histogram bucket bounds (seconds for durations and lateness, counts for batch sizes).
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Series a process keeps at most; more are dropped (and counted), so a label gone wild cannot
/// grow the worker's memory.
const MAX_SERIES: usize = 10_000;

#[derive(Debug, Default)]
struct Buckets {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// The sum, as f64 bits.
    sum: AtomicU64,
}

impl HistogramFn for Buckets {
    fn record(&self, value: f64) {
        for (bound, n) in BUCKETS.iter().zip(&self.counts) {
            if value <= *bound {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }
}

#[derive(Debug, Clone)]
enum Series {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<AtomicU64>),
    Histogram(Arc<Buckets>),
}

/// A series' name and its labels, sorted.
type SeriesKey = (String, Vec<(String, String)>);

/// The process's metrics.
#[derive(Debug, Default)]
pub struct Registry {
    series: Mutex<BTreeMap<SeriesKey, Series>>,
    help: Mutex<BTreeMap<String, String>>,
    dropped: AtomicU64,
}

impl Registry {
    fn key(key: &Key) -> SeriesKey {
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        (key.name().to_owned(), labels)
    }

    fn entry(&self, key: &Key, make: impl FnOnce() -> Series) -> Option<Series> {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let k = Self::key(key);
        if let Some(s) = series.get(&k) {
            return Some(s.clone());
        }
        if series.len() >= MAX_SERIES {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let s = make();
        series.insert(k, s.clone());
        Some(s)
    }

    fn describe(&self, key: KeyName, description: SharedString) {
        self.help
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.as_str().to_owned(), description.to_string());
    }

    /// Every series in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let series = self
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let help = self.help.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = String::new();
        let mut last = String::new();
        for ((name, labels), s) in &series {
            if *name != last {
                if let Some(h) = help.get(name) {
                    let _ = writeln!(out, "# HELP {name} {}", escape_help(h));
                }
                let kind = match s {
                    Series::Counter(_) => "counter",
                    Series::Gauge(_) => "gauge",
                    Series::Histogram(_) => "histogram",
                };
                let _ = writeln!(out, "# TYPE {name} {kind}");
                last.clone_from(name);
            }
            match s {
                Series::Counter(v) => {
                    let _ = writeln!(
                        out,
                        "{name}{} {}",
                        labels_text(labels, None),
                        v.load(Ordering::Relaxed)
                    );
                }
                Series::Gauge(v) => {
                    let value = f64::from_bits(v.load(Ordering::Relaxed));
                    let _ = writeln!(out, "{name}{} {value}", labels_text(labels, None));
                }
                Series::Histogram(h) => {
                    for (bound, n) in BUCKETS.iter().zip(&h.counts) {
                        let le = bound.to_string();
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            labels_text(labels, Some(&le)),
                            n.load(Ordering::Relaxed)
                        );
                    }
                    let count = h.count.load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        labels_text(labels, Some("+Inf"))
                    );
                    let sum = f64::from_bits(h.sum.load(Ordering::Relaxed));
                    let _ = writeln!(out, "{name}_sum{} {sum}", labels_text(labels, None));
                    let _ = writeln!(out, "{name}_count{} {count}", labels_text(labels, None));
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP autoloader_worker_metrics_dropped_series_total Series not kept: the process already held {MAX_SERIES}.\n\
             # TYPE autoloader_worker_metrics_dropped_series_total counter\n\
             autoloader_worker_metrics_dropped_series_total {}",
            self.dropped.load(Ordering::Relaxed)
        );
        out
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels_text(labels: &[(String, String)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The `metrics` recorder over a [`Registry`].
#[derive(Debug, Clone, Default)]
pub struct PrometheusRecorder(pub Arc<Registry>);

impl Recorder for PrometheusRecorder {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.0.describe(key, description);
    }
    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.0.describe(key, description);
    }
    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.0.describe(key, description);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.0.entry(key, || Series::Counter(Arc::default())) {
            Some(Series::Counter(c)) => Counter::from_arc(c),
            _ => Counter::noop(),
        }
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.0.entry(key, || Series::Gauge(Arc::default())) {
            Some(Series::Gauge(g)) => Gauge::from_arc(g),
            _ => Gauge::noop(),
        }
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.0.entry(key, || Series::Histogram(Arc::default())) {
            Some(Series::Histogram(h)) => Histogram::from_arc(h),
            _ => Histogram::noop(),
        }
    }
}

/// Installs the recorder for this process and serves its metrics on `addr` until `shutdown`
/// fires. Fails when the address cannot be bound (a clear error at start, not a silent worker
/// without metrics).
pub async fn start(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let registry = Arc::new(Registry::default());
    // A second install (another start in the same process, as tests may do) keeps the first.
    let _ = metrics::set_global_recorder(PrometheusRecorder(registry.clone()));
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "worker metrics served at /metrics");
    Ok(tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                () = shutdown.cancelled() => return,
                c = listener.accept() => c,
            };
            let Ok((mut stream, _)) = conn else { continue };
            let registry = registry.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut read = 0;
                let head = tokio::time::timeout(Duration::from_secs(5), async {
                    while read < buf.len() {
                        let n = stream.read(&mut buf[read..]).await.ok()?;
                        if n == 0 {
                            return None;
                        }
                        read += n;
                        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            return Some(());
                        }
                    }
                    None
                })
                .await;
                if !matches!(head, Ok(Some(()))) {
                    return;
                }
                let line = buf[..read].split(|b| *b == b'\n').next().unwrap_or(&[]);
                let line = String::from_utf8_lossy(line);
                let (status, ctype, body) = if line.starts_with("GET /metrics ") {
                    ("200 OK", "text/plain; version=0.0.4", registry.render())
                } else {
                    (
                        "404 Not Found",
                        "text/plain",
                        "not found: GET /metrics\n".to_owned(),
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_in_the_prometheus_text_format() {
        let r = PrometheusRecorder::default();
        metrics::with_local_recorder(&r, || {
            metrics::describe_counter!("autoloader_claims_total", "Runs claimed.");
            metrics::counter!("autoloader_claims_total").increment(3);
            metrics::counter!("autoloader_runs_total", "status" => "FAILED").increment(1);
            metrics::counter!("autoloader_runs_total", "status" => "SUCCESS").increment(2);
            metrics::gauge!("autoloader_slots_busy").set(4.0);
            metrics::histogram!("autoloader_run_duration_seconds", "status" => "a\"b").record(0.3);
            metrics::histogram!("autoloader_run_duration_seconds", "status" => "a\"b").record(7.0);
        });
        let text = r.0.render();
        assert!(text.contains("# HELP autoloader_claims_total Runs claimed.\n# TYPE autoloader_claims_total counter\nautoloader_claims_total 3\n"), "{text}");
        assert!(text.contains("autoloader_runs_total{status=\"FAILED\"} 1\nautoloader_runs_total{status=\"SUCCESS\"} 2\n"), "{text}");
        assert_eq!(
            text.matches("# TYPE autoloader_runs_total counter").count(),
            1
        );
        assert!(text.contains("autoloader_slots_busy 4\n"), "{text}");
        assert!(
            text.contains(
                "autoloader_run_duration_seconds_bucket{status=\"a\\\"b\",le=\"0.25\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "autoloader_run_duration_seconds_bucket{status=\"a\\\"b\",le=\"0.5\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "autoloader_run_duration_seconds_bucket{status=\"a\\\"b\",le=\"+Inf\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("autoloader_run_duration_seconds_sum{status=\"a\\\"b\"} 7.3\n"),
            "{text}"
        );
        assert!(
            text.contains("autoloader_run_duration_seconds_count{status=\"a\\\"b\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn series_past_the_bound_are_dropped_and_counted() {
        let r = PrometheusRecorder::default();
        metrics::with_local_recorder(&r, || {
            for i in 0..MAX_SERIES + 5 {
                metrics::counter!("autoloader_x_total", "i" => i.to_string()).increment(1);
            }
        });
        let text = r.0.render();
        assert_eq!(text.matches("autoloader_x_total{").count(), MAX_SERIES);
        assert!(
            text.contains("autoloader_worker_metrics_dropped_series_total 5\n"),
            "{text}"
        );
    }
}
