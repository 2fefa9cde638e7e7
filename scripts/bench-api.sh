#!/usr/bin/env bash
# The API under load: `GET /api/v1/ingestions/{id}/schedule` and `POST /api/v1/schedules/preview`
# with 64 concurrent connections (wrk, from Debian's packages, installed here when missing),
# against the release build. Prints a markdown table; raw wrk output goes to bench/results/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
: "${DATABASE_URL:?DATABASE_URL must be set (make bench sets it)}"
duration="${BENCH_API_SECONDS:-20}"
connections="${BENCH_API_CONNECTIONS:-64}"

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then echo "wrk is missing: apt-get install wrk" >&2; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi

bin="$root/target/release/autoloader-api"
out="$root/bench/results"
mkdir -p "$out"
port=18281
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
"$bin" --migrate-only
token="$("$bin" create-token --tenant api-bench --label "bench" | sed -n 's/^AUTOLOADER_TOKEN=//p')"
AUTOLOADER_API_ADDR="127.0.0.1:$port" RUST_LOG=warn AUTOLOADER_LOG_FORMAT=json "$bin" --skip-migrations \
    2>"$out/api-bench-server.log" &
api=$!
trap 'kill $api 2>/dev/null || true; wait $api 2>/dev/null || true' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

name="bench-$(date +%s%N)"
id="$(curl -fs -X POST "$base/api/v1/ingestions" -H "Authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{
      "name": "'"$name"'", "source_type": "s3", "source_path": "s3://bench-bucket/in/",
      "format_type": "json", "destination_table": "bench.events", "schedule_frequency": "daily",
      "schedule_time": "09:00", "schedule_timezone": "Europe/London", "schedule_enabled": false }' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"

lua="$(mktemp)"
cat >"$lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"schedule_frequency": "custom", "schedule_cron": "*/15 9-17 * * MON-FRI", "schedule_timezone": "America/New_York", "count": 5}'
LUA

run() {
    local key="$1" label="$2"; shift 2
    wrk -t2 -c"$connections" -d"${duration}s" --latency -H "Authorization: Bearer $token" "$@" \
        >"$out/wrk-$key.txt"
    python3 - "$label" "$out/wrk-$key.txt" <<'PY'
import re, sys
label, path = sys.argv[1], sys.argv[2]
text = open(path).read()
def ms(v):
    n, unit = float(re.match(r"([\d.]+)", v).group(1)), re.search(r"(us|ms|s)$", v).group(1)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = int(errors.group(1)) if errors else 0
print(f"| {label} | {p50:.2f} | {p99:.2f} | {rps:,.0f} | {errors} |")
PY
}

echo "| endpoint (${connections} connections, ${duration} s, wrk -t2) | p50 ms | p99 ms | req/s | non-2xx |"
echo "|---|---|---|---|---|"
run schedule "GET /api/v1/ingestions/{id}/schedule" "$base/api/v1/ingestions/$id/schedule"
run preview "POST /api/v1/schedules/preview" -s "$lua" "$base/api/v1/schedules/preview"
rm -f "$lua"
