#!/usr/bin/env bash
# A private PostgreSQL cluster for development and tests, kept under .local/pg (git-ignored).
#
#   scripts/pg.sh start   initialise once, start if stopped, print the DATABASE_URL
#   scripts/pg.sh url     print the DATABASE_URL of the running cluster
#   scripts/pg.sh stop    stop the cluster (data is kept)
#   scripts/pg.sh status  say whether it runs
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` system user
# (created by the Debian package), or as an `autoloader` user this script creates.
# Progress goes to stderr; stdout carries only the URL, so `$(scripts/pg.sh start)` works.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
base="$root/.local/pg"
data="$base/data"
sock="$base/run"
log="$base/postgres.log"
port_file="$base/port"
db_user=autoloader
db_password=autoloader
db_name=autoloader

say() { echo "pg.sh: $*" >&2; }

find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    return 1
}

ensure_binaries() {
    if bindir="$(find_bindir)"; then return 0; fi
    if [ "$(id -u)" -ne 0 ]; then
        say "no PostgreSQL server binaries found; install them (apt-get install postgresql) or set DATABASE_URL"
        exit 1
    fi
    say "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bindir="$(find_bindir)"
}

# The OS user that owns and runs the cluster: ourselves, unless we are root.
run_as() {
    if [ "$(id -u)" -ne 0 ]; then "$@"; return; fi
    runuser -u "$os_user" -- "$@"
}

pick_os_user() {
    if [ "$(id -u)" -ne 0 ]; then os_user="$(id -un)"; return; fi
    if id postgres >/dev/null 2>&1; then os_user=postgres; return; fi
    if ! id autoloader >/dev/null 2>&1; then
        say "creating system user 'autoloader' to run PostgreSQL (it refuses to run as root)"
        useradd --system --no-create-home --shell /usr/sbin/nologin autoloader
    fi
    os_user=autoloader
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

url() {
    echo "postgres://$db_user:$db_password@127.0.0.1:$(cat "$port_file")/$db_name"
}

is_running() {
    [ -f "$data/postmaster.pid" ] && [ -f "$port_file" ] \
        && "$bindir/pg_isready" -q -h 127.0.0.1 -p "$(cat "$port_file")" >/dev/null 2>&1
}

init_cluster() {
    say "initialising a cluster in $data"
    mkdir -p "$base"
    # The cluster's user must be able to reach its data through the checkout's folders.
    chmod o+x "$root" "$root/.local" 2>/dev/null || true
    install -d -m 0700 "$data" "$sock"
    if [ "$(id -u)" -eq 0 ]; then chown "$os_user" "$data" "$sock" "$base"; fi
    local pwfile
    pwfile="$(mktemp)"
    echo "$db_password" >"$pwfile"
    chmod 0644 "$pwfile"
    run_as "$bindir/initdb" -D "$data" -U "$db_user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$base/initdb.log" 2>&1 \
        || { cat "$base/initdb.log" >&2; rm -f "$pwfile"; exit 1; }
    rm -f "$pwfile"
    cat >>"$data/postgresql.conf" <<CONF
# Autoloader development cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
max_connections = 300
shared_buffers = 256MB
log_min_duration_statement = -1
CONF
}

start() {
    ensure_binaries
    pick_os_user
    if [ -f "$data/PG_VERSION" ] && is_running; then url; return 0; fi
    [ -f "$data/PG_VERSION" ] || init_cluster
    local port=54329
    while ! port_free "$port"; do port=$((port + 1)); done
    echo "$port" >"$port_file"
    touch "$log"
    if [ "$(id -u)" -eq 0 ]; then chown "$os_user" "$log"; fi
    run_as "$bindir/pg_ctl" -D "$data" -l "$log" -o "-p $port" -w -t 60 start >&2 \
        || { tail -20 "$log" >&2; exit 1; }
    run_as "$bindir/psql" -h "$sock" -p "$port" -U "$db_user" -d postgres -qAt \
        -c "select 1 from pg_database where datname = '$db_name'" | grep -q 1 \
        || run_as "$bindir/createdb" -h "$sock" -p "$port" -U "$db_user" "$db_name"
    say "PostgreSQL is running on 127.0.0.1:$port (log: $log)"
    url
}

stop() {
    ensure_binaries
    pick_os_user
    if [ -f "$data/postmaster.pid" ]; then
        run_as "$bindir/pg_ctl" -D "$data" -m fast -w stop >&2
    else
        say "not running"
    fi
}

case "${1:-}" in
    start) start ;;
    url) ensure_binaries; is_running || { say "not running (scripts/pg.sh start)"; exit 1; }; url ;;
    stop) stop ;;
    status) ensure_binaries; if is_running; then say "running: $(url)"; else say "stopped"; exit 1; fi ;;
    *) echo "usage: $0 start|url|stop|status" >&2; exit 2 ;;
esac
