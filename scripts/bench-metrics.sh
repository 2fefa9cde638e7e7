#!/usr/bin/env bash
# What a `GET /metrics` scrape costs as the run history grows: N runs (default 1,000,000) of 1,000
# every-minute ingestions, i.e. the last N/1,000 minutes of their history, in a database of their
# own: the newest run of each ingestion, made in the last minute, still RUNNING, the rest finished.
# Then the release API on that database and the
# time of successive scrapes (curl's total time). The first scrape of an API process reads the
# whole run table; later ones read the open runs, the last minute's and those newly settled.
# Prints a markdown table.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
: "${DATABASE_URL:?DATABASE_URL must be set (make bench sets it)}"
runs="${BENCH_METRICS_RUNS:-1000000}"
db="autoloader_bench_metrics"
url="${DATABASE_URL%/*}/$db"
bin="${AUTOLOADER_API_BIN:-$root/target/release/autoloader-api}"
out="$root/bench/results"
mkdir -p "$out"

psql -q "$DATABASE_URL" -c "drop database if exists $db" -c "create database $db" >/dev/null 2>&1
port=18381
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
api=""
cleanup() {
    if [ -n "$api" ]; then kill "$api" 2>/dev/null || true; wait "$api" 2>/dev/null || true; fi
    psql -q "$DATABASE_URL" -c "drop database if exists $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
DATABASE_URL="$url" "$bin" --migrate-only 2>"$out/metrics-bench-server.log"

# 1,000 ingestions, one run each per minute; ids UUIDv7 of their queued instant.
psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<SQL
insert into tenants (id, name) values ('00000000-0000-7000-8000-000000000001', 'bench');
insert into ingestions (id, tenant_id, name, source_type, source_path, format_type, destination_table)
select ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
       '00000000-0000-7000-8000-000000000001', 'bench-' || g, 'local', 'file:///bench/',
       'json', 'bench.events'
from generate_series(1, 1000) g;
insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status, attempt,
                  worker_id, queued_at, started_at, finished_at, lease_expires_at)
select (lpad(to_hex((extract(epoch from t) * 1000)::bigint), 12, '0') || '7'
        || lpad(to_hex(g % 4096), 3, '0') || '8' || substr(md5(g::text), 1, 15))::uuid,
       ('00000000-0000-7000-8000-' || lpad(to_hex(g % 1000 + 1), 12, '0'))::uuid,
       '00000000-0000-7000-8000-000000000001', 'scheduler', t,
       case when open then 'RUNNING' when g % 50 = 0 then 'FAILED' else 'SUCCESS' end, 1, 'bench',
       t, t + make_interval(secs => g % 7),
       case when not open then t + make_interval(secs => g % 7 + 1) end,
       case when open then now() + interval '1 hour' end
from (select g, g > $runs - 1000 as open,
             now() - interval '1 minute' - make_interval(mins => ($runs - g) / 1000)
                 + make_interval(secs => (g % 1000) * 0.05) as t
      from generate_series(1, $runs) g) s;
vacuum analyze;
SQL

DATABASE_URL="$url" AUTOLOADER_API_ADDR="127.0.0.1:$port" RUST_LOG=warn "$bin" --skip-migrations \
    2>>"$out/metrics-bench-server.log" &
api=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

scrape() { curl -fs -o /dev/null -w '%{time_total}' "$base/metrics"; }
echo "| runs in the table | scrape | seconds |"
echo "|---:|---|---:|"
echo "| $runs | first of the process (reads every run) | $(scrape) |"
for i in 2 3 4 5 6; do
    echo "| $runs | $i | $(scrape) |"
done
