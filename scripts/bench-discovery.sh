#!/usr/bin/env bash
# Discovery in a prefix that keeps its history: a run that finds 10 new files among 1,000,000
# already loaded on local disk (1,000 date directories of 1,000 files) and among 100,000 on the S3
# server (moto, 100 directories of 1,000), with `discovery` incremental and full; and, for
# comparison, what any loader without a ledger index must do each time: list the whole prefix
# (Python: an os.scandir walk with a stat per file, and boto3's list_objects_v2 pages).
# Writes bench/results/discovery.md; see BENCHMARKS.md, "Discovery".
#
#   scripts/bench-discovery.sh         (or `make bench-discovery`; `make bench` runs it)
#
# Settings (environment):
#   BENCH_DISCOVERY_REPEATS     runs of each mode and source (default 3)
#   BENCH_DISCOVERY_LOCAL_DIRS  date directories on local disk (default 1000), of
#   BENCH_DISCOVERY_FILES       files each (default 1000)
#   BENCH_DISCOVERY_S3_DIRS     date directories on S3 (default 100)
#   BENCH_DISCOVERY_SOURCES     default "local s3"
#   BENCH_DISCOVERY_OUT         the report (default bench/results/discovery.md)
#   DATABASE_URL                a PostgreSQL server to create the scratch database on; default:
#                               the local cluster of scripts/pg.sh
#
# The local tree is made once into .local/bench-discovery/ (git-ignored; 1,000,000 files of a few
# bytes take about 4 GB of disk blocks) and reused while its shape is unchanged; the S3 objects
# are uploaded once per S3 server (32 uploads at a time) and reused while it runs. The ledger
# rows of the old files are inserted with one `insert ... select generate_series`, and the
# ingestion's last full listing is recorded as just done, so an incremental run lists after the
# greatest key. Each repeat adds 10 files in a directory of their own (a later date) and queues
# one manual run with SQL for a worker already running; its time is the run's
# `finished_at - queued_at` (claim, listing, ledger look-ups, reading, commit). The keys each run
# listed come from the worker's log (`listed the source`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

repeats="${BENCH_DISCOVERY_REPEATS:-3}"
local_dirs="${BENCH_DISCOVERY_LOCAL_DIRS:-1000}"
per_dir="${BENCH_DISCOVERY_FILES:-1000}"
s3_dirs="${BENCH_DISCOVERY_S3_DIRS:-100}"
sources="${BENCH_DISCOVERY_SOURCES:-local s3}"
report="${BENCH_DISCOVERY_OUT:-$root/bench/results/discovery.md}"
work="$root/.local/bench-discovery"
data="$work/data"
bucket="bench-discovery"
new_files=10
timeout=1800

say() { echo "bench-discovery: $*" >&2; }
started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
started_s=$SECONDS
command -v psql >/dev/null || { say "psql is missing (apt-get install postgresql-client)"; exit 1; }
python="$("$root/scripts/pyenv.sh")"

# --- build ----------------------------------------------------------------------------------
say "building autoloader-worker and autoloader-api (release)"
SQLX_OFFLINE="${SQLX_OFFLINE:-true}" cargo build --release -q -p autoloader-worker -p autoloader-api
worker_bin="$root/target/release/autoloader-worker"
api_bin="$root/target/release/autoloader-api"
commit="$(git rev-parse --short HEAD)"
git diff --quiet HEAD -- Cargo.toml Cargo.lock workers src api migrations 2>/dev/null \
    || commit="$commit (with uncommitted changes)"

# --- the old files ---------------------------------------------------------------------------
# Day d (from 0) is dt=<2000-01-01 + d days>; file f of a day is part-<f, 4 digits>.json.
stamp="$local_dirs x $per_dir"
if [ "$(cat "$data/.stamp" 2>/dev/null)" = "$stamp" ]; then
    say "reusing the tree in $data/in"
else
    say "writing $local_dirs x $per_dir files into $data/in"
    rm -rf "$data"
    mkdir -p "$data/in"
    "$python" - "$data/in" "$local_dirs" "$per_dir" <<'PY'
import datetime, os, sys
out, dirs, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
day0 = datetime.date(2000, 1, 1)
for d in range(dirs):
    path = os.path.join(out, f"dt={day0 + datetime.timedelta(days=d)}")
    os.mkdir(path)
    for f in range(per):
        fd = os.open(os.path.join(path, f"part-{f:04d}.json"), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b'{"id": 0}\n')
        os.close(fd)
PY
    echo "$stamp" >"$data/.stamp"
fi
rm -rf "$data"/in/dt=2100-*
source_dir="$(cd "$data/in" && pwd -P)"

