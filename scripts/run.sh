#!/usr/bin/env bash
# `make run`: migrate, then the API and one worker in the foreground against $DATABASE_URL.
#
# Any way of stopping it stops both processes. A SIGINT (Ctrl-C), SIGTERM or SIGHUP to this script
# or to the `make` running it sends each process one SIGTERM, so they stop gracefully (the worker
# finishes or gives back its runs); a further signal, half a second or more later, sends another,
# and they exit at once. Either process exiting stops the other. The two run in sessions of their
# own, so a signal to the whole process group (Ctrl-C, `timeout`) reaches them once, through this
# script, and never twice. A watchdog, also in a session of its own, covers what traps cannot: this
# script killed with SIGKILL (it stops both), its parent killed with SIGKILL, or its parent handling
# a signal sent to it alone and not passing it on, as `make` does with SIGINT and SIGHUP (it asks
# this script to stop).
#
# AUTOLOADER_BIN_DIR names the directory of the binaries (default: target/release).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${AUTOLOADER_BIN_DIR:-$root/target/release}"

# The parent of process $1; fails once the process has exited (a zombie counts as exited).
ppid_of() {
    local stat fields
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    read -ra fields <<<"${stat##*) }"
    [ "${fields[0]}" != Z ] || return 1
    echo "${fields[1]}"
}

# Which of SIGHUP, SIGINT and SIGTERM process $1 has a handler for (a bit mask).
caught_of() {
    local key value
    while read -r key value; do
        if [ "$key" = SigCgt: ]; then
            echo $((16#$value & 0x4003))
            return 0
        fi
    done <"/proc/$1/status"
    return 1
}

# $1: this script's pid, $2: its parent's, $3: the parent's caught_of when this script started.
watchdog() {
    local script="$1" parent="$2" caught="$3" ppid
    shift 3
    while ppid="$(ppid_of "$script")"; do
        if [ "$parent" != 1 ] && {
            [ "$ppid" != "$parent" ] || [ "$(caught_of "$parent" 2>/dev/null || echo 0)" != "$caught" ]
        }; then
            echo "run.sh: its parent process is stopping or gone; stopping Autoloader" >&2
            kill -USR1 "$script" 2>/dev/null || true
            return 0
        fi
        sleep 1
    done
    echo "run.sh: killed before it could stop the API and the worker; stopping them" >&2
    kill -TERM "$@" 2>/dev/null || true
}

if [ "${1:-}" = --watchdog ]; then
    shift
    watchdog "$@"
    exit 0
fi

# Taken first, so that a signal the parent handles while the migrations run is noticed too.
parent_caught="$(caught_of "$PPID" 2>/dev/null || echo 0)"
: "${DATABASE_URL:?DATABASE_URL must be set (make run sets it)}"
export DATABASE_URL

pids=()
watchdog_pid=""
stopping=0
stopped_at=0
status=0

# SIGTERM to both processes: the first asks them to stop gracefully, a second to exit at once.
terminate() {
    if [ "${#pids[@]}" -gt 0 ]; then kill -TERM "${pids[@]}" 2>/dev/null || true; fi
}

# A signal to this script: $1 is the exit status it leaves with.
# shellcheck disable=SC2317  # called from traps
on_signal() {
    local now="${EPOCHREALTIME/[.,]/}"
    status="$1"
    if [ "$stopping" = 1 ]; then
        # One stop often arrives twice at once: `timeout` or a terminal signals the process group,
        # and `make` passes SIGTERM on. Only a signal half a second later or more is another.
        if [ $((now - stopped_at)) -lt 500000 ]; then return 0; fi
        echo "run.sh: signalled again; the API and the worker exit at once" >&2
    else
        stopping=1
        stopped_at="$now"
    fi
    terminate
}

# The watchdog's request: like a first signal, and nothing once stopping.
# shellcheck disable=SC2317  # called from a trap
on_request() {
    if [ "$stopping" = 0 ]; then on_signal 143; fi
}

trap 'on_signal 129' HUP
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap on_request USR1

"$bin/autoloader-api" --migrate-only
[ "$stopping" = 0 ] || exit "$status"
# Secrets are sealed at rest under a key kept in .local/ (made once, readable only by you);
# anything stored in the clear before (or under AUTOLOADER_SECRET_KEY_PREVIOUS) is sealed again.
mkdir -p "$root/.local"
if [ -z "${AUTOLOADER_SECRET_KEY:-}" ]; then
    keyfile="$root/.local/secret-key"
    if [ ! -s "$keyfile" ]; then
        (umask 077 && head -c 32 /dev/urandom | base64 >"$keyfile")
        echo "AUTOLOADER_SECRET_KEY generated in $keyfile"
    fi
    AUTOLOADER_SECRET_KEY="$(cat "$keyfile")"
fi
export AUTOLOADER_SECRET_KEY
"$bin/autoloader-api" rotate-secrets
[ "$stopping" = 0 ] || exit "$status"
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
# A development tenant and a fresh token for it, printed for curl; it may read every file root.
"$bin/autoloader-api" create-token --tenant dev --label "make run" --file-roots "$AUTOLOADER_FILE_ROOTS"
[ "$stopping" = 0 ] || exit "$status"
export AUTOLOADER_WAREHOUSE="${AUTOLOADER_WAREHOUSE:-$root/.local/warehouse}"
# One development tenant: its S3 sources may use this machine's AWS_* credentials. (A shared
# deployment leaves this off, so no tenant reads with the worker's keys.)
export AUTOLOADER_ALLOW_WORKER_CREDENTIALS="${AUTOLOADER_ALLOW_WORKER_CREDENTIALS:-true}"
# S3 servers on this machine (MinIO, moto) may be a development tenant's endpoint.
export AUTOLOADER_S3_ENDPOINT_ALLOWLIST="${AUTOLOADER_S3_ENDPOINT_ALLOWLIST:-127.0.0.0/8,localhost,::1/128}"

# setsid runs each in a new session without forking (a background job is no group leader), so $!
# is the process itself.
setsid "$bin/autoloader-api" --skip-migrations </dev/null &
pids+=($!)
setsid "$bin/autoloader-worker" </dev/null &
pids+=($!)
setsid "$0" --watchdog "$$" "$PPID" "$parent_caught" "${pids[@]}" </dev/null &
watchdog_pid=$!
# A signal that came while they started found fewer processes to stop.
if [ "$stopping" = 1 ]; then terminate; fi
echo "Autoloader: API on http://${AUTOLOADER_API_ADDR:-127.0.0.1:8080}, one worker; Ctrl-C stops both." >&2

# Until either exits or a signal comes; then stop the other and wait for both.
if [ "$stopping" = 0 ]; then
    rc=0
    wait -n "${pids[@]}" || rc=$?
    if [ "$stopping" = 0 ]; then
        stopping=1
        stopped_at="${EPOCHREALTIME/[.,]/}"
        status="$rc"
        echo "run.sh: a process exited (status $rc); stopping the other" >&2
        terminate
    fi
fi
kill "$watchdog_pid" 2>/dev/null || true
for p in "${pids[@]}"; do
    # A signal interrupts the wait (its trap runs); wait again until the process is gone.
    while kill -0 "$p" 2>/dev/null; do wait "$p" || true; done
done
exit "$status"
