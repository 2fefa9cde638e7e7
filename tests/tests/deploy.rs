//! The shipped monitoring files: `deploy/prometheus/alerts.yml` and
//! `deploy/grafana/autoloader.json` parse, hold what an on-call engineer needs, and name only
//! metrics Autoloader exports (a renamed metric breaks this test, not a silent dashboard).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use autoloader_tests::s3;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// Every `autoloader_*` metric name the sources export: the API's `/metrics` text and the
/// worker's `metrics::` calls.
fn exported() -> BTreeSet<String> {
    let mut text = std::fs::read_to_string(repo().join("api/src/metrics.rs")).expect("api");
    let mut todo = vec![repo().join("workers/src")];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(dir).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                text.push_str(&std::fs::read_to_string(&p).expect("source"));
            }
        }
    }
    names(&text)
}

/// The `autoloader_*` names in `text`, less a histogram's `_bucket`, `_sum` and `_count`.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("autoloader_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end] == b'_'
                || bytes[end].is_ascii_digit())
        {
            end += 1;
        }
        let name = &text[start..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(base.to_owned());
        i = end;
    }
    out
}

fn check_known(what: &str, used: &BTreeSet<String>) {
    let known = exported();
    let unknown: Vec<&String> = used
        .iter()
        .filter(|n| !known.contains(*n) && !n.starts_with("autoloader_worker_metrics_"))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what} names metrics nobody exports: {unknown:?}"
    );
    assert!(!used.is_empty(), "{what} names no metric");
}

#[test]
fn the_alert_rules_parse_and_name_only_exported_metrics() {
    let path = repo().join("deploy/prometheus/alerts.yml");
    assert!(path.is_file(), "{} is missing", path.display());
    if let Ok(out) = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&path)
        .output()
    {
        assert!(
            out.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        eprintln!("deploy.rs: promtool is not installed; the rules are checked by parsing them");
    }
    let Some(python) = s3::python() else {
        panic!("the test venv (scripts/pyenv.sh) is needed to parse YAML");
    };
    let out = Command::new(python)
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))")
        .arg(&path)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let rules = doc["groups"][0]["rules"].as_array().expect("rules");
    let alerts: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for want in [
        "AutoloaderRunsStuckPastTheirLease",
        "AutoloaderFailureRatioHigh",
        "AutoloaderLatenessHigh",
        "AutoloaderNoTickerAlive",
        "AutoloaderQueueDepthGrowing",
    ] {
        assert!(alerts.contains(want), "{want} missing: {alerts:?}");
    }
    let mut used = BTreeSet::new();
    for r in rules {
        let expr = r["expr"].as_str().expect("expr");
        assert!(r["for"].is_string(), "{r}");
        assert!(r["labels"]["severity"].is_string(), "{r}");
        assert!(r["annotations"]["summary"].is_string(), "{r}");
        assert_eq!(
            expr.matches('(').count(),
            expr.matches(')').count(),
            "unbalanced: {expr}"
        );
        used.extend(names(expr));
    }
    check_known("alerts.yml", &used);
}

#[test]
fn the_dashboard_parses_and_names_only_exported_metrics() {
    let text =
        std::fs::read_to_string(repo().join("deploy/grafana/autoloader.json")).expect("dashboard");
    let doc: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(doc["uid"], "autoloader");
    let panels = doc["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{}", panels.len());
    let mut used = BTreeSet::new();
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{p}");
        for t in targets {
            used.extend(names(t["expr"].as_str().expect("expr")));
        }
    }
    for want in [
        "autoloader_queue_depth",
        "autoloader_run_lateness_seconds",
        "autoloader_run_duration_seconds",
        "autoloader_runs_claimed_total",
        "autoloader_heartbeats_total",
        "autoloader_leases_lost_total",
        "autoloader_runs_rescued_total",
        "autoloader_database_errors_total",
        "autoloader_runs_materialised_total",
        "autoloader_ticker_batch_size",
        "autoloader_ticker_batch_seconds",
    ] {
        assert!(used.contains(want), "the dashboard shows no {want}");
    }
    check_known("autoloader.json", &used);
}
