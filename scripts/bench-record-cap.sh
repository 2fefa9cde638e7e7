#!/usr/bin/env bash
# Hostile records: one huge record (1 GiB by default) in a JSON-lines file, in a file that is one
# JSON array, and in a CSV file, each loaded by the release `autoloader-worker` into a table that
# already exists. Reports each run's outcome, duration and the worker's peak RSS. With the record
# cap (AUTOLOADER_MAX_RECORD_BYTES, 16 MiB by default) every run fails naming the file and the
# cap, in bounded memory. See BENCHMARKS.md, "Hostile records".
#
#   scripts/bench-record-cap.sh        (or `make bench-record-cap`)
#
# Settings (environment):
#   BENCH_RECORD_MIB         size of the huge record in MiB (default 1024)
#   BENCH_RECORD_CASES       default "json-lines json-array csv"
#   BENCH_RECORD_BIN_DIR     use the autoloader-worker and autoloader-api in this directory (for
#                            instance a build from before the cap) instead of building the checkout
#   BENCH_RECORD_LABEL       what the report calls that build (default: the commit)
#   BENCH_RECORD_ENV         extra worker environment, e.g. "AUTOLOADER_MAX_RECORD_BYTES=1024"
#   BENCH_RECORD_TIMEOUT     seconds one run may take (default 600)
#   BENCH_RECORD_OUT         the report is appended here (default bench/results/record-cap.md)
#   DATABASE_URL             a PostgreSQL server to create scratch databases on (default: the local
#                            cluster of scripts/pg.sh)
#
# The files are generated once into .local/bench-record-cap/data (git-ignored, 3 GiB by default).
# Each case gets a fresh database and warehouse: run 1 loads a small file (creating the table),
# run 2 the huge one, in one worker started for the case under `/usr/bin/time -v`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

mib="${BENCH_RECORD_MIB:-1024}"
cases="${BENCH_RECORD_CASES:-json-lines json-array csv}"
timeout="${BENCH_RECORD_TIMEOUT:-600}"
report="${BENCH_RECORD_OUT:-$root/bench/results/record-cap.md}"
work="$root/.local/bench-record-cap"
data="$work/data-$mib"
say() { echo "bench-record-cap: $*" >&2; }

[ -x /usr/bin/time ] || { say "/usr/bin/time is missing (apt-get install time)"; exit 1; }
command -v psql >/dev/null || { say "psql is missing (apt-get install postgresql-client)"; exit 1; }

if [ -n "${BENCH_RECORD_BIN_DIR:-}" ]; then
    bin_dir="$(cd "$BENCH_RECORD_BIN_DIR" && pwd)"
    label="${BENCH_RECORD_LABEL:-binaries from $bin_dir}"
else
    say "building autoloader-worker and autoloader-api (release)"
    SQLX_OFFLINE="${SQLX_OFFLINE:-true}" cargo build --release -q -p autoloader-worker -p autoloader-api
    bin_dir="$root/target/release"
    label="${BENCH_RECORD_LABEL:-$(git rev-parse --short HEAD)}"
fi

# --- data: a small file and a huge one per case ------------------------------------------------
blob() { head -c "$((mib << 20))" /dev/zero | tr '\0' a; }
make_case() {
    local dir="$data/$1"
    [ -f "$dir/.done" ] && return
    rm -rf "$dir"
    mkdir -p "$dir"
    case "$1" in
    json-lines)
        printf '{"id": 0, "blob": "small"}\n' >"$dir/a-small.json"
        { printf '{"id": 1, "blob": "'; blob; printf '"}\n'; } >"$dir/b-huge.json" ;;
    json-array)
        printf '[{"id": 0, "blob": "small"}]' >"$dir/a-small.json"
        { printf '[{"id": 1, "blob": "'; blob; printf '"}]'; } >"$dir/b-huge.json" ;;
    csv)
        printf 'id,blob\n0,small\n' >"$dir/a-small.csv"
        { printf 'id,blob\n1,'; blob; printf '\n'; } >"$dir/b-huge.csv" ;;
    esac
    touch -d '2020-01-01' "$dir"/a-small.*
    touch "$dir/.done"
}

base_url="${DATABASE_URL:-$("$root/scripts/pg.sh" start)}"
url_query=""
case "$base_url" in *\?*) url_query="?${base_url#*\?}" ;; esac
url_prefix="${base_url%%\?*}"
url_prefix="${url_prefix%/*}"
db_url() { echo "$url_prefix/$1$url_query"; }
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql "$base_url" -qAtX -v ON_ERROR_STOP=1 "$@"; }

