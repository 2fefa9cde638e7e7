#!/usr/bin/env bash
# Ingestion throughput: about 1 GB of JSON lines and the same rows as Parquet, loaded from the
# local filesystem and from an S3 server on loopback (moto), by the release `autoloader-worker`
# and, as the baseline, by pyiceberg's own append of the same files (bench/ingest/pyiceberg_append.py).
# Writes bench/results/ingest.md; see BENCHMARKS.md, "Ingestion".
#
#   scripts/bench-ingest.sh            (or `make bench-ingest`; `make bench` runs it last)
#
# Settings (environment):
#   BENCH_INGEST_REPEATS   runs of each case and tool (default 5)
#   BENCH_INGEST_CASES     cases to run (default "json-local json-s3 jsongz-local jsongz-s3
#                          parquet-local parquet-s3"; jsongz: the JSON files gzipped)
#   BENCH_INGEST_TOOLS     default "autoloader pyiceberg"
#   BENCH_INGEST_TIMEOUT   seconds one Autoloader run may take before it counts as failed (1800)
#   BENCH_INGEST_OUT       the report (default bench/results/ingest.md)
#   BENCH_INGEST_BIN_DIR   use the autoloader-worker and autoloader-api in this directory instead
#                          of building the checkout (BENCH_INGEST_COMMIT: what the report calls them)
#   DATABASE_URL           a PostgreSQL server to create the scratch databases on (superuser or
#                          CREATEDB); default: the local cluster of scripts/pg.sh
#
# The data is generated once into .local/bench-ingest/data (git-ignored) and reused while the
# generator below is unchanged. Every run gets a fresh database (bench_ingest_*), migrated with
# `autoloader-api --migrate-only`, and a fresh warehouse; both are dropped afterwards. An
# Autoloader run is one manual run of one ingestion, executed by a worker started for it under
# `/usr/bin/time -v` (peak RSS); its duration is the run's `finished_at - started_at` from the
# runs table. The S3 server is started if it is not running (and stopped at the end if it was
# started here); the objects go in a bucket of their own, deleted at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

repeats="${BENCH_INGEST_REPEATS:-5}"
cases="${BENCH_INGEST_CASES:-json-local json-s3 jsongz-local jsongz-s3 parquet-local parquet-s3}"
tools="${BENCH_INGEST_TOOLS:-autoloader pyiceberg}"
timeout="${BENCH_INGEST_TIMEOUT:-1800}"
report="${BENCH_INGEST_OUT:-$root/bench/results/ingest.md}"
work="$root/.local/bench-ingest"
data="$work/data"
bucket="bench-ingest"
files=16
target_bytes=1000000000

say() { echo "bench-ingest: $*" >&2; }
started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
started_s=$SECONDS

# --- tools -----------------------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" -ne 0 ]; then say "/usr/bin/time is missing: apt-get install time"; exit 1; fi
    say "installing GNU time from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null
fi
command -v psql >/dev/null || { say "psql is missing (apt-get install postgresql-client)"; exit 1; }
python="$("$root/scripts/pyenv.sh")"

# --- data ------------------------------------------------------------------------------------
# The generator; its hash is the data's stamp, so editing it regenerates the data.
gen_py="$(cat <<'PY'
"""Event rows, the same in JSON lines and in Parquet: 16 files of each, about 1 GB of JSON."""
import json, os, random, sys, time
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

OUT, FILES, TARGET = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
BASE_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z

rnd = random.Random(20261127)
WORDS = ("the a of to and in is for on with user page order cart item search checkout payment "
         "session error timeout retry latency request response cache miss hit shipped returned "
         "refund coupon mobile desktop tablet banner recommended viewed clicked scrolled "
         "café naïve Zürich São Paulo 東京 přihlášení größe").split()
MESSAGES = pa.array([" ".join(rnd.choice(WORDS) for _ in range(int(rnd.paretovariate(1.6) * 4)))[:600]
                     or "ok" for _ in range(50_000)])