# --- PostgreSQL and S3 -----------------------------------------------------------------------
base_url="${DATABASE_URL:-$("$root/scripts/pg.sh" start)}"
url_query=""
case "$base_url" in *\?*) url_query="?${base_url#*\?}" ;; esac
url_prefix="${base_url%%\?*}"
url_prefix="${url_prefix%/*}"
db="bench_discovery"
url="$url_prefix/$db$url_query"
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql "$base_url" -qAtX -v ON_ERROR_STOP=1 "$@"; }
sql() { psql "$url" -qAtX -v ON_ERROR_STOP=1 "$@"; }

endpoint=""
s3_started=false
worker_pid=""
cleanup() {
    if [ -n "$worker_pid" ]; then kill -TERM "$worker_pid" 2>/dev/null || true; wait "$worker_pid" 2>/dev/null || true; fi
    rm -rf "$data"/in/dt=2100-* "$work/warehouse"
    if [ -n "$endpoint" ]; then
        "$python" - "$endpoint" "$bucket" <<'PY' || true
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix="in/dt=2100-"):
    for o in page.get("Contents", []):
        s3.delete_object(Bucket=sys.argv[2], Key=o["Key"])
PY
    fi
    if $s3_started; then "$root/scripts/s3.sh" stop || true; fi
}
trap cleanup EXIT

case " $sources " in
*" s3 "*)
    "$root/scripts/s3.sh" status >/dev/null 2>&1 || s3_started=true
    endpoint="$("$root/scripts/s3.sh" start)"
    say "uploading $s3_dirs x $per_dir objects to s3://$bucket/in/ on $endpoint (those missing)"
    upload_s="$("$python" - "$endpoint" "$bucket" "$s3_dirs" "$per_dir" <<'PY'
import datetime, sys, time, boto3, botocore.config
from concurrent.futures import ThreadPoolExecutor
endpoint, bucket, dirs, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                  region_name="us-east-1", config=botocore.config.Config(max_pool_connections=32))
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
have = {o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="in/")
        for o in p.get("Contents", [])}
day0 = datetime.date(2000, 1, 1)
keys = [f"in/dt={day0 + datetime.timedelta(days=d)}/part-{f:04d}.json"
        for d in range(dirs) for f in range(per)]
keys = [k for k in keys if k not in have]
t0 = time.time()
with ThreadPoolExecutor(32) as pool:
    list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b'{"id": 0}\n'), keys))
print(f"{len(keys)} {time.time() - t0:.1f}")
PY
)"
    say "uploaded (objects, seconds): $upload_s"
    ;;
esac

# --- the database: one ingestion per source, its old files in the ledger -----------------------
say "a fresh database $db with the ledger of the old files"
psql_admin -c "drop database if exists $db with (force)" -c "create database $db"
DATABASE_URL="$url" RUST_LOG=warn "$api_bin" --migrate-only >/dev/null
s3_options='{"s3_endpoint": "'"$endpoint"'", "s3_allow_http": true, "s3_access_key_id": "test", "s3_secret_access_key": "test", "s3_region": "us-east-1"}'
ledger_s="$(sql -v roots="$data" -v local_path="file://$source_dir/" -v s3_path="s3://$bucket/in/" \
    -v local_base="file://$source_dir" -v s3_base="s3://$bucket/in" -v s3_options="$s3_options" \
    -v local_dirs="$local_dirs" -v s3_dirs="$s3_dirs" -v per="$per_dir" <<'SQL'
\timing on
insert into tenants (id, name, namespace, file_roots)
values ('00000000-0000-7000-8000-000000000001', 'bench', 'bench', array[:'roots']);
insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                        destination_table, options, schedule_enabled)
values ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-000000000001', 'local',
        'local', :'local_path', 'json', 'bench.local', '{}', false),
       ('00000000-0000-7000-8000-00000000000b', '00000000-0000-7000-8000-000000000001', 's3',
        's3', :'s3_path', 'json', 'bench.s3', (:'s3_options')::jsonb, false);
insert into loaded_files (ingestion_id, path, size_bytes, last_modified, run_id, attempt,
                          snapshot_id, rows_loaded)
select i, format('%s/dt=%s/part-%s.json', base, (date '2000-01-01' + g / (:per)::int)::text,
                 lpad((g % (:per)::int)::text, 4, '0')),
       10, now() - interval '1 day', '00000000-0000-7000-8000-0000000000ff', 1, 1, 1
from (values ('00000000-0000-7000-8000-00000000000a'::uuid, :'local_base', (:local_dirs)::int),
             ('00000000-0000-7000-8000-00000000000b'::uuid, :'s3_base', (:s3_dirs)::int)) v(i, base, dirs),
     generate_series(0, dirs * (:per)::int - 1) g;
analyze loaded_files;
SQL
)"
say "ledger rows inserted in $(echo "$ledger_s" | grep -o 'Time: [0-9.]* ms' | sort -t' ' -k2 -g | tail -1 | cut -d' ' -f2) ms"

