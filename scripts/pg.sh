#!/usr/bin/env bash
# A private PostgreSQL cluster for development and tests, one per checkout, found through .local/pg
# (git-ignored).
#
#   scripts/pg.sh start    initialise once, start if stopped, print the DATABASE_URL
#   scripts/pg.sh url      print the DATABASE_URL of the running cluster
#   scripts/pg.sh stop     stop the cluster (data is kept)
#   scripts/pg.sh status   say whether it runs and where its data is
#   scripts/pg.sh destroy  stop the cluster and delete its data
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` system user
# (created by the Debian package), or as an `autoloader` user this script creates.
# The cluster lives in .local/pg itself when its user can reach that directory. When it cannot
# (a checkout inside a private home such as /root, mode 0700) or the path is too long for a Unix
# socket, the cluster lives in /var/lib/autoloader-pg/<first 16 hex digits of the SHA-256 of the
# checkout's path>, owned by the cluster's user, and .local/pg is a symlink to it; the permissions
# of the checkout and its parents are never changed. /var/lib survives reboots and is not swept
# like /var/tmp. Such a directory outlives a checkout deleted without `scripts/pg.sh destroy`; its
# `checkout` file names the checkout it belongs to.
# Progress goes to stderr; stdout carries only the URL, so `$(scripts/pg.sh start)` works.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd -P)"
link="$root/.local/pg"
outside=/var/lib/autoloader-pg
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

# The OS user that owns and runs the cluster: ourselves, unless we are root. From /, so that a
# working directory the cluster's user cannot enter does not matter, and without the lock's
# descriptor, which the server would otherwise hold for as long as it runs.
run_as() {
    if [ "$(id -u)" -ne 0 ]; then "$@" 9>&-; return; fi
    (cd / && runuser -u "$os_user" -- "$@" 9>&-)
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

# The cluster's directory: .local/pg, or where its symlink points.
locate() {
    if [ -L "$link" ]; then base="$(readlink "$link")"; else base="$link"; fi
    data="$base/data"
    sock="$base/run"
    log="$base/postgres.log"
    port_file="$base/port"
}

# Whether the cluster's user can reach (search every directory down to) $1.
reachable() {
    [ "$(id -u)" -ne 0 ] || run_as test -x "$1"
}

# Decide where a new cluster goes (see the header) and make .local/pg lead there.
# Only called when .local/pg holds no cluster.
place_cluster() {
    mkdir -p "$root/.local"
    # What a failed start left (no cluster in it): placed afresh.
    if [ -e "$link" ] || [ -L "$link" ]; then rm -rf "$link"; fi
    # The socket path, .s.PGSQL.<port> included, must fit in 107 bytes.
    if reachable "$root/.local" && [ $((${#link} + 22)) -le 107 ]; then
        mkdir "$link"
        [ "$(id -u)" -ne 0 ] || chown "$os_user" "$link"
    elif [ "$(id -u)" -eq 0 ]; then
        local dir
        dir="$outside/$(printf '%s' "$root" | sha256sum | cut -c1-16)"
        install -d -m 0755 "$outside"
        # A cluster of this checkout whose symlink was deleted is found again; anything else
        # there is what a failed start left.
        if [ ! -f "$dir/data/PG_VERSION" ]; then
            rm -rf "$dir"
            install -d -m 0700 -o "$os_user" "$dir"
        fi
        reachable "$dir" || { say "$os_user cannot reach $dir; check the permissions of its parents"; exit 1; }
        echo "$root" >"$dir/checkout"
        ln -s "$dir" "$link"
        say "$os_user cannot reach $root/.local (or its path is too long for a socket): the cluster lives in $dir"
    else
        say "the path of $link is too long for PostgreSQL's socket; use a shorter checkout path or set DATABASE_URL"
        exit 1
    fi
    locate
}

# A cluster outside the checkout belongs to the checkout named in its `checkout` file. A copied
# checkout (its .local/pg symlink copied too) must not share the original's cluster; a moved one
# keeps its cluster.
check_owner() {
    [ -L "$link" ] && [ -f "$base/checkout" ] || return 0
    local owner
    owner="$(cat "$base/checkout")"
    [ "$owner" != "$root" ] || return 0
    if [ -L "$owner/.local/pg" ] && [ "$(readlink "$owner/.local/pg")" = "$base" ]; then
        say "$link leads to the cluster of $owner; remove the symlink (rm $link) to get a cluster of this checkout's own"
        exit 1
    fi
    echo "$root" >"$base/checkout"
}

# One start, stop or destroy at a time per checkout.
lock() {
    mkdir -p "$root/.local"
    exec 9>"$root/.local/pg.lock"
    flock 9
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
    install -d -m 0700 "$data" "$sock"
    if [ "$(id -u)" -eq 0 ]; then chown "$os_user" "$data" "$sock"; fi
    local pwfile
    pwfile="$(mktemp "$base/pwfile.XXXXXX")"
    echo "$db_password" >"$pwfile"
    if [ "$(id -u)" -eq 0 ]; then chown "$os_user" "$pwfile"; fi
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
    lock
    locate
    check_owner
    [ -f "$data/PG_VERSION" ] || place_cluster
    if [ -f "$data/PG_VERSION" ] && is_running; then url; return 0; fi
    if [ -f "$data/PG_VERSION" ]; then
        reachable "$data" || {
            say "$os_user cannot reach the cluster in $data; scripts/pg.sh destroy deletes it, and the next start makes one it can reach"
            exit 1
        }
    else
        init_cluster
    fi
    touch "$log"
    if [ "$(id -u)" -eq 0 ]; then chown "$os_user" "$log"; fi
    # A port nobody listens on can still be taken: by another start in between, or as the local
    # end of an outgoing connection (54329 and up lie in Linux's ephemeral range). So a start
    # that cannot bind tries the next free port, a few times.
    local port=54329 tries=0
    while :; do
        while ! port_free "$port"; do port=$((port + 1)); done
        echo "$port" >"$port_file"
        local mark
        mark="$(wc -l <"$log")"
        if run_as "$bindir/pg_ctl" -D "$data" -l "$log" -o "-p $port" -w -t 60 start >&2; then
            break
        fi
        tries=$((tries + 1))
        if [ "$tries" -lt 5 ] && tail -n "+$((mark + 1))" "$log" | grep -q "Address already in use"; then
            say "port $port was taken meanwhile; trying the next one"
            port=$((port + 1))
            continue
        fi
        tail -20 "$log" >&2
        exit 1
    done
    run_as "$bindir/psql" -h "$sock" -p "$port" -U "$db_user" -d postgres -qAt \
        -c "select 1 from pg_database where datname = '$db_name'" | grep -q 1 \
        || run_as "$bindir/createdb" -h "$sock" -p "$port" -U "$db_user" "$db_name"
    say "PostgreSQL is running on 127.0.0.1:$port (log: $log)"
    url
}

stop() {
    ensure_binaries
    pick_os_user
    lock
    locate
    if [ -f "$data/postmaster.pid" ]; then
        run_as "$bindir/pg_ctl" -D "$data" -m fast -w stop >&2
    else
        say "not running"
    fi
}

destroy() {
    stop
    if [ -L "$link" ]; then
        # Only a directory this script made: $outside/<16 hex digits>.
        if [[ "$base" =~ ^$outside/[0-9a-f]{16}$ ]]; then rm -rf "$base"; fi
        rm -f "$link"
    else
        rm -rf "$link"
    fi
    say "deleted the cluster ($base)"
}

locate
case "${1:-}" in
    start) start ;;
    url) ensure_binaries; is_running || { say "not running (scripts/pg.sh start)"; exit 1; }; url ;;
    stop) stop ;;
    status) ensure_binaries; if is_running; then say "running: $(url) (data: $data)"; else say "stopped (data: $data)"; exit 1; fi ;;
    destroy) destroy ;;
    *) echo "usage: $0 start|url|stop|status|destroy" >&2; exit 2 ;;
esac
