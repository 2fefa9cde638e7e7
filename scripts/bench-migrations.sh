#!/usr/bin/env bash
# How long the migrations that scan or rebuild big tables hold their locks: a scratch database of
# this checkout's cluster, brought to the schema before migration 0015, filled with N runs and N
# ledger rows (default 1,000,000) across 1,000 ingestions, then each later migration applied with
# `psql -f` and timed. sqlx applies a migration file in one transaction, so its locks are held for
# the whole of the time printed. docs/DEPLOYMENT.md, "Upgrades while workers run", quotes it.
#
#   scripts/bench-migrations.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
base="${DATABASE_URL:-$(scripts/pg.sh url)}"
url="${base%/*}/bench_migrations"
psql -q "$base" -c "drop database if exists bench_migrations" -c "create database bench_migrations"
trap 'psql -q "$base" -c "drop database if exists bench_migrations"' EXIT
first=20261130000015
for f in migrations/*.sql; do
    v="$(basename "$f" | cut -d_ -f1)"
    [ "$v" -lt "$first" ] && psql -q -v ON_ERROR_STOP=1 "$url" -f "$f" >/dev/null
done
psql -q -v ON_ERROR_STOP=1 -v rows="$rows" "$url" <<'SQL'
insert into tenants (id, name) values ('00000000-0000-7000-8000-000000000001', 'bench');
insert into ingestions (id, tenant_id, name, source_type, source_path, format_type, destination_table)
select ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
       '00000000-0000-7000-8000-000000000001', 'bench-' || g, 'local', 'file:///bench/', 'json',
       'bench.events'
from generate_series(1, 1000) g;
insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for, status, attempt,
                  worker_id, queued_at, started_at, finished_at, files_processed, rows_ingested,
                  bytes_read)
select (lpad(to_hex((extract(epoch from t) * 1000)::bigint), 12, '0') || '7'
        || lpad(to_hex(g % 4096), 3, '0') || '8' || substr(md5(g::text), 1, 15))::uuid,
       ('00000000-0000-7000-8000-' || lpad(to_hex(g % 1000 + 1), 12, '0'))::uuid,
       '00000000-0000-7000-8000-000000000001', 'scheduler', t, 'SUCCESS', 1, 'bench', t, t,
       t + interval '1 second', 1, 10, 100
from (select g, now() - interval '30 days' + make_interval(secs => g * 2.5) as t
      from generate_series(1, :rows) g) s;
insert into loaded_files (ingestion_id, path, size_bytes, last_modified, run_id, attempt,
                          snapshot_id, rows_loaded)
select ('00000000-0000-7000-8000-' || lpad(to_hex(g % 1000 + 1), 12, '0'))::uuid,
       format('file:///bench/dt=%s/part-%s.json', g / 1000, g), 10, now(),
       '00000000-0000-7000-8000-0000000000ff', 1, 1, 1
from generate_series(1, :rows) g;
vacuum analyze;
SQL
echo "| rows | runs (with indexes) | loaded_files (with indexes) |"
echo "|---:|---:|---:|"
psql -qtA -F' | ' "$url" -c "select '| $rows', pg_size_pretty(pg_total_relation_size('runs')),
    pg_size_pretty(pg_total_relation_size('loaded_files')) || ' |'"
echo
echo "| migration | seconds |"
echo "|---|---:|"
for f in migrations/*.sql; do
    v="$(basename "$f" | cut -d_ -f1)"
    [ "$v" -lt "$first" ] && continue
    s=$(date +%s.%N)
    psql -q -v ON_ERROR_STOP=1 "$url" -f "$f" >/dev/null
    e=$(date +%s.%N)
    printf '| %s | %.2f |\n' "$(basename "$f" .sql)" "$(echo "$e - $s" | bc)"
done