# --- the worker ------------------------------------------------------------------------------
log="$work/worker.log"
mkdir -p "$work/warehouse"
env DATABASE_URL="$url" AUTOLOADER_FILE_ROOTS="$data" AUTOLOADER_WAREHOUSE="$work/warehouse" \
    AUTOLOADER_LOG_FORMAT=json RUST_LOG=info AUTOLOADER_S3_ENDPOINT_ALLOWLIST=127.0.0.0/8 \
    AUTOLOADER_WORKER_ID=bench-discovery "$worker_bin" >"$log" 2>&1 &
worker_pid=$!

raw="$work/results.tsv"
printf 'source\tmode\trepeat\tstatus\tfiles\tseconds\tkeys_listed\terror\n' >"$raw"
day=0
# One run: 10 new files in a directory of their own, `discovery` = mode, queued, waited for.
run_one() {
    local source="$1" mode="$2" n="$3" ingestion dir run_id status
    day=$((day + 1))
    dir="dt=2100-01-$(printf '%02d' "$day")"
    if [ "$source" = local ]; then
        ingestion=00000000-0000-7000-8000-00000000000a
        mkdir -p "$data/in/$dir"
        for f in $(seq 1 $new_files); do echo "{\"id\": $f}" >"$data/in/$dir/part-$f.json"; done
    else
        ingestion=00000000-0000-7000-8000-00000000000b
        "$python" - "$endpoint" "$bucket" "in/$dir" "$new_files" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")
for f in range(1, int(sys.argv[4]) + 1):
    s3.put_object(Bucket=sys.argv[2], Key=f"{sys.argv[3]}/part-{f}.json", Body=f'{{"id": {f}}}\n'.encode())
PY
    fi
    # The last full listing is recent: an incremental run lists after the greatest key.
    run_id="$(sql -v i="$ingestion" -v mode="$mode" <<'SQL'
update ingestions set options = options || jsonb_build_object('discovery', :'mode') where id = :'i';
insert into discovery_listings (ingestion_id, tenant_id, last_full_listing_at, run_id, keys_listed)
select id, tenant_id, now(), '00000000-0000-7000-8000-0000000000ff', 0 from ingestions where id = :'i'
on conflict (ingestion_id) do update set last_full_listing_at = now();
insert into runs (id, ingestion_id, tenant_id, triggered_by)
select gen_random_uuid(), id, tenant_id, 'manual' from ingestions where id = :'i' returning id;
SQL
)"
    local deadline=$((SECONDS + timeout))
    while :; do
        status="$(sql -c "select status from runs where id = '$run_id'")"
        case "$status" in SUCCESS | FAILED) break ;; esac
        if ! kill -0 "$worker_pid" 2>/dev/null; then status=EXITED; break; fi
        if [ "$SECONDS" -ge "$deadline" ]; then status=TIMEOUT; break; fi
        sleep 0.2
    done
    local files seconds error keys
    IFS=$'\t' read -r files seconds error < <(sql -F $'\t' -c "
        select files_processed, extract(epoch from finished_at - queued_at),
               replace(replace(coalesce(error, ''), E'\t', ' '), E'\n', ' ')
        from runs where id = '$run_id'") || true
    keys="$("$python" -c '
import json, sys
for line in open(sys.argv[1]):
    try: l = json.loads(line)
    except ValueError: continue
    if l.get("message") == "listed the source" and l.get("span", {}).get("run_id") == sys.argv[2]:
        print(l["keys_listed"]); break' "$log" "$run_id")"
    if [ "$status" = SUCCESS ] && [ "$files" != "$new_files" ]; then
        status=FAILED
        error="loaded $files files, expected $new_files"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$source" "$mode" "$n" "$status" "${files:-0}" \
        "${seconds:-0}" "${keys:-0}" "${error:-}" >>"$raw"
    say "$source $mode #$n: $status, ${files:-0} files in ${seconds:-?} s, ${keys:-?} keys listed${error:+, error: $error}"
}

# The baseline: a plain full listing of the prefix in Python.
py_local=""
py_s3=""
for source in $sources; do
    # A first run creates the table, so that the timed ones only append.
    run_one "$source" incremental 0
    for n in $(seq 1 "$repeats"); do
        run_one "$source" incremental "$n"
        run_one "$source" full "$n"
    done
    if [ "$source" = local ]; then
        py_local="$("$python" - "$source_dir" <<'PY'
import os, sys, time
def walk(d):
    n = 0
    with os.scandir(d) as it:
        for e in it:
            if e.is_dir():
                n += walk(e.path)
            elif e.is_file():
                st = e.stat()
                n += st.st_size > 0
    return n
