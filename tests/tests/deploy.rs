//! The shipped monitoring files: `deploy/prometheus/alerts.yml` and
//! `deploy/grafana/autoloader.json` parse, hold what an on-call engineer needs, and name only
//! metrics Autoloader exports (a renamed metric breaks this test, not a silent dashboard). The
//! systemd units (`deploy/systemd/`) and the environment template (`deploy/autoloader.env.example`)
//! name only settings and flags the binaries read, the template names every one of them, the
//! units keep their hardening, and `systemd-analyze verify` accepts them where it is installed.

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

// ---- The systemd units and the environment template (deploy/systemd/, deploy/autoloader.env.example)

/// The prefixes of Autoloader's own settings, and the one setting without a prefix.
fn is_setting(name: &str) -> bool {
    name.starts_with("AUTOLOADER_") || name.starts_with("SCHEDULER_") || name == "DATABASE_URL"
}

/// Every `.rs` file's text under `dir`, recursively.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("source");
                out.push((p, text));
            }
        }
    }
    out
}

/// The quoted names that follow `marker` in `text` (`env = "NAME"`, `env::var("NAME"`).
fn quoted_after(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = &text[at + marker.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

/// The settings the binaries read: every `env = "..."` of their clap flags, and every variable
/// they read directly with `std::env::var`, in the sources of the core, the API and the worker
/// (unit tests' own variables left out: they are not Autoloader's prefixes).
fn settings_in_code() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in ["src", "api/src", "workers/src"] {
        for (_, text) in sources(&repo().join(dir)) {
            for marker in ["env = \"", "env::var(\"", "env::var_os(\""] {
                out.extend(
                    quoted_after(&text, marker)
                        .into_iter()
                        .filter(|n| is_setting(n)),
                );
            }
        }
    }
    assert!(out.len() > 30, "too few settings found: {out:?}");
    out
}

/// The settings an environment file names, set (`NAME=...`) or commented out (`#NAME=...`).
fn settings_in_env_file(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches('#').trim_start();
            let (name, _) = l.split_once('=')?;
            (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .then(|| name.to_owned())
        })
        .filter(|n| is_setting(n))
        .collect()
}

/// The `$NAME`, `${NAME}` and `NAME=` settings a unit file mentions.
fn settings_in_unit(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices(|c: char| c.is_ascii_uppercase()) {
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
            continue;
        }
        let end = text[i..]
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .map_or(text.len(), |e| i + e);
        let name = &text[i..end];
        if is_setting(name) {
            out.insert(name.to_owned());
        }
    }
    out
}

fn template() -> String {
    std::fs::read_to_string(repo().join("deploy/autoloader.env.example"))
        .expect("deploy/autoloader.env.example")
}

fn units() -> Vec<(String, String)> {
    ["autoloader-api.service", "autoloader-worker@.service"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(repo().join("deploy/systemd").join(name))
                .unwrap_or_else(|e| panic!("deploy/systemd/{name}: {e}"));
            ((*name).to_owned(), text)
        })
        .collect()
}

/// A unit's `[Service]` value of `key` (the last one set, as systemd reads it).
fn directive<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn the_environment_template_lists_every_setting_and_only_those() {
    let code = settings_in_code();
    let listed = settings_in_env_file(&template());
    let unknown: Vec<&String> = listed.difference(&code).collect();
    assert!(
        unknown.is_empty(),
        "autoloader.env.example names settings the binaries do not read: {unknown:?}"
    );
    let missing: Vec<&String> = code.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "autoloader.env.example lacks these settings: {missing:?}"
    );
    // Each setting is introduced by a comment saying what it means.
    let text = template();
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let named = settings_in_env_file(l);
        if named.is_empty() || i == 0 {
            continue;
        }
        let before = lines[i - 1].trim_start();
        assert!(
            before.starts_with('#'),
            "{named:?} has no comment above it in autoloader.env.example"
        );
    }
    // Secrets are never set in the template.
    for secret in [
        "AUTOLOADER_ADMIN_TOKEN",
        "AUTOLOADER_METRICS_TOKEN",
        "AUTOLOADER_SECRET_KEY",
        "AUTOLOADER_SECRET_KEY_PREVIOUS",
    ] {
        assert!(
            template()
                .lines()
                .all(|l| !l.starts_with(&format!("{secret}="))),
            "{secret} is set in the template"
        );
    }
}