PATHS = pa.array(["/" + "/".join(rnd.choice(WORDS[:40]) for _ in range(rnd.randint(1, 5)))
                  + (f"?id={rnd.randint(1, 10**6)}" if rnd.random() < 0.5 else "")
                  for _ in range(20_000)])
REFERRERS = pa.array([f"https://{rnd.choice(['www.', 'm.', ''])}{rnd.choice(WORDS[:40])}"
                      f"{rnd.randint(1, 999)}.example.com/{rnd.choice(WORDS[:40])}" for _ in range(500)])
EVENT_TYPES = pa.array(["page_view", "click", "scroll", "search", "add_to_cart", "remove_from_cart",
                        "checkout_start", "checkout_complete", "login", "logout", "error", "video_play"])
COUNTRIES = pa.array("US GB DE FR ES IT NL SE NO DK FI PL CZ AT CH BE IE PT BR MX AR CA JP KR CN IN AU NZ ZA NG".split())
TS = "%Y-%m-%dT%H:%M:%SZ"  # Arrow prints the microseconds after the seconds


def uniform(n, seed):
    return pc.random(n, initializer=seed)


def ints(n, seed, hi):
    return pc.cast(pc.floor(pc.multiply(uniform(n, seed), hi)), pa.int64())


def pick(pool, n, seed):
    return pc.take(pool, ints(n, seed, len(pool)))


def rows(k, start, n):
    """File k's rows: the typed table and its JSON lines."""
    s = 1000 * (k + 1)
    ids = pa.array(range(start, start + n), pa.int64())
    event_us = pc.add(pc.add(pc.multiply(ids, 10_000), ints(n, s + 1, 10_000)), BASE_US)
    received_us = pc.add(event_us, ints(n, s + 2, 5_000_000))
    event_time = pc.cast(event_us, pa.timestamp("us", tz="UTC"))
    received_at = pc.cast(received_us, pa.timestamp("us", tz="UTC"))
    user_id = ints(n, s + 3, 10_000_000)
    session_id = pc.binary_join_element_wise("sess-", pc.cast(ints(n, s + 4, 10**12), pa.string()), "")
    event_type = pick(EVENT_TYPES, n, s + 5)
    country = pick(COUNTRIES, n, s + 6)
    url = pick(PATHS, n, s + 7)
    message = pick(MESSAGES, n, s + 8)
    # Never a whole number, so every value reads back as a float.
    amount = pc.round(pc.add(pc.divide(pc.cast(ints(n, s + 9, 100_000), pa.float64()), 100.0), 0.005), 3)
    is_mobile = pc.less(uniform(n, s + 10), 0.4)
    referrer = pc.if_else(pc.less(uniform(n, s + 11), 0.3), pa.scalar(None, pa.string()),
                          pick(REFERRERS, n, s + 12))
    table = pa.table({
        "id": ids, "event_time": event_time, "received_at": received_at, "user_id": user_id,
        "session_id": session_id, "event_type": event_type, "country": country, "url": url,
        "message": message, "amount": amount, "is_mobile": is_mobile, "referrer": referrer,
    })
    text = pc.cast
    referrer_json = pc.if_else(pc.is_null(referrer), "null",
                               pc.binary_join_element_wise('"', referrer, '"', ""))
    lines = pc.binary_join_element_wise(
        '{"id":', text(ids, pa.string()),
        ',"event_time":"', pc.strftime(event_time, format=TS),
        '","received_at":"', pc.strftime(received_at, format=TS),
        '","user_id":', text(user_id, pa.string()),
        ',"session_id":"', session_id,
        '","event_type":"', event_type,
        '","country":"', country,
        '","url":"', url,
        '","message":"', message,
        '","amount":', text(amount, pa.string()),
        ',"is_mobile":', text(is_mobile, pa.string()),
        ',"referrer":', referrer_json,
        "}\n", "")
    return table, lines


