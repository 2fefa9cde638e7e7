//! Markdown tables from the raw results (`bench/results/raw/*.json`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

fn f(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "–".to_owned(),
    }
}

fn load(dir: &Path) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p)?)?;
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, v));
        }
    }
    Ok(out)
}

/// The wait-event sample as "state / event avg" pairs, busiest first.
fn waits(v: &Value, top: usize) -> String {
    let Some(map) = v["avg_backends"].as_object() else {
        return "–".to_owned();
    };
    let mut pairs: Vec<(&String, f64)> = map
        .iter()
        .map(|(k, v)| (k, v.as_f64().unwrap_or(0.0)))
        .collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
    pairs
        .iter()
        .take(top)
        .map(|(k, n)| format!("{k} {n:.1}"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn tables(dir: &Path) -> Result<String> {
    let results = load(dir)?;
    let mut s = String::new();
    if let Some((_, m)) = results.iter().find(|(n, _)| n == "machine") {
        writeln!(
            s,
            "Machine: {} cores ({}), {} GiB, PostgreSQL {}; load average at start {}.\n",
            m["nproc"],
            m["cpu_model"].as_str().unwrap_or("?"),
            m["mem_gib"],
            m["postgres"].as_str().unwrap_or("?"),
            m["loadavg_at_start"].as_str().unwrap_or("?")
        )?;
    }

    // Burst.
    let mut burst: Vec<&Value> = results
        .iter()
        .filter(|(_, v)| v["benchmark"] == "burst")
        .map(|(_, v)| v)
        .collect();
    burst.sort_by_key(|v| {
        (
            v["params"]["schedules"].as_i64(),
            v["params"]["processes"].as_i64(),
            v["params"]["db_max_connections"].as_i64(),
        )
    });
    if !burst.is_empty() {
        writeln!(
            s,
            "### Burst: N schedules due at the same instant T (times from T, in seconds)\n"
        )?;
        writeln!(s, "| N | processes × slots | pool | all materialised | all started | all finished | lateness p50 | p99 | max | runs/s | goal (p99) | met | commits/run | cores busy |")?;
        writeln!(
            s,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"
        )?;
        for v in &burst {
            let n = v["params"]["schedules"].as_i64().unwrap_or(0);
            let p99 = v["lateness_p99_s"].as_f64().unwrap_or(f64::MAX);
            let goal = match n {
                10_000 => Some(1.0),
                100_000 => Some(5.0),
                _ => None,
            };
            let (goal_s, met) = match goal {
                Some(g) => (
                    format!("≤ {g} s"),
                    if p99 <= g {
                        "yes".to_owned()
                    } else {
                        format!("no ({:.1}×)", p99 / g)
                    },
                ),
                None => ("–".to_owned(), "–".to_owned()),
            };
            writeln!(
                s,
                "| {n} | {} × {} | {} | {} | {} | {} | {} | {} | {} | {} | {goal_s} | {met} | {} | {} |",
                v["params"]["processes"], v["params"]["scheduler_max_workers"], v["params"]["db_max_connections"],
                f(&v["all_materialised_s"], 2), f(&v["all_started_s"], 2), f(&v["all_finished_s"], 2),
                f(&v["lateness_p50_s"], 2), f(&v["lateness_p99_s"], 2), f(&v["lateness_max_s"], 2),
                f(&v["runs_per_s"], 0), f(&v["postgres"]["commits_per_job"], 2), f(&v["cpu"]["cores_busy"], 2),
            )?;
        }
        writeln!(s, "\nWhere a burst's lateness comes from (p50 / p99, seconds): materialising = queued_at − scheduled_for; queue wait = started_at − queued_at.\n")?;
        writeln!(s, "| N | processes | materialise p50 | p99 | queue wait p50 | p99 | runs per claim / per outcome write | worker CPU s | postgres CPU s | tuples upd/run | WAL bytes/run | avg backends by state (sampled) |")?;
        writeln!(
            s,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        )?;
        for v in &burst {
            writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} |",
                v["params"]["schedules"],
                v["params"]["processes"],
                f(&v["materialise_lateness_p50_s"], 2),
                f(&v["materialise_lateness_p99_s"], 2),
                f(&v["queue_wait_p50_s"], 2),
                f(&v["queue_wait_p99_s"], 2),
                f(&v["batches"]["runs_per_claim_avg"], 1),
                f(&v["batches"]["runs_per_outcome_write_avg"], 1),
                f(&v["cpu"]["worker_processes_s"], 1),
                f(&v["cpu"]["postgres_backends_s"], 1),
                f(&v["postgres"]["tup_updated_per_job"], 2),
                f(&v["postgres"]["wal_bytes_per_job"], 0),
                waits(&v["wait_events"], 4),
            )?;
        }
        writeln!(s)?;
    }

    // Claim.
    let mut claim: Vec<&Value> = results
        .iter()
        .filter(|(_, v)| v["benchmark"] == "claim")
        .map(|(_, v)| v)
        .collect();
    claim.sort_by_key(|v| {
        (
            v["params"]["runs"].as_i64(),
            v["params"]["processes"].as_i64(),
            v["params"]["db_max_connections"].as_i64(),
        )
    });
    if !claim.is_empty() {
        // apalis and pgbench run once per size and commit setting; rows are compared with them.
        let same = |a: &Value, b: &Value| {
            a["params"]["runs"] == b["params"]["runs"]
                && a["params"]["synchronous_commit"] == b["params"]["synchronous_commit"]
        };
        let apalis_err = claim
            .iter()
            .find_map(|v| v["apalis_error"].as_str().map(str::to_owned));
        writeln!(
            s,
            "### Claim throughput: queued no-op runs drained at total concurrency C\n"
        )?;
        writeln!(s, "| runs | synchronous_commit | processes × slots | pool | Autoloader runs/s (median; each run) | apalis-postgres jobs/s | pgbench -N tps | vs apalis | goal ≥ 3× | vs pgbench | commits/run | runs per claim / per outcome write | CPU ms/run worker + postgres |")?;
        writeln!(
            s,
            "|---:|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
        )?;
        for v in &claim {
            let apalis = claim
                .iter()
                .filter(|w| same(v, w))
                .find_map(|w| w["apalis_jobs_per_s"].as_f64());
            let pgbench = claim
                .iter()
                .filter(|w| same(v, w))
                .find_map(|w| w["pgbench_tps"].as_f64());
            let ours = v["autoloader_runs_per_s"].as_f64().unwrap_or(0.0);
            let each: Vec<String> = v["autoloader"]
                .as_array()
                .map(|a| a.iter().map(|r| f(&r["runs_per_s"], 0)).collect())
                .unwrap_or_default();
            let c = v["params"]["total_concurrency"].as_u64().unwrap_or(0);
            let p = v["params"]["processes"].as_u64().unwrap_or(1).max(1);
            let first = &v["autoloader"][0];
            let vs_apalis = apalis.map(|a| ours / a);
            writeln!(
                s,
                "| {} | {} | {p} × {} | {} | {ours:.0} ({}) | {} | {} | {} | {} | {} | {} | {} / {} | {} + {} |",
                v["params"]["runs"], v["params"]["synchronous_commit"].as_str().unwrap_or("on"), c / p, v["params"]["db_max_connections"], each.join(", "),
                apalis.map_or_else(|| "failed".to_owned(), |a| format!("{a:.0}")),
                pgbench.map_or_else(|| "–".to_owned(), |t| format!("{t:.0}")),
                vs_apalis.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×")),
                vs_apalis.map_or("–", |r| if r >= 3.0 { "met" } else { "missed" }),
                pgbench.map_or_else(|| "–".to_owned(), |t| format!("{:.2}×", ours / t)),
                f(&first["postgres"]["commits_per_job"], 2),
                f(&first["batches"]["runs_per_claim_avg"], 1), f(&first["batches"]["runs_per_outcome_write_avg"], 1),
                f(&first["cpu"]["cpu_ms_per_run_workers"], 2), f(&first["cpu"]["cpu_ms_per_run_postgres"], 2),
            )?;
        }
        if let Some(e) = apalis_err {
            writeln!(s, "\napalis-postgres failed: `{e}`")?;
        }
        for v in &claim {
            let Some(a) = v["apalis"].as_array().filter(|a| !a.is_empty()) else {
                continue;
            };
            let each: Vec<String> = a.iter().map(|r| f(&r["jobs_per_s"], 0)).collect();
            writeln!(
                s,
                "\napalis-postgres 1.0 (synchronous_commit {}): each drain {} jobs/s (concurrency {}, batch {}, pool {}); commits/job {}; jobs per fetch {}, per ack {}.",
                v["params"]["synchronous_commit"].as_str().unwrap_or("on"),
                each.join(", "), a[0]["concurrency"], a[0]["batch_size"], a[0]["pool_size"],
                f(&a[0]["postgres"]["commits_per_job"], 2),
                f(&a[0]["batches"]["jobs_per_fetch_avg"], 1), f(&a[0]["batches"]["jobs_per_ack_avg"], 1)
            )?;
        }
        writeln!(s, "\nDatabase side during the drains (average backends in each state, sampled every 100 ms):\n")?;
        for v in &claim {
            writeln!(
                s,
                "- Autoloader, {} processes, pool {}, synchronous_commit {}: {}",
                v["params"]["processes"],
                v["params"]["db_max_connections"],
                v["params"]["synchronous_commit"].as_str().unwrap_or("on"),
                waits(&v["autoloader"][0]["wait_events"], 5)
            )?;
            if let Some(a) = v["apalis"].as_array().and_then(|a| a.first()) {
                writeln!(
                    s,
                    "- apalis-postgres, synchronous_commit {}: {}",
                    v["params"]["synchronous_commit"].as_str().unwrap_or("on"),
                    waits(&a["wait_events"], 5)
                )?;
            }
        }
        writeln!(s)?;
    }

    // Prototype (what-if).
    for (_, v) in results
        .iter()
        .filter(|(_, v)| v["benchmark"] == "prototype")
    {
        writeln!(s, "### What-if (not the engine): the engine's lease SQL driven with batched claims, {} runs, {} loops × {} slots\n",
                 v["params"]["runs"], v["params"]["loops"], v["params"]["total_concurrency"].as_u64().unwrap_or(0) / v["params"]["loops"].as_u64().unwrap_or(1).max(1))?;
        writeln!(
            s,
            "| variant | runs/s | runs per claim | commits/run | WAL bytes/run |"
        )?;
        writeln!(s, "|---|---:|---:|---:|---:|")?;
        for x in v["variants"].as_array().into_iter().flatten() {
            writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                x["variant"].as_str().unwrap_or("?"),
                f(&x["runs_per_s"], 0),
                f(&x["runs_per_claim"], 1),
                f(&x["postgres"]["commits_per_job"], 2),
                f(&x["postgres"]["wal_bytes_per_job"], 0)
            )?;
        }
        writeln!(s)?;
    }

    // Idle.
    for (_, v) in results.iter().filter(|(_, v)| v["benchmark"] == "idle") {
        writeln!(
            s,
            "### Idle: {} enabled schedules, none due for an hour, one process\n",
            v["params"]["schedules"]
        )?;
        writeln!(s, "| window | worker CPU (% of a core) | goal ≤ 0.5 % | VmHWM MiB | VmRSS MiB | goal ≤ 50 MB | PostgreSQL backends | their CPU (% of a core) | commits in window |")?;
        writeln!(s, "|---:|---:|---|---:|---:|---|---:|---:|---:|")?;
        writeln!(
            s,
            "| {} s | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            f(&v["window_s"], 0),
            f(&v["worker_cpu_pct_of_core"], 3),
            if v["goals"]["cpu_met"].as_bool() == Some(true) {
                "met"
            } else {
                "missed"
            },
            f(&v["worker_vm_hwm_mib"], 1),
            f(&v["worker_vm_rss_mib"], 1),
            if v["goals"]["rss_met"].as_bool() == Some(true) {
                "met"
            } else {
                "missed"
            },
            v["postgres_backends"],
            f(&v["postgres_backends_cpu_pct_of_core"], 3),
            v["commits_in_window_lower_bound"],
        )?;
    }
    // APScheduler (optional).
    for (_, v) in results
        .iter()
        .filter(|(_, v)| v["benchmark"] == "apscheduler")
    {
        writeln!(
            s,
            "### Reference: {}, {} every-minute jobs, {} threads\n",
            v["system"].as_str().unwrap_or("APScheduler"),
            v["jobs"],
            v["threads"]
        )?;
        writeln!(s, "| minute | executed | lateness p50 s | p99 s | max s |")?;
        writeln!(s, "|---|---:|---:|---:|---:|")?;
        for m in v["per_minute"].as_array().into_iter().flatten() {
            writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                m["boundary"].as_str().unwrap_or("?"),
                m["executed"],
                f(&m["lateness_p50_s"], 2),
                f(&m["lateness_p99_s"], 2),
                f(&m["lateness_max_s"], 2)
            )?;
        }
        writeln!(
            s,
            "| all | {} | {} | {} | {} |\n",
            v["executed"],
            f(&v["lateness_p50_s"], 2),
            f(&v["lateness_p99_s"], 2),
            f(&v["lateness_max_s"], 2)
        )?;
        writeln!(
            s,
            "Missed: {}, skipped (max instances): {}, errors: {}; adding the jobs took {} s.\n",
            v["missed"],
            v["max_instances"],
            v["error"],
            f(&v["add_jobs_s"], 1)
        )?;
    }
    Ok(s)
}