worker_time_pid=""
stop_worker() {
    if [ -n "$worker_time_pid" ] && kill -0 "$worker_time_pid" 2>/dev/null; then
        local w
        w="$(pgrep -P "$worker_time_pid" || true)"
        [ -n "$w" ] && kill -TERM "$w" 2>/dev/null || true
        wait "$worker_time_pid" 2>/dev/null || true
    fi
    worker_time_pid=""
}
trap stop_worker EXIT

time_field() { sed -n "s/^[[:space:]]*$2: //p" "$1" | head -1; }

# Queues a manual run of the case's ingestion and waits for it; prints "status<TAB>seconds<TAB>error".
run_once() {
    local url="$1" run_id status deadline=$((SECONDS + timeout))
    run_id="$(psql "$url" -qAtX -v ON_ERROR_STOP=1 -c "
        insert into runs (id, ingestion_id, tenant_id, triggered_by)
        select gen_random_uuid(), id, tenant_id, 'manual' from ingestions returning id" | head -1)"
    while :; do
        status="$(psql "$url" -qAtX -c "select status from runs where id = '$run_id'")"
        case "$status" in SUCCESS | FAILED) break ;; esac
        if ! kill -0 "$worker_time_pid" 2>/dev/null; then status="EXITED"; break; fi
        if [ "$SECONDS" -ge "$deadline" ]; then status="TIMEOUT"; break; fi
        sleep 0.2
    done
    psql "$url" -qAtX -F $'\t' -c "
        select '$status', round(extract(epoch from coalesce(finished_at, now()) - started_at)::numeric, 2),
               left(replace(replace(coalesce(error, ''), E'\t', ' '), E'\n', ' '), 300)
        from runs where id = '$run_id'"
}

rows=()
for case in $cases; do
    say "$case: generating the files (once)"
    make_case "$case"
    db="bench_record_${case//-/_}"
    url="$(db_url "$db")"
    warehouse="$work/warehouse-$case"
    timef="$work/$case.time"
    log="$work/$case.log"
    rm -rf "$warehouse"
    psql_admin -c "drop database if exists $db with (force)" -c "create database $db"
    DATABASE_URL="$url" RUST_LOG=warn "$bin_dir/autoloader-api" --migrate-only >/dev/null
    format=json
    [ "$case" = csv ] && format=csv
    psql "$url" -qAtX -v ON_ERROR_STOP=1 -v path="file://$data/$case/" -v format="$format" \
        -v roots="$data" <<'SQL'
with t as (insert into tenants (id, name, file_roots)
           values (gen_random_uuid(), 'bench', array[:'roots']) returning id)
insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                        destination_table, options, schedule_enabled)
select gen_random_uuid(), t.id, 'hostile', 'local', :'path', :'format', 'bench.hostile',
       '{"max_files_per_run": 1}'::jsonb, false
from t;
SQL
    extra=()
    [ -n "${BENCH_RECORD_ENV:-}" ] && read -r -a extra <<<"$BENCH_RECORD_ENV"
    /usr/bin/time -v -o "$timef" env DATABASE_URL="$url" AUTOLOADER_FILE_ROOTS="$data" \
        AUTOLOADER_WAREHOUSE="$warehouse" AUTOLOADER_LOG_FORMAT=json RUST_LOG=warn \
        "${extra[@]}" "$bin_dir/autoloader-worker" >"$log" 2>&1 &
    worker_time_pid=$!
    IFS=$'\t' read -r s1 _ _ <<<"$(run_once "$url")"
    IFS=$'\t' read -r status seconds error <<<"$(run_once "$url")"
    stop_worker
    rss_mib="$(( $(time_field "$timef" 'Maximum resident set size (kbytes)') / 1024 ))"
    say "$case: small file $s1; huge file $status in ${seconds} s, peak RSS ${rss_mib} MiB: $error"
    rows+=("| $case | $mib MiB | $status | $seconds | $rss_mib | ${error//|/\\|} |")
    psql_admin -c "drop database if exists $db with (force)"
    rm -rf "$warehouse"
done

mkdir -p "$(dirname "$report")"
{
    echo
    echo "### $label, $(date -u +%Y-%m-%dT%H:%M:%SZ)${BENCH_RECORD_ENV:+, $BENCH_RECORD_ENV}"
    echo
    echo "| case | record | run | seconds | peak RSS MiB | error |"
    echo "|---|---|---|---:|---:|---|"
    printf '%s\n' "${rows[@]}"
} | tee -a "$report"