def json_bytes(lines):
    """The lines back to back: the string array's data buffer (every line ends with a newline)."""
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    total = pc.sum(pc.binary_length(lines)).as_py()
    return memoryview(lines.buffers()[2])[:total] if lines.offset == 0 else \
        "".join(lines.to_pylist()).encode()


def write(k, start, n):
    table, lines = rows(k, start, n)
    with open(os.path.join(OUT, "json", f"events-{k:02d}.jsonl"), "wb") as f:
        f.write(json_bytes(lines))
    pq.write_table(table, os.path.join(OUT, "parquet", f"events-{k:02d}.parquet"),
                   compression="zstd")
    return n


def chars(pool):
    n = sorted(len(v) for v in pool.to_pylist())
    return f"{n[0]}–{n[-1]} (median {n[len(n) // 2]})"


def main():
    t0 = time.time()
    os.makedirs(os.path.join(OUT, "json"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "parquet"), exist_ok=True)
    sample = 20_000
    per_row = len(json_bytes(rows(0, 0, sample)[1])) / sample
    per_file = int(TARGET / FILES / per_row)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = list(pool.map(write, range(FILES), [k * per_file for k in range(FILES)],
                             [per_file] * FILES))
    size = lambda d: sum(os.path.getsize(os.path.join(OUT, d, f)) for f in os.listdir(os.path.join(OUT, d)))
    schema = rows(0, 0, 1)[0].schema
    manifest = {
        "files": FILES, "rows": sum(done), "rows_per_file": per_file,
        "json_bytes": size("json"), "parquet_bytes": size("parquet"),
        "parquet_compression": "zstd (pyarrow's default level)",
        "message_chars": chars(MESSAGES), "url_chars": chars(PATHS),
        "columns": [f"{f.name} {f.type}" for f in schema],
        "seconds": round(time.time() - t0, 1),
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
PY
)"
stamp="$(printf '%s %s %s' "$gen_py" "$files" "$target_bytes" | sha256sum | cut -d' ' -f1)"
if [ -f "$data/manifest.json" ] && [ "$(cat "$data/.stamp" 2>/dev/null)" = "$stamp" ]; then
    say "reusing the data in $data"
else
    say "generating the data into $data"
    rm -rf "$data"
    mkdir -p "$data"
    printf '%s\n' "$gen_py" >"$work/gen_data.py"
    "$python" "$work/gen_data.py" "$data" "$files" "$target_bytes" >/dev/null
    echo "$stamp" >"$data/.stamp"
