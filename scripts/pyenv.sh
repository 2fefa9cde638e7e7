#!/usr/bin/env bash
# The Python virtualenv for the ingestion tests, kept under .local/py (git-ignored).
#
#   scripts/pyenv.sh      build the venv if missing or out of date, print its python's path
#
# The packages are pinned in scripts/py-requirements.txt (moto's S3 server, boto3, pyiceberg with
# PostgreSQL and Arrow support) and installed from wheels only. A stamp file holds the hash of the
# requirements file, so once the venv is up to date a call returns at once (a venv whose base
# interpreter has gone is rebuilt too). Editing the requirements rebuilds the venv from scratch on
# the next call, stopping first the S3 server (scripts/s3.sh) that runs from the old one.
# Concurrent calls (parallel test processes) wait for one another on a lock.
# Progress goes to stderr; stdout carries only the python path, so `$(scripts/pyenv.sh)` works.
# Set PYTHON to build from another interpreter than python3 (3.10 or newer).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.local/py"
reqs="$root/scripts/py-requirements.txt"
stamp="$venv/.requirements.sha256"
log="$root/.local/py-install.log"
lock="$root/.local/py.lock"
base_python="${PYTHON:-python3}"

say() { echo "pyenv.sh: $*" >&2; }
fail() { say "$*"; exit 1; }

wanted_stamp() { sha256sum <"$reqs" | cut -d' ' -f1; }

up_to_date() {
    [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]
}

[ -f "$reqs" ] || fail "missing $reqs"
want="$(wanted_stamp)"
if up_to_date; then echo "$venv/bin/python"; exit 0; fi

mkdir -p "$root/.local"
exec 9>"$lock"
flock 9
# Another call may have built it while this one waited for the lock.
if up_to_date; then echo "$venv/bin/python"; exit 0; fi

command -v "$base_python" >/dev/null 2>&1 \
    || fail "cannot build the test venv: '$base_python' is not on PATH (install Python 3.10+ or set PYTHON)"
"$base_python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null \
    || fail "cannot build the test venv: $base_python is $("$base_python" --version 2>&1); 3.10 or newer is needed"

if [ -f "$root/.local/s3/pid" ] && kill -0 "$(cat "$root/.local/s3/pid")" 2>/dev/null; then
    say "stopping the S3 server, which runs from the venv about to be rebuilt"
    "$root/scripts/s3.sh" stop
fi
say "building $venv from $(basename "$reqs") (log: $log)"
rm -rf "$venv"
"$base_python" -m venv "$venv" >"$log" 2>&1 \
    || { tail -20 "$log" >&2; fail "cannot build the test venv: '$base_python -m venv' failed (on Debian: apt-get install python3-venv)"; }
if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input \
    --retries 2 --timeout 30 --only-binary=:all: -r "$reqs" >>"$log" 2>&1; then
    tail -20 "$log" >&2
    fail "cannot build the test venv: pip could not install $(basename "$reqs") (is PyPI reachable? full log: $log)"
fi
"$venv/bin/python" -c 'import moto, boto3, pyiceberg, pyarrow, sqlalchemy, psycopg2' >>"$log" 2>&1 \
    || { tail -20 "$log" >&2; fail "cannot build the test venv: the installed packages do not import (log: $log)"; }
echo "$want" >"$stamp"
say "ready: $venv"
echo "$venv/bin/python"
