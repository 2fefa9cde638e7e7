#!/usr/bin/env bash
# `make run`: migrate, then the API and one worker in the foreground against $DATABASE_URL.
# Ctrl-C stops both gracefully (the worker finishes or gives back its runs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/target/release"
: "${DATABASE_URL:?DATABASE_URL must be set (make run sets it)}"
export DATABASE_URL

"$bin/autoloader-api" --migrate-only
# A development tenant and a fresh token for it, printed for curl.
"$bin/autoloader-api" create-token --tenant dev --label "make run"
if [ -z "${AUTOLOADER_ADMIN_TOKEN:-}" ]; then
    AUTOLOADER_ADMIN_TOKEN="dev-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    echo "AUTOLOADER_ADMIN_TOKEN=$AUTOLOADER_ADMIN_TOKEN (generated for this session)"
fi
export AUTOLOADER_ADMIN_TOKEN
# Local sources may read from .local/files unless told otherwise; tables go to .local/warehouse.
if [ -z "${AUTOLOADER_FILE_ROOTS:-}" ]; then
    AUTOLOADER_FILE_ROOTS="$root/.local/files"
    mkdir -p "$AUTOLOADER_FILE_ROOTS"
    echo "AUTOLOADER_FILE_ROOTS=$AUTOLOADER_FILE_ROOTS (file:// sources may read under it)"
fi
export AUTOLOADER_FILE_ROOTS
export AUTOLOADER_WAREHOUSE="${AUTOLOADER_WAREHOUSE:-$root/.local/warehouse}"

pids=()
stop() {
    trap - INT TERM EXIT
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait || true
}
trap stop INT TERM EXIT

"$bin/autoloader-api" --skip-migrations &
pids+=($!)
"$bin/autoloader-worker" &
pids+=($!)
echo "Autoloader: API on http://${AUTOLOADER_API_ADDR:-127.0.0.1:8080}, one worker; Ctrl-C stops both." >&2
# Either process exiting (or Ctrl-C) stops the other.
wait -n "${pids[@]}"
