#!/usr/bin/env bash
# Compaction: a table that an every-minute ingestion filled for a day (1,440 runs, one small JSON
# file each: 1,440 snapshots, manifests and data files), read whole by pyiceberg before and after
# one compaction run of the engine. Writes bench/results/maintenance.md; see BENCHMARKS.md,
# "Tables that stay fast".
#
#   scripts/bench-maintenance.sh        (or `make bench-maintenance`; `make bench` runs it)
#
# Settings (environment):
#   BENCH_MAINT_RUNS      loads before the compaction (default 1440: a day of minutes)
#   BENCH_MAINT_ROWS      rows per file (default 200)
#   BENCH_MAINT_READS     pyiceberg reads timed before and after (default 5; the median is kept)
#   BENCH_MAINT_OUT       the report (default bench/results/maintenance.md)
#   BENCH_MAINT_BIN_DIR   use the autoloader-worker and autoloader-api in this directory
#   DATABASE_URL          a PostgreSQL server to create the scratch database on; default: the
#                         local cluster of scripts/pg.sh
#
# Every load is a manual run of one ingestion (max_files_per_run 1), executed by one release
# worker with the maintenance scheduler off; the compaction is a maintenance run of the same
# table (runs.kind = 'compact'), executed by the same worker. The database and the warehouse are
# fresh and dropped at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

runs="${BENCH_MAINT_RUNS:-1440}"
rows="${BENCH_MAINT_ROWS:-200}"
reads="${BENCH_MAINT_READS:-5}"
report="${BENCH_MAINT_OUT:-$root/bench/results/maintenance.md}"
work="$root/.local/bench-maintenance"
say() { echo "bench-maintenance: $*" >&2; }
started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

python="$("$root/scripts/pyenv.sh")"
if [ -n "${BENCH_MAINT_BIN_DIR:-}" ]; then
    bin_dir="$BENCH_MAINT_BIN_DIR"
    commit="binaries in $bin_dir"
else
    say "building autoloader-worker and autoloader-api (release)"
    SQLX_OFFLINE="${SQLX_OFFLINE:-true}" cargo build --release -q -p autoloader-worker -p autoloader-api
    bin_dir="$root/target/release"
    commit="$(git rev-parse --short HEAD)"
    git diff --quiet HEAD -- Cargo.toml Cargo.lock workers src api migrations 2>/dev/null \
        || commit="$commit (with uncommitted changes)"
fi

base_url="${DATABASE_URL:-$("$root/scripts/pg.sh" start)}"
url_query=""
case "$base_url" in *\?*) url_query="?${base_url#*\?}" ;; esac
url_prefix="${base_url%%\?*}"
url_prefix="${url_prefix%/*}"
db=bench_maintenance
url="$url_prefix/$db$url_query"
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql "$base_url" -qAtX -v ON_ERROR_STOP=1 "$@"; }
q() { psql "$url" -qAtX -v ON_ERROR_STOP=1 "$@"; }

rm -rf "$work"
mkdir -p "$work/src" "$work/warehouse"
psql_admin -c "drop database if exists $db with (force)" -c "create database $db"
DATABASE_URL="$url" RUST_LOG=warn "$bin_dir/autoloader-api" --migrate-only >/dev/null

say "writing $runs files of $rows rows"
"$python" - "$work/src" "$runs" "$rows" <<'PY'
import json, os, sys
out, files, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for f in range(files):
    with open(os.path.join(out, f"minute-{f:05d}.json"), "w") as fh:
        for r in range(rows):
            i = f * rows + r
            fh.write(json.dumps({"id": i, "minute": f, "user": f"user-{i % 977}",
                                 "amount": round(i * 0.37 % 1000, 2), "page": f"/p/{i % 131}"}) + "\n")
    # Oldest first: one run takes one file, in order.
    os.utime(os.path.join(out, f"minute-{f:05d}.json"), (1_700_000_000 + f, 1_700_000_000 + f))
PY

ids="$(q -v src="file://$work/src/" -v roots="$work" <<'SQL'
with t as (
    insert into tenants (id, name, file_roots) values (gen_random_uuid(), 'bench', array[:'roots'])
    returning id, namespace
), i as (
    insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                            destination_table, options, schedule_enabled)
    select gen_random_uuid(), t.id, 'every minute', 'local', :'src', 'json', 'bench.events',
           '{"max_files_per_run": 1, "maintenance": "manual"}', false
    from t returning id, tenant_id
)
select i.id || ' ' || i.tenant_id || ' ' || t.namespace from i, t;
SQL
)"
read -r ingestion tenant namespace <<<"$ids"
table="$namespace.bench.events"

