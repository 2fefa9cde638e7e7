#!/usr/bin/env bash
# What `GET /api/v1/ingestions/{id}/stats` costs with N runs in the table (default 1,000,000), in
# a database of its own: 1,000 ingestions of one tenant, N/1,000 finished loads each, their ticks
# spread evenly over the last 30 days (about every 43 minutes with the default N), mixed
# outcomes, durations and lateness; and one pathological ingestion with a minutely schedule's
# worth of runs (43,200 ticks in 30 days) in the same table. No retention: every run is live, the
# most the read has to aggregate; then (unless BENCH_STATS_FOLD=0) the release worker's sweep
# folds the loads older than a day into the hour buckets, as every worker does at start and
# hourly, and is stopped once every ingestion's watermark is caught up. Then the release API on
# that database and wrk (Debian's
# package, installed when missing) asking for a random ingestion's statistics, each window in
# turn, then for the minutely ingestion's. Prints a markdown table and the plan of the 30d read
# of the minutely ingestion; raw wrk output goes to bench/results/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
: "${DATABASE_URL:?DATABASE_URL must be set (make bench-stats sets it)}"
runs="${BENCH_STATS_RUNS:-1000000}"
duration="${BENCH_STATS_SECONDS:-15}"
connections="${BENCH_STATS_CONNECTIONS:-4}"
db="autoloader_bench_stats"
url="${DATABASE_URL%/*}/$db"
bin="${AUTOLOADER_API_BIN:-$root/target/release/autoloader-api}"
worker_bin="${AUTOLOADER_WORKER_BIN:-$root/target/release/autoloader-worker}"
fold="${BENCH_STATS_FOLD:-1}"
out="$root/bench/results"
mkdir -p "$out"

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then echo "wrk is missing: apt-get install wrk" >&2; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi

psql -q "$DATABASE_URL" -c "drop database if exists $db" -c "create database $db" >/dev/null 2>&1
port=18481
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
api=""
worker=""
lua="$(mktemp)"
cleanup() {
    if [ -n "$api" ]; then kill "$api" 2>/dev/null || true; wait "$api" 2>/dev/null || true; fi
    if [ -n "$worker" ]; then kill "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true; fi
    rm -f "$lua"
    psql -q "$DATABASE_URL" -c "drop database if exists $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
DATABASE_URL="$url" "$bin" --migrate-only 2>"$out/stats-bench-server.log"
token="$(DATABASE_URL="$url" "$bin" create-token --tenant stats-bench --label bench \
    | sed -n 's/^AUTOLOADER_TOKEN=//p')"

# Ingestion g has id 00000000-0000-7000-8000-<g in hex>; run g of N finishes at
# now - 30 days + (g / N) of 30 days (less a minute), so every ingestion's runs cover the window.
start=$(date +%s)
psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<SQL
insert into ingestions (id, tenant_id, name, source_type, source_path, format_type, destination_table)
select ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, t.id, 'bench-' || g,
       'local', 'file:///bench/', 'json', 'bench.events'
from generate_series(1, 1000) g, tenants t where t.name = 'stats-bench';
insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status, attempt,
                  worker_id, queued_at, started_at, finished_at, error, reason,
                  files_processed, rows_ingested, bytes_read)
select (lpad(to_hex((extract(epoch from t) * 1000)::bigint), 12, '0') || '7'
        || lpad(to_hex(g % 4096), 3, '0') || '8' || substr(md5(g::text), 1, 15))::uuid,
       ('00000000-0000-7000-8000-' || lpad(to_hex(g % 1000 + 1), 12, '0'))::uuid,
       (select id from tenants where name = 'stats-bench'), 'scheduler', t, status,
       case when started then 1 else 0 end, case when started then 'bench' end, t,
       case when started then t + make_interval(secs => (g % 97) * 0.1) end,
       t + make_interval(secs => (g % 97) * 0.1 + (g % 600)),
       case when status = 'FAILED' then 'bench failure' end,
       case when not started then 'bench' end,
       case when status = 'SUCCESS' then g % 10 else 0 end,
       case when status = 'SUCCESS' then g % 10000 else 0 end,
       case when status = 'SUCCESS' then g % 1000000 else 0 end
from (select g, t,
             case when g % 50 = 0 then 'FAILED' when g % 97 = 0 then 'SKIPPED'
                  when g % 89 = 0 then 'MISSED' else 'SUCCESS' end as status,
             g % 97 <> 0 and g % 89 <> 0 as started
      from (select g, now() - interval '30 days'
                      + make_interval(secs => (g::double precision / $runs) * 30 * 86400 - 660) as t
            from generate_series(1, $runs) g) s) r;
insert into ingestions (id, tenant_id, name, source_type, source_path, format_type, destination_table)
select '00000000-0000-7000-8000-0000000f4240', t.id, 'bench-minutely', 'local', 'file:///bench/',
       'json', 'bench.events'
from tenants t where t.name = 'stats-bench';
insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status, attempt,
                  worker_id, queued_at, started_at, finished_at, error,
                  files_processed, rows_ingested, bytes_read)