#[test]
fn the_units_name_only_settings_and_flags_that_exist_and_are_hardened() {
    let code = settings_in_code();
    for (name, text) in units() {
        let unknown: Vec<String> = settings_in_unit(&text)
            .into_iter()
            .filter(|n| !code.contains(n))
            .collect();
        assert!(
            unknown.is_empty(),
            "{name} names settings the binaries do not read: {unknown:?}"
        );
        for (key, want) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("CapabilityBoundingSet", ""),
            ("SystemCallFilter", "~@privileged @resources"),
            ("MemoryDenyWriteExecute", "yes"),
            ("Restart", "on-failure"),
            ("KillSignal", "SIGTERM"),
            ("User", "autoloader"),
            ("ReadWritePaths", "/var/lib/autoloader"),
            (
                "EnvironmentFile",
                if name.contains('@') {
                    "-/etc/autoloader/worker-%i.env"
                } else {
                    "/etc/autoloader/autoloader.env"
                },
            ),
        ] {
            assert_eq!(directive(&text, key), Some(want), "{name}: {key}");
        }
        assert!(
            text.contains("SystemCallFilter=@system-service\n"),
            "{name}"
        );
        assert!(
            text.contains("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n"),
            "{name}"
        );
        // Every flag ExecStart passes is one the binary takes.
        let exec = directive(&text, "ExecStart").expect("ExecStart");
        let mut words = exec.split_whitespace();
        let bin = words.next().expect("a binary");
        let built = match bin {
            "/usr/local/bin/autoloader-api" => autoloader_tests::api_bin(),
            "/usr/local/bin/autoloader-worker" => autoloader_tests::worker_bin(),
            other => panic!("{name} runs {other}"),
        };
        let help = Command::new(&built)
            .arg("--help")
            .env_clear()
            .output()
            .expect("--help");
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in words.filter(|w| w.starts_with("--")) {
            assert!(
                help.contains(&format!("{flag} ")),
                "{name}: {} has no {flag}",
                built.display()
            );
        }
    }
    // A stopping worker is given more time than it takes to drain.
    let shutdown: u64 = template()
        .lines()
        .find_map(|l| l.strip_prefix("SCHEDULER_SHUTDOWN_TIMEOUT="))
        .expect("the template sets SCHEDULER_SHUTDOWN_TIMEOUT")
        .parse()
        .expect("seconds");
    let worker = &units()[1].1;
    let stop: u64 = directive(worker, "TimeoutStopSec")
        .expect("TimeoutStopSec")
        .parse()
        .expect("seconds");
    assert!(
        stop > shutdown,
        "TimeoutStopSec={stop} must exceed SCHEDULER_SHUTDOWN_TIMEOUT={shutdown}"
    );
}

#[test]
fn systemd_analyze_verifies_the_units() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "\n********\ndeploy.rs: systemd-analyze is not installed: the units are NOT verified by systemd \
             (their settings and hardening are still checked)\n********\n"
        );
        return;
    }
    // The units as installed, with the binaries this build made standing for /usr/local/bin.
    let dir = autoloader_tests::temp_dir("units");
    for (name, text) in units() {
        let text = text
            .replace(
                "/usr/local/bin/autoloader-api",
                autoloader_tests::api_bin().to_str().expect("path"),
            )
            .replace(
                "/usr/local/bin/autoloader-worker",
                autoloader_tests::worker_bin().to_str().expect("path"),
            );
        std::fs::write(dir.join(&name), text).expect("write unit");
    }
    for unit in ["autoloader-api.service", "autoloader-worker@9101.service"] {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(dir.join(unit))
            .output()
            .expect("systemd-analyze verify");
        // systemd-analyze exits 0 on a line it ignores; any word about our units is a fault.
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let about: Vec<&str> = said.lines().filter(|l| l.contains("autoloader")).collect();
        assert!(
            out.status.success() && about.is_empty(),
            "systemd-analyze verify {unit}:\n{said}"
        );
        // The hardening, as systemd scores it (0 is locked down, 10 is exposed).
        if let Ok(out) = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(dir.join(unit.replace("@9101", "@")))
            .output()
        {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(level) = text
                .lines()
                .find_map(|l| l.split("Overall exposure level for ").nth(1))
                .and_then(|l| l.split(": ").nth(1))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|l| l.parse::<f64>().ok())
            {
                assert!(
                    level <= 2.0,
                    "{unit}: systemd's exposure level {level}:\n{text}"
                );
            } else {
                eprintln!(
                    "deploy.rs: systemd-analyze security --offline is not available here: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
