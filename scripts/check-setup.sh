#!/usr/bin/env bash
# CI check of the README's set-up from a checkout in a private directory, as a new user makes it:
# `git clone` into a directory only its owner can enter (mode 0700, like /root), then
#   1. scripts/pg.sh starts a cluster its user (not root) can reach, psql connects, and the
#      permissions of the private directory are unchanged; the cluster is deleted afterwards;
#   2. `make run` stops both the API and the worker however it is stopped: SIGTERM to `make` (as
#      `timeout` or a supervisor sends), SIGINT or SIGHUP to `make` alone (which `make` does not
#      pass on) and SIGKILL to scripts/run.sh.
# Running the whole of `make test` a second time inside the clone would be the literal scenario but
# doubles CI's time; `make test` runs nothing else as another user than the cluster, so these two
# checks cover what depends on the checkout's location, in well under a minute.
# `make run` here uses the debug binaries of this checkout (those `make test` builds; built here
# when missing), or those in AUTOLOADER_BIN_DIR, instead of building release binaries in the clone.
# Prints one PASS or FAIL line per check and exits non-zero on any failure.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
failed=0
pass() { echo "check-setup: PASS: $*"; }
fail() { echo "check-setup: FAIL: $*"; failed=1; }

tmp="$(mktemp -d)"
chmod 0700 "$tmp"
clone="$tmp/autoloader"
make_pid=""
# shellcheck disable=SC2317  # called from a trap
cleanup() {
    if [ -n "$make_pid" ]; then kill -KILL -- "-$make_pid" 2>/dev/null || true; fi
    if [ -d "$clone" ]; then "$clone/scripts/pg.sh" destroy >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

git clone --quiet "$root" "$clone"
cd "$clone"

# 1. The cluster.
url=""
if url="$(scripts/pg.sh start)" && psql "$url" -qAtc 'select 1' | grep -qx 1; then
    mode="$(stat -c %a "$tmp")"
    if [ "$mode" = 700 ]; then
        pass "PostgreSQL runs and answers for a checkout in a 0700 directory (data: $(readlink -f .local/pg))"
    else
        fail "pg.sh changed the private directory's mode to $mode"
    fi
else
    fail "PostgreSQL did not start or answer for a checkout in a 0700 directory"
fi

# 2. Stopping `make run`.
bin_dir="${AUTOLOADER_BIN_DIR:-}"
if [ -z "$bin_dir" ]; then
    bin_dir="$root/target/debug"
    if [ ! -x "$bin_dir/autoloader-api" ] || [ ! -x "$bin_dir/autoloader-worker" ]; then
        (cd "$root" && SQLX_OFFLINE=true cargo build --quiet -p autoloader-api -p autoloader-worker)
    fi
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
api_port=18080
while ! port_free "$api_port"; do api_port=$((api_port + 1)); done

# Whether process $1 is still there (a zombie is not).
alive() {
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    stat="${stat##*) }"
    [ "${stat%% *}" != Z ]
}

# $1: who gets the signal (make or run.sh), $2: the signal.
check_stop() {
    local target="$1" sig="$2" run_pid="" procs="" p i
    # Its own process group with default signal handling, as a job started from a terminal has;
    # CARGO=true skips the release build.
    setsid env --default-signal=HUP,INT,TERM make --no-print-directory run CARGO=true \
        DATABASE_URL="$url" AUTOLOADER_BIN_DIR="$bin_dir" AUTOLOADER_API_ADDR="127.0.0.1:$api_port" \
        >"$tmp/run-$target-$sig.log" 2>&1 &
    make_pid=$!
    disown "$make_pid"
    # Until the API answers and the worker runs (both children of run.sh).
    for i in $(seq 300); do
        run_pid="$(pgrep -P "$make_pid" -f scripts/run.sh || true)"
        if [ -n "$run_pid" ] && ! port_free "$api_port"; then
            procs="$(pgrep -P "$run_pid" -f 'autoloader-(api|worker)' | tr '\n' ' ' || true)"
            [ "$(wc -w <<<"$procs")" -lt 2 ] || break
        fi
        sleep 0.1
    done
    if [ "$(wc -w <<<"$procs")" -lt 2 ]; then
        fail "make run did not start the API and the worker; its output:"
        cat "$tmp/run-$target-$sig.log"
        kill -KILL -- "-$make_pid" 2>/dev/null || true
        make_pid=""
        return
    fi
    if [ "$target" = make ]; then kill -"$sig" "$make_pid"; else kill -"$sig" "$run_pid"; fi
    for i in $(seq 300); do
        local left=""
        for p in $procs; do if alive "$p"; then left="$left $p"; fi; done
        [ -n "$left" ] || break
        sleep 0.1
    done
    if [ -n "$left" ]; then
        fail "SIG$sig to $target left running:$(for p in $left; do printf ' %s' "$(tr '\0' ' ' <"/proc/$p/cmdline")"; done)"
        # shellcheck disable=SC2086  # one word per pid
        kill -KILL $left 2>/dev/null || true
        cat "$tmp/run-$target-$sig.log"
    elif grep -q 'second signal' "$tmp/run-$target-$sig.log"; then
        fail "SIG$sig to $target stopped the API and the worker, but not gracefully (a second signal reached one)"
    else
        pass "SIG$sig to $target stopped the API and the worker gracefully ($((i / 10)).$((i % 10)) s)"
    fi
    kill -KILL -- "-$make_pid" 2>/dev/null || true
    make_pid=""
}

if [ -n "$url" ]; then
    check_stop make TERM
    check_stop make INT
    check_stop make HUP
    check_stop run.sh KILL
fi

if [ "$failed" = 0 ]; then
    echo "check-setup: PASS (set-up from a private directory)"
else
    echo "check-setup: FAIL (set-up from a private directory)"
fi
exit "$failed"