t0 = time.time(); n = walk(sys.argv[1]); print(f"{n} {time.time() - t0:.3f}")
PY
)"
        say "python os.scandir walk with stat: $py_local (files, seconds)"
    else
        py_s3="$("$python" - "$endpoint" "$bucket" <<'PY'
import sys, time, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")
t0 = time.time()
n = sum(len(p.get("Contents", [])) for p in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix="in/"))
print(f"{n} {time.time() - t0:.3f}")
PY
)"
        say "python boto3 list_objects_v2: $py_s3 (keys, seconds)"
    fi
done
total_s=$((SECONDS - started_s))

# --- the report ------------------------------------------------------------------------------
mkdir -p "$(dirname "$report")"
BD_DATE="$started_at" BD_COMMIT="$commit" BD_REPEATS="$repeats" BD_PY_LOCAL="$py_local" BD_PY_S3="$py_s3" \
BD_SHAPE="local: $local_dirs x $per_dir, S3: $s3_dirs x $per_dir" \
BD_MACHINE="$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
BD_SOFTWARE="$(rustc --version | cut -d' ' -f1-2), PostgreSQL $(psql_admin -c 'show server_version' | cut -d' ' -f1), $("$python" -c 'import boto3, moto; print(f"boto3 {boto3.__version__}, moto {moto.__version__}")')" \
BD_TOTAL="$((total_s / 60)) min $((total_s % 60)) s" \
    "$python" - "$raw" "$report" <<'PY'
import os, statistics, sys
raw, report = sys.argv[1:3]
env = os.environ
with open(raw) as f:
    header = f.readline().rstrip("\n").split("\t")
    rows = [dict(zip(header, l.rstrip("\n").split("\t"))) for l in f if l.strip()]
timed = [r for r in rows if r["repeat"] != "0"]


def stat(values, fmt):
    if not values:
        return "–"
    med, lo, hi = fmt(statistics.median(values)), fmt(min(values)), fmt(max(values))
    return med if lo == hi else f"{med} ({lo}–{hi})"


out = []
w = out.append
w("# Discovery benchmark")
w("")
w("A run that finds 10 new files in a prefix whose old files are all loaded (in the ledger), with")
w("`discovery` incremental (the last full listing recent) and full, by the release `autoloader-worker`;")
w("seconds are the run's `finished_at - queued_at`, median (min–max). Baseline: a plain full listing")
w("of the same prefix in Python, what a loader with no ledger index (a pyiceberg script) needs each")
w("time before it can tell what is new.")
w("")
w("| | |")
w("|---|---|")
w(f"| command | `make bench-discovery` (`scripts/bench-discovery.sh`), {env['BD_REPEATS']} runs of each mode and source |")
w(f"| date | {env['BD_DATE']} |")
w(f"| commit | `{env['BD_COMMIT']}` |")
w(f"| old files | {env['BD_SHAPE']} (date directories of files) |")
w(f"| machine | {env['BD_MACHINE']} |")
w(f"| software | {env['BD_SOFTWARE']} |")
w(f"| total time | {env['BD_TOTAL']} |")
w("")
w("| source | discovery | ok runs | seconds | keys listed | µs per listed key |")
w("|---|---|---|---|---|---|")
for source in ("local", "s3"):
    for mode in ("incremental", "full"):
        mine = [r for r in timed if r["source"] == source and r["mode"] == mode]
        if not mine:
            continue
        ok = [r for r in mine if r["status"] == "SUCCESS"]
        secs = [float(r["seconds"]) for r in ok]
        keys = [int(r["keys_listed"] or 0) for r in ok]
        per = [1e6 * float(r["seconds"]) / int(r["keys_listed"]) for r in ok if int(r["keys_listed"] or 0) > 0]
        w(f"| {source} | {mode} | {len(ok)}/{len(mine)} | {stat(secs, lambda v: f'{v:,.2f}')} "
          f"| {stat(keys, lambda v: f'{v:,.0f}')} | {stat(per, lambda v: f'{v:,.1f}') if mode == 'full' else '–'} |")
w("")
for name, key in (("Python `os.scandir` walk with a `stat` per file (local)", "BD_PY_LOCAL"),
                  ("Python boto3 `list_objects_v2` pages (S3)", "BD_PY_S3")):
    if env.get(key):
        n, s = env[key].split()
        w(f"- {name}: {int(n):,} files in {float(s):,.2f} s, {1e6 * float(s) / max(int(n), 1):,.1f} µs per file.")
for r in rows:
    if r["status"] != "SUCCESS":
        w(f"- {r['source']} {r['mode']} run {r['repeat']}: {r['status']}: `{r['error']}`")
with open(report, "w") as f:
    f.write("\n".join(out) + "\n")
PY
psql_admin -c "drop database if exists $db with (force)" || true
say "done in $((total_s / 60)) min $((total_s % 60)) s; report: $report (raw: $raw, log: $log)"