worker_pid=""
cleanup() {
    [ -n "$worker_pid" ] && kill -TERM "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null || true
}
trap cleanup EXIT
DATABASE_URL="$url" AUTOLOADER_FILE_ROOTS="$work" AUTOLOADER_WAREHOUSE="$work/warehouse" \
    AUTOLOADER_MAINTENANCE=false SCHEDULER_POLL_INTERVAL=1 RUST_LOG=warn \
    "$bin_dir/autoloader-worker" >"$work/worker.log" 2>&1 &
worker_pid=$!

# Waits for run $1 to finish; prints its status.
wait_run() {
    local status
    while :; do
        status="$(q -c "select status from runs where id = '$1'")"
        case "$status" in SUCCESS | FAILED) echo "$status"; return ;; esac
        kill -0 "$worker_pid" 2>/dev/null || { echo EXITED; return; }
        sleep 0.02
    done
}

say "loading $runs files, one run each"
load_start=$SECONDS
for ((n = 1; n <= runs; n++)); do
    run="$(q -c "insert into runs (id, ingestion_id, tenant_id, triggered_by)
                 values (gen_random_uuid(), '$ingestion', '$tenant', 'manual') returning id" | head -1)"
    status="$(wait_run "$run")"
    [ "$status" = SUCCESS ] || { say "load $n: $status"; tail -5 "$work/worker.log" >&2; exit 1; }
    if (( n % 240 == 0 )); then say "$n loads"; fi
done
load_s=$((SECONDS - load_start))

read_json() { "$python" "$root/bench/maintenance/read_time.py" "$url" "$work/warehouse" "$table" "$reads"; }
say "reading the table with pyiceberg ($reads times) before the compaction"
before="$(read_json)"
meta_before="$(q -c "select metadata_location from iceberg_catalog.iceberg_tables where table_name = 'events'")"

run="$(q -c "insert into runs (id, ingestion_id, tenant_id, triggered_by, kind, maintained_table)
             values (gen_random_uuid(), '$ingestion', '$tenant', 'manual', 'compact', '$table')
             returning id" | head -1)"
status="$(wait_run "$run")"
[ "$status" = SUCCESS ] || { say "compaction: $status: $(q -c "select error from runs where id = '$run'")"; exit 1; }
compaction="$(q -c "select json_build_object('seconds', extract(epoch from finished_at - started_at),
                                             'maintenance', maintenance)
                    from runs where id = '$run'")"

say "reading the table with pyiceberg ($reads times) after the compaction"
after="$(read_json)"

mkdir -p "$(dirname "$report")"
"$python" - "$report" "$before" "$after" "$compaction" "$runs" "$rows" "$load_s" "$commit" "$started_at" "$reads" <<'PY'
import json, sys
out, before, after, comp = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
runs, rows, load_s, commit, started, reads = sys.argv[5:11]
assert before["rows"] == after["rows"] == int(runs) * int(rows), (before["rows"], after["rows"])
ratio = before["read_s_median"] / after["read_s_median"]
m = comp["maintenance"] or {}
lines = [
    f"## Compaction of {runs} one-minute files ({started}, {commit})",
    "",
    f"{runs} loads of one {rows}-row JSON file each ({load_s} s in all), then one compaction run; "
    f"pyiceberg reads the whole table (catalog load, plan, to_arrow) {reads} times before and after.",
    "",
    "| | before | after |",
    "|---|---|---|",
    f"| rows | {before['rows']:,} | {after['rows']:,} |",
    f"| data files | {before['data_files']:,} | {after['data_files']:,} |",
    f"| manifests of the current snapshot | {before['manifests']:,} | {after['manifests']:,} |",
    f"| pyiceberg read, median | {before['read_s_median']:.2f} s | {after['read_s_median']:.2f} s |",
    f"| of which planning | {before['plan_s_median']:.2f} s | {after['plan_s_median']:.2f} s |",
    "",
    f"Read time before / after: **{ratio:.1f}×**. The compaction run took {float(comp['seconds']):.1f} s "
    f"({m.get('files_read', '?')} files read, {m.get('files_written', '?')} written).",
    "",
]
open(out, "w").write("\n".join(lines))
print("\n".join(lines))
PY
cleanup
worker_pid=""
psql_admin -c "drop database if exists $db with (force)"
rm -rf "$work"