select (lpad(to_hex((extract(epoch from t) * 1000)::bigint), 12, '0') || '7'
        || lpad(to_hex(g % 4096), 3, '0') || '9' || substr(md5(g::text), 1, 15))::uuid,
       '00000000-0000-7000-8000-0000000f4240', (select id from tenants where name = 'stats-bench'),
       'scheduler', t, case when g % 50 = 0 then 'FAILED' else 'SUCCESS' end, 1, 'bench', t,
       t + make_interval(secs => (g % 7) * 0.1), t + make_interval(secs => (g % 7) * 0.1 + (g % 40)),
       case when g % 50 = 0 then 'bench failure' end, 1, 100, 10000
from (select g, date_trunc('minute', now()) - make_interval(mins => g) as t
      from generate_series(1, 43200) g) s;
vacuum analyze;
SQL
loaded=$(( $(date +%s) - start ))
total="$(psql -qtA "$url" -c "select count(*) from runs")"
size="$(psql -qtA "$url" -c "select pg_size_pretty(pg_total_relation_size('runs'))")"

folded="not folded (BENCH_STATS_FOLD=0)"
if [ "$fold" != 0 ]; then
    start=$(date +%s)
    DATABASE_URL="$url" RUST_LOG=warn "$worker_bin" 2>>"$out/stats-bench-worker.log" &
    worker=$!
    behind="select count(*) from ingestions i left join run_stats_folds f on f.ingestion_id = i.id
            where coalesce(f.folded_before, '-infinity')
                  < to_timestamp(floor(extract(epoch from now() - interval '25 hours') / 3600) * 3600)"
    for _ in $(seq 1 1200); do
        [ "$(psql -qtA "$url" -c "$behind")" = 0 ] && break
        kill -0 "$worker" 2>/dev/null || { echo "the worker stopped: $out/stats-bench-worker.log" >&2; exit 1; }
        sleep 1
    done
    kill "$worker"; wait "$worker" 2>/dev/null || true; worker=""
    psql -q "$url" -c "vacuum analyze" >/dev/null
    folded="folded by the worker's sweep in $(( $(date +%s) - start )) s: $(psql -qtA "$url" -c \
        "select count(*) from run_stats") hour buckets, $(psql -qtA "$url" -c \
        "select count(*) from runs r join run_stats_folds f on f.ingestion_id = r.ingestion_id
         where r.scheduled_for >= f.folded_before") runs live"
fi

# No per-token rate limit: the benchmark is one token asking as fast as it can.
DATABASE_URL="$url" AUTOLOADER_API_ADDR="127.0.0.1:$port" AUTOLOADER_TOKEN_RATE_LIMIT=0 RUST_LOG=warn \
    "$bin" --skip-migrations \
    2>>"$out/stats-bench-server.log" &
api=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

echo "$total runs (runs: $size) written in ${loaded} s: $runs over 1,000 ingestions, 43,200 of one minutely ingestion;"
echo "$folded."
echo
echo "| ingestion | window | requests/s | p50 | p99 | max |"
echo "|---|---|---:|---:|---:|---:|"
for case in 1h 24h 7d 30d minutely:1h minutely:24h minutely:7d minutely:30d; do
    window="${case#minutely:}"
    if [ "$case" = "$window" ]; then pick='math.random(1, 1000)'; label="random of 1,000"
    else pick='1000000'; label="minutely (43,200)"; fi
    cat >"$lua" <<LUA
math.randomseed(os.time())
request = function()
    local id = string.format("00000000-0000-7000-8000-%012x", $pick)
    return wrk.format("GET", "/api/v1/ingestions/" .. id .. "/stats?window=$window")
end
LUA
    # The answer must be a 200 with the ingestion's loads before it is timed.
    curl -fs -H "Authorization: Bearer $token" \
        "$base/api/v1/ingestions/00000000-0000-7000-8000-000000000001/stats?window=$window" \
        | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["runs"]["total"] > 0, s'
    wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$lua" \
        -H "Authorization: Bearer $token" "$base" >"$out/wrk-stats-${case/:/-}.txt"
    python3 - "$label | $window" "$out/wrk-stats-${case/:/-}.txt" <<'PY'
import re, sys
label, path = sys.argv[1], sys.argv[2]
text = open(path).read()
def ms(v):
    n, unit = float(re.match(r"([\d.]+)", v).group(1)), re.search(r"(us|ms|s)$", v).group(1)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
mx = ms(re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", text, re.M).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
assert not errors, f"{label}: {errors.group(0)}"
print(f"| {label} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms | {mx:.2f} ms |")
PY
done

# The plan of the heaviest read: the minutely ingestion's 30 days, the statement as the API sends
# it (taken from .sqlx/), with its parameters in place.
query="$(python3 - "$root/.sqlx" <<'PY'
import glob, json, sys
for f in glob.glob(sys.argv[1] + "/query-*.json"):
    q = json.load(open(f))["query"]
    if "), live as (" in q and "run_stats_folds" in q:
        print(q.replace("$1", "(select id from tenants where name = 'stats-bench')")
               .replace("$2", "'00000000-0000-7000-8000-0000000f4240'::uuid")
               .replace("$3::bigint", "2592000::bigint"))
PY
)"
echo
echo "Plan of the minutely ingestion's 30d read (EXPLAIN ANALYZE):"
echo
echo '```'
psql -qtA "$url" -c "explain (analyze, costs off, timing off, summary on) $query" \
    | grep -E "Index|Scan|Execution|Rows Removed" | sed 's/^ *//' | sort | uniq -c | sed 's/^ *//'
echo '```'
