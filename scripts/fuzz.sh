#!/usr/bin/env bash
# `make fuzz`: schemathesis (property-based API testing from PyPI, in a venv under .local) against
# /openapi.json of a running autoloader-api, with a tenant token and the admin token. Every check
# runs, in every phase (examples, coverage, fuzzing, and the stateful phase, which follows the
# document's links from a created ingestion, run, tenant or token to what can be done with it).
# Reports every 5xx, schema violation and other failed check; exits non-zero when there is any.
#
# The document states every rule a single field has, so a request it allows is accepted. The few
# rules that tie fields together cannot be said in OpenAPI; schemathesis.toml lets only the
# operations they govern answer 422, and names each rule:
#   source-path-fits-source-type, local-path-under-file-roots, s3-options-for-s3-sources,
#   csv-options-for-csv-format, csv-quote-differs, time-for-daily-and-weekly, cron-for-custom,
#   cron-can-fire, frequency-when-enabled, glob-expansion, source-path-bytes,
#   endpoint-in-allowlist, within-operator-caps, patch-leaves-a-valid-definition,
#   expires-in-the-future.
# The API under test and its tenant may read local sources anywhere (AUTOLOADER_FILE_ROOTS=/, the
# tenant's file_roots [/]): no worker runs, so
# nothing is read; it keeps local-path-under-file-roots out of the way of the other rules.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
: "${DATABASE_URL:?DATABASE_URL must be set (make fuzz sets it)}"
venv="$root/.local/fuzz-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==4.*"
fi

port=18181
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
admin="fuzz-admin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
bin="${CARGO_TARGET_DIR:-$root/target}/release/autoloader-api"
"$bin" --migrate-only
token="$("$bin" create-token --tenant fuzz --label "make fuzz" --file-roots / | sed -n 's/^AUTOLOADER_TOKEN=//p')"

# Quotas and the rate limit are off: thousands of generated requests would otherwise spend them
# and test 429s instead of the definitions (tests/tests/isolation.rs tests the limits).
AUTOLOADER_SECRET_KEY="$(head -c 32 /dev/urandom | base64)" \
    AUTOLOADER_TOKEN_RATE_LIMIT=0 AUTOLOADER_DEFAULT_MAX_INGESTIONS=2000000000 \
    AUTOLOADER_DEFAULT_MAX_MANUAL_RUNS_PER_MINUTE=2000000000 \
    AUTOLOADER_API_ADDR="127.0.0.1:$port" AUTOLOADER_ADMIN_TOKEN="$admin" AUTOLOADER_LOG_FORMAT=json AUTOLOADER_FILE_ROOTS=/ \
    RUST_LOG=warn "$bin" --skip-migrations 2>"$root/.local/fuzz-api.log" &
api=$!
trap 'kill $api 2>/dev/null || true; wait $api 2>/dev/null || true' EXIT

report="$root/.local/fuzz-report"
mkdir -p "$report"
status=0
# The tenant's endpoints with its token, then the admin endpoints with the admin token.
# The dry runs are left out: no worker runs here, so every valid request would wait 28 s for its
# 504. Their bodies are checked by the create's validation (fuzzed through POST
# /api/v1/ingestions), and tests/tests/dry_run.rs covers their refusals with a worker.
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" --wait-for-schema 30 \
    --header "Authorization: Bearer $token" --exclude-path-regex '^/api/v1/admin|/dry-run$' \
    --phases examples,coverage,fuzzing,stateful --checks all --max-examples "${FUZZ_EXAMPLES:-50}" --seed 1 --workers 2 \
    --report ndjson --report-ndjson-path "$report/tenant.ndjson" || status=$?
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" --wait-for-schema 30 \
    --header "Authorization: Bearer $admin" --include-path-regex '^/api/v1/admin' \
    --phases examples,coverage,fuzzing,stateful --checks all --max-examples "${FUZZ_EXAMPLES:-50}" --seed 1 --workers 2 \
    --report ndjson --report-ndjson-path "$report/admin.ndjson" || status=$?
if grep -q '"status": *5[0-9][0-9]' "$root/.local/fuzz-api.log" 2>/dev/null; then
    echo "the API logged 5xx responses; see .local/fuzz-api.log" >&2
    status=1
fi
exit "$status"