fi
# The JSON-lines files gzipped (level 6, `<name>.jsonl.gz`), made once from them.
if [ ! -f "$data/jsongz/.done" ]; then
    say "gzipping the JSON files into $data/jsongz"
    rm -rf "$data/jsongz"
    mkdir -p "$data/jsongz"
    for f in "$data"/json/*.jsonl; do
        gzip -6 -c "$f" >"$data/jsongz/$(basename "$f").gz"
    done
    touch "$data/jsongz/.done"
fi
manifest="$data/manifest.json"
expected_rows="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["rows"])' "$manifest")"
say "data: $(cat "$manifest" | tr -d '\n')"

# --- build ----------------------------------------------------------------------------------
if [ -n "${BENCH_INGEST_BIN_DIR:-}" ]; then
    bin_dir="$(cd "$BENCH_INGEST_BIN_DIR" && pwd)"
    commit="${BENCH_INGEST_COMMIT:-binaries from $bin_dir}"
    say "using the binaries in $bin_dir ($commit)"
else
    say "building autoloader-worker and autoloader-api (release)"
    SQLX_OFFLINE="${SQLX_OFFLINE:-true}" cargo build --release -q -p autoloader-worker -p autoloader-api
    bin_dir="$root/target/release"
    # What was built (the report names it; the checkout may change while the benchmark runs).
    commit="$(git rev-parse --short HEAD)"
    git diff --quiet HEAD -- Cargo.toml Cargo.lock workers src api migrations 2>/dev/null \
        || commit="$commit (with uncommitted changes)"
fi
worker_bin="$bin_dir/autoloader-worker"
api_bin="$bin_dir/autoloader-api"

# --- PostgreSQL and S3 -----------------------------------------------------------------------
base_url="${DATABASE_URL:-$("$root/scripts/pg.sh" start)}"
url_query=""
case "$base_url" in *\?*) url_query="?${base_url#*\?}" ;; esac
url_prefix="${base_url%%\?*}"
url_prefix="${url_prefix%/*}"
db_url() { echo "$url_prefix/$1$url_query"; }
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql "$base_url" -qAtX -v ON_ERROR_STOP=1 "$@"; }

needs_s3=false
case " $cases " in *-s3*) needs_s3=true ;; esac
s3_started=false
endpoint=""
cleanup_s3() {
    if [ -n "$endpoint" ]; then
        "$python" - "$endpoint" "$bucket" <<'PY' || true
import sys, boto3
s3 = boto3.resource("s3", endpoint_url=sys.argv[1], aws_access_key_id="test",
                    aws_secret_access_key="test", region_name="us-east-1")
b = s3.Bucket(sys.argv[2])
b.objects.all().delete()
b.delete()
PY
    fi
    if $s3_started; then "$root/scripts/s3.sh" stop || true; fi
}
worker_time_pid=""
cleanup() {
    if [ -n "$worker_time_pid" ] && kill -0 "$worker_time_pid" 2>/dev/null; then
        local w
        w="$(pgrep -P "$worker_time_pid" || true)"
        [ -n "$w" ] && kill -TERM "$w" 2>/dev/null || true
        wait "$worker_time_pid" 2>/dev/null || true
    fi
    cleanup_s3
}
trap cleanup EXIT

if $needs_s3; then
    "$root/scripts/s3.sh" status 2>/dev/null || s3_started=true
    endpoint="$("$root/scripts/s3.sh" start)"
    say "uploading the files to s3://$bucket/ on $endpoint"
    "$python" - "$endpoint" "$bucket" "$data" <<'PY'
import os, sys, boto3
endpoint, bucket, data = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
have = {o["Key"]: o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])}
for d in ("json", "jsongz", "parquet"):
    for name in sorted(n for n in os.listdir(os.path.join(data, d)) if not n.startswith(".")):
        path, key = os.path.join(data, d, name), f"{d}/{name}"
        if have.get(key) != os.path.getsize(path):
            with open(path, "rb") as f:
                s3.put_object(Bucket=bucket, Key=key, Body=f)
PY
fi

# --- one run ---------------------------------------------------------------------------------
raw="$work/results.tsv"
logs="$work/logs"
rm -rf "$logs"
mkdir -p "$logs"
printf 'tool\tcase\trepeat\tstatus\trows\tbytes_read\tbytes_written\tseconds\trss_kb\tcpu_s\tsys_s\tcswitches\terror\n' >"$raw"

time_field() { sed -n "s/^[[:space:]]*$2: //p" "$1" | head -1; }
cpu_of() { echo "$(time_field "$1" 'User time (seconds)') $(time_field "$1" 'System time (seconds)')" | awk '{print $1 + $2}'; }
# Peak RSS, CPU, system CPU and voluntary context switches of a process, from `/usr/bin/time -v`.
usage_of() {
    printf '%s\t%s\t%s\t%s' "$(time_field "$1" 'Maximum resident set size (kbytes)')" "$(cpu_of "$1")" \
        "$(time_field "$1" 'System time (seconds)')" "$(time_field "$1" 'Voluntary context switches')"
}

fresh_db() {
    psql_admin -c "drop database if exists $1 with (force)" -c "create database $1"
    DATABASE_URL="$(db_url "$1")" RUST_LOG=warn "$api_bin" --migrate-only >/dev/null
}
drop_db() { psql_admin -c "drop database if exists $1 with (force)" || true; }

# Options of the case's ingestion, and where its files are.
case_source() {
    local format="${1%-*}" where="${1#*-}"
    if [ "$where" = local ]; then echo "file://$data/$format/"; else echo "s3://$bucket/$format/"; fi
}
# The ingestion's format_type: gzipped JSON is JSON.
case_format() {
    local format="${1%-*}"
    echo "${format%gz}"
}
case_options() {
    local where="${1#*-}"
    if [ "$where" = local ]; then
        echo '{"max_files_per_run": 1000, "max_bytes_per_run": 100000000000}'
    else
        echo '{"max_files_per_run": 1000, "max_bytes_per_run": 100000000000, "s3_endpoint": "'"$endpoint"'", "s3_allow_http": true, "s3_access_key_id": "test", "s3_secret_access_key": "test", "s3_region": "us-east-1"}'
    fi
}

run_autoloader() {
    local case="$1" n="$2" db="bench_ingest_${1//-/_}_$2"
    local url warehouse log timef run_id source_type
    url="$(db_url "$db")"
    warehouse="$work/warehouse-$case-$n"
    log="$logs/autoloader-$case-$n.log"
    timef="$logs/autoloader-$case-$n.time"
    rm -rf "$warehouse"
    fresh_db "$db"
    source_type=local
    [ "${case#*-}" = s3 ] && source_type=s3
    run_id="$(psql "$url" -qAtX -v ON_ERROR_STOP=1 \
        -v source_type="$source_type" -v source_path="$(case_source "$case")" \
        -v format="$(case_format "$case")" -v options="$(case_options "$case")" \
        -v roots="$data" <<'SQL'
with t as (
    insert into tenants (id, name, file_roots)
    values (gen_random_uuid(), 'bench', array[:'roots']) returning id
), i as (
    insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                            destination_table, options, schedule_enabled)
    select gen_random_uuid(), t.id, 'bench ' || :'format', :'source_type', :'source_path',
           :'format', 'bench.events', (:'options')::jsonb, false
    from t returning id, tenant_id
)
insert into runs (id, ingestion_id, tenant_id, triggered_by)
select gen_random_uuid(), i.id, i.tenant_id, 'manual' from i returning id;
SQL
)"
    run_id="$(echo "$run_id" | head -1)"
    /usr/bin/time -v -o "$timef" env DATABASE_URL="$url" AUTOLOADER_FILE_ROOTS="$data" \
        AUTOLOADER_WAREHOUSE="$warehouse" AUTOLOADER_LOG_FORMAT=json RUST_LOG=info \
        AUTOLOADER_S3_ENDPOINT_ALLOWLIST=127.0.0.0/8 \
        AUTOLOADER_WORKER_ID="bench-$case-$n" "$worker_bin" >"$log" 2>&1 &
    worker_time_pid=$!
    local status="" deadline=$((SECONDS + timeout))
    while :; do
        status="$(psql "$url" -qAtX -c "select status from runs where id = '$run_id'")"
        case "$status" in SUCCESS | FAILED) break ;; esac
        if ! kill -0 "$worker_time_pid" 2>/dev/null; then status="EXITED"; break; fi
        if [ "$SECONDS" -ge "$deadline" ]; then status="TIMEOUT"; break; fi
        sleep 0.5
    done
    local w
    w="$(pgrep -P "$worker_time_pid" || true)"
    [ -n "$w" ] && kill -TERM "$w" 2>/dev/null || true
    wait "$worker_time_pid" 2>/dev/null || true
    worker_time_pid=""
    local row
    row="$(psql "$url" -qAtX -F $'\t' -c "
        select rows_ingested, bytes_read, bytes_written,
               extract(epoch from finished_at - started_at),
               replace(replace(coalesce(error, ''), E'\t', ' '), E'\n', ' ')
        from runs where id = '$run_id'")"
    local rows bytes_read bytes_written seconds error
    IFS=$'\t' read -r rows bytes_read bytes_written seconds error <<<"$row" || true
    if [ "$status" = SUCCESS ] && [ "$rows" != "$expected_rows" ]; then
        status=FAILED
        error="loaded $rows rows, expected $expected_rows"
    fi
    if [ "$status" = EXITED ] || [ "$status" = TIMEOUT ]; then
        error="worker: $status; last log lines: $(tail -3 "$log" | tr '\n\t' '  ')"
    fi
    printf 'autoloader\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$n" "$status" \
        "${rows:-0}" "${bytes_read:-0}" "${bytes_written:-0}" "${seconds:-0}" "$(usage_of "$timef")" \
        "$error" >>"$raw"
    say "autoloader $case #$n: $status, ${rows:-0} rows in ${seconds:-?} s, peak RSS $(time_field "$timef" 'Maximum resident set size (kbytes)') kB${error:+, error: $error}"
    drop_db "$db"
    rm -rf "$warehouse"
}

run_pyiceberg() {
    local case="$1" n="$2" db="bench_ingest_py_${1//-/_}_$2"
    local url warehouse log timef source s3args=()
    url="$(db_url "$db")"
    url="postgresql+psycopg2://${url#*://}"
    warehouse="$work/warehouse-py-$case-$n"
    log="$logs/pyiceberg-$case-$n.log"
    timef="$logs/pyiceberg-$case-$n.time"
    rm -rf "$warehouse"
    mkdir -p "$warehouse"
    psql_admin -c "drop database if exists $db with (force)" -c "create database $db"
    source="$(case_source "$case")"
    source="${source#file://}"
    [ "${case#*-}" = s3 ] && s3args=(--s3-endpoint "$endpoint")
    local status=SUCCESS out=""
    if ! out="$(/usr/bin/time -v -o "$timef" "$python" "$root/bench/ingest/pyiceberg_append.py" \
        --format "${case%-*}" --source "$source" --uri "$url" --warehouse "$warehouse" \
        "${s3args[@]}" 2>"$log")"; then
        status=FAILED
    fi
    local rows=0 bytes_read=0 bytes_written=0 seconds=0 error=""
    if [ "$status" = SUCCESS ]; then
        read -r rows bytes_read bytes_written seconds < <("$python" -c '
import json, sys; r = json.loads(sys.argv[1])
print(r["rows"], r["bytes_read"], r["bytes_written"], r["seconds"])' "$out")
        echo "$out" >>"$logs/pyiceberg-$case-$n.json"
        if [ "$rows" != "$expected_rows" ]; then
            status=FAILED
            error="appended $rows rows, expected $expected_rows"
        fi
    else
        error="$(tail -3 "$log" | tr '\n\t' '  ')"
    fi
    printf 'pyiceberg\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$n" "$status" \
        "$rows" "$bytes_read" "$bytes_written" "$seconds" "$(usage_of "$timef")" \
        "$error" >>"$raw"
    say "pyiceberg  $case #$n: $status, $rows rows in $seconds s, peak RSS $(time_field "$timef" 'Maximum resident set size (kbytes)') kB${error:+, error: $error}"
    drop_db "$db"
    rm -rf "$warehouse"
}

# --- the benchmark ---------------------------------------------------------------------------
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
for n in $(seq 1 "$repeats"); do
    for case in $cases; do
        # Alternate which tool goes first, so neither always runs right after the other.
        order="$tools"
        if [ $((n % 2)) -eq 0 ]; then order="$(echo "$tools" | tr ' ' '\n' | tac | tr '\n' ' ')"; fi
        for tool in $order; do
            "run_$tool" "$case" "$n"
        done
    done
done
total_s=$((SECONDS - started_s))

# --- the report ------------------------------------------------------------------------------
mkdir -p "$(dirname "$report")"
BI_CASES="$cases" BI_TOOLS="$tools" BI_REPEATS="$repeats" BI_DATE="$started_at" BI_COMMIT="$commit" \
BI_MACHINE="$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory, load average $load_start at the start" \
BI_SOFTWARE="$(rustc --version | cut -d' ' -f1-2), PostgreSQL $(psql_admin -c 'show server_version' | cut -d' ' -f1), $("$python" -c 'import pyiceberg, pyarrow, moto; print(f"pyiceberg {pyiceberg.__version__}, pyarrow {pyarrow.__version__}, moto {moto.__version__}")')" \
BI_TOTAL="$((total_s / 60)) min $((total_s % 60)) s" \
    "$python" - "$raw" "$manifest" "$report" <<'PY'
import json, os, statistics, sys
raw, manifest, report = sys.argv[1:4]
env = os.environ
m = json.load(open(manifest))
with open(raw) as f:
    header = f.readline().rstrip("\n").split("\t")
    rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
cases, tools = env["BI_CASES"].split(), env["BI_TOOLS"].split()
names = {"autoloader": "Autoloader", "pyiceberg": "pyiceberg"}


def stat(values, fmt):
    if not values:
        return "–"
    med, lo, hi = fmt(statistics.median(values)), fmt(min(values)), fmt(max(values))
    return med if lo == hi else f"{med} ({lo}–{hi})"


def metric(r, key):
    s = float(r["seconds"] or 0) or float("nan")
    mb = int(r["bytes_read"] or 0) / 1e6
    return {
        "rows": float(r["rows"]), "mb": mb, "s": s, "rps": float(r["rows"]) / s, "mbps": mb / s,
        "rss": int(r["rss_kb"] or 0) / 1024, "cpu": float(r["cpu_s"] or 0),
        "sys": float(r["sys_s"] or 0), "csw": float(r["cswitches"] or 0),
        "wmb": int(r["bytes_written"] or 0) / 1e6,
    }[key]


def cell(tool, case, key, fmt):
    ok = [r for r in rows if r["tool"] == tool and r["case"] == case and r["status"] == "SUCCESS"]
    return stat([metric(r, key) for r in ok], fmt)


num = lambda v: f"{v:,.0f}"
one = lambda v: f"{v:,.1f}"
two = lambda v: f"{v:,.2f}"
out = []
w = out.append
w("# Ingestion benchmark")
w("")
w("Loading the same files into a new Iceberg table: the release `autoloader-worker` executing one")
w("manual run, against pyiceberg's own append (`bench/ingest/pyiceberg_append.py`). Each cell is the")
w("median (min–max) over the successful runs. MB = 10^6 bytes of source files read; rows/s and MB/s")
w("are rows and source bytes over the seconds. Peak RSS is the process's maximum resident set size")
w("(`/usr/bin/time -v`) in MiB; CPU is its user + system seconds (the worker's include its start-up")
w("and idle seconds, a few tens of milliseconds; pyiceberg's include the interpreter's start-up and")
w("imports, about 0.65 s), \"of it system\" the system part, and context switches the voluntary ones.")
w("")
w("| | |")
w("|---|---|")
w(f"| command | `make bench-ingest` (`scripts/bench-ingest.sh`), {env['BI_REPEATS']} runs of each case and tool |")
w(f"| date | {env['BI_DATE']} |")
w(f"| commit | `{env['BI_COMMIT']}` |")
w(f"| machine | {env['BI_MACHINE']} |")
w(f"| software | {env['BI_SOFTWARE']} |")
w(f"| total time | {env['BI_TOTAL']} (build, data generation and upload included when they happened) |")
w("")
w(f"**Data.** {m['rows']:,} event rows in {m['files']} files of each format ({m['rows_per_file']:,} rows "
  f"a file): JSON lines {m['json_bytes'] / 1e6:,.0f} MB, Parquet {m['parquet_bytes'] / 1e6:,.0f} MB "
  f"({m['parquet_compression']}, one row group a file, written by pyarrow). Columns: "
  + ", ".join(f"`{c}`" for c in m["columns"])
  + ". In the JSON lines the two timestamps are RFC 3339 strings (`2026-01-01T00:00:00.123456Z`), "
  "so both tools load them as strings; in Parquet they are `timestamp[us, UTC]`. "
  f"`message` is {m['message_chars']} characters, `url` {m['url_chars']}, "
  "`referrer` is null in 30 % of the rows. A JSON line averages "
  f"{m['json_bytes'] / m['rows']:.0f} bytes. The `jsongz` cases read the same JSON files gzipped "
  "(`gzip -6`, `.json.gz`); their MB are compressed bytes.")
w("")
w("**How.** Autoloader: a fresh database migrated by `autoloader-api --migrate-only`, one ingestion "
  "(schedule off, `max_files_per_run` 1000, `max_bytes_per_run` 10^11) and one manual run inserted "
  "with SQL, then a worker started for it; seconds = the run's `finished_at - started_at` (claim to "
  "outcome: catalog, listing, reading, Parquet writing, commit). pyiceberg: a fresh database on the "
  "same PostgreSQL as its SQL catalog, a local warehouse, every file read with pyarrow and the tables "
  "concatenated in memory, then one `create_table` and one `append`; seconds from opening the catalog "
  "to the committed append (interpreter start-up and imports excluded). Both write zstd Parquet into "
  "a local warehouse; the source files are in the page cache. The S3 cases read from moto's server "
  "on loopback (`scripts/s3.sh`); pyiceberg fetches each JSON object in one GET, since pyarrow's "
  "`read_json` on an S3 stream makes a ranged GET per 1 MiB block, which moto serves slowly (47 s "
  "instead of 7 s for the 16 files). The tools alternate which goes first in each repeat.")
w("")
w("## Summary")
w("")
w("| case | tool | rows/s | MB/s | seconds | peak RSS MiB |")
w("|---|---|---|---|---|---|")
for case in cases:
    for tool in tools:
        w(f"| {case} | {names[tool]} | {cell(tool, case, 'rps', num)} | {cell(tool, case, 'mbps', one)} "
          f"| {cell(tool, case, 's', two)} | {cell(tool, case, 'rss', num)} |")
w("")
for case in cases:
    w(f"## {case}")
    w("")
    w("| tool | ok runs | rows | MB read | seconds | rows/s | MB/s | peak RSS MiB | CPU s | of it system | context switches | MB written |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for tool in tools:
        mine = [r for r in rows if r["tool"] == tool and r["case"] == case]
        ok = [r for r in mine if r["status"] == "SUCCESS"]
        cells = [stat([metric(r, k) for r in ok], f) for k, f in
                 [("rows", num), ("mb", one), ("s", two), ("rps", num), ("mbps", one), ("rss", num),
                  ("cpu", one), ("sys", one), ("csw", num), ("wmb", one)]]
        w(f"| {names[tool]} | {len(ok)}/{len(mine)} | " + " | ".join(cells) + " |")
    for r in rows:
        if r["case"] == case and r["status"] != "SUCCESS":
            w("")
            w(f"{names[r['tool']]} run {r['repeat']}: {r['status']}: `{r['error']}`")
    w("")
w("## Every run")
w("")
w("| tool | case | run | status | rows | seconds | peak RSS MiB | CPU s | MB written |")
w("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    w(f"| {names[r['tool']]} | {r['case']} | {r['repeat']} | {r['status']} | {int(r['rows'] or 0):,} | "
      f"{float(r['seconds'] or 0):.2f} | {int(r['rss_kb'] or 0) / 1024:,.0f} | {float(r['cpu_s'] or 0):.1f} | "
      f"{int(r['bytes_written'] or 0) / 1e6:,.1f} |")
with open(report, "w") as f:
    f.write("\n".join(out) + "\n")
PY
say "done in $((total_s / 60)) min $((total_s % 60)) s; report: $report (raw: $raw, logs: $logs)"
