#!/usr/bin/env bash
# A private S3-compatible server for tests (moto's server, from the venv scripts/pyenv.sh builds),
# with its state under .local/s3 (git-ignored).
#
#   scripts/s3.sh start   start on a free loopback port if not running, print the endpoint URL
#   scripts/s3.sh url     print the endpoint URL of the running server
#   scripts/s3.sh stop    stop the server (buckets and objects live in its memory: they go too)
#   scripts/s3.sh status  say whether it runs
#
# The server takes any credentials and does not check signatures. The tests use access key `test`,
# secret key `test` and region `us-east-1`, with path-style addressing
# (http://127.0.0.1:PORT/BUCKET/KEY), e.g.
#   AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test aws --endpoint-url "$(scripts/s3.sh url)" s3 ls
# The first port tried is 54340, then upward until one is free. The server runs in its own session,
# so it outlives the command that started it, as PostgreSQL from scripts/pg.sh does.
# Progress goes to stderr; stdout carries only the URL, so `$(scripts/s3.sh start)` works.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
base="$root/.local/s3"
pid_file="$base/pid"
port_file="$base/port"
log="$base/server.log"
lock="$base/lock"

say() { echo "s3.sh: $*" >&2; }

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

url() {
    echo "http://127.0.0.1:$(cat "$port_file")"
}

# An HTTP answer of any status on the port: the server is up and serving.
answers() {
    local port="$1" line=""
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
        IFS= read -r -t 5 line <&3 || exit 1
        [[ "$line" == HTTP/* ]]
    ) 2>/dev/null
}

pid_alive() {
    [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

is_running() {
    pid_alive && [ -f "$port_file" ] && answers "$(cat "$port_file")"
}

start() {
    mkdir -p "$base"
    exec 9>"$lock"
    flock 9
    # First, as it stops a server running from an out-of-date venv before rebuilding it.
    local python
    python="$("$root/scripts/pyenv.sh")" || { say "cannot start: the Python venv with moto is not available"; exit 1; }
    if is_running; then url; return 0; fi
    local server
    server="$(dirname "$python")/moto_server"
    [ -x "$server" ] || { say "cannot start: $server is missing (rebuild with: rm -rf .local/py && scripts/pyenv.sh)"; exit 1; }
    # A server left from before that no longer answers.
    if pid_alive; then stop_server; fi

    # A port nobody listens on can still be taken meanwhile (by another start, or as the local
    # end of an outgoing connection): a server that exits unable to bind tries the next one.
    local port=54340 tries=0
    while ! port_free "$port"; do port=$((port + 1)); done
    echo "$port" >"$port_file"
    # Its own session and no inherited descriptors: it outlives this script and the caller's
    # pipes (a test reading our stdout gets EOF when this script exits).
    setsid "$server" -H 127.0.0.1 -p "$port" </dev/null >"$log" 2>&1 9>&- &
    echo $! >"$pid_file"
    local deadline=$((SECONDS + 60))
    until answers "$port"; do
        if ! pid_alive && [ "$tries" -lt 5 ] && grep -q "Address already in use" "$log"; then
            tries=$((tries + 1))
            say "port $port was taken meanwhile; trying the next one"
            port=$((port + 1))
            while ! port_free "$port"; do port=$((port + 1)); done
            echo "$port" >"$port_file"
            setsid "$server" -H 127.0.0.1 -p "$port" </dev/null >"$log" 2>&1 9>&- &
            echo $! >"$pid_file"
            continue
        fi
        if ! pid_alive; then
            tail -20 "$log" >&2
            say "moto_server exited on start (log: $log)"
            rm -f "$pid_file"
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -20 "$log" >&2
            say "moto_server did not answer on 127.0.0.1:$port within 60 s (log: $log)"
            stop_server
            exit 1
        fi
        sleep 0.1
    done
    say "S3 (moto) is running on 127.0.0.1:$port (log: $log)"
    url
}

stop_server() {
    local pid
    pid="$(cat "$pid_file")"
    kill "$pid" 2>/dev/null || true
    local i
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "moto_server (pid $pid) did not stop on TERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
}

stop() {
    if pid_alive; then
        stop_server
        say "stopped"
    else
        rm -f "$pid_file"
        say "not running"
    fi
}

case "${1:-}" in
    start) start ;;
    url) is_running || { say "not running (scripts/s3.sh start)"; exit 1; }; url ;;
    stop) stop ;;
    status) if is_running; then say "running: $(url)"; else say "stopped"; exit 1; fi ;;
    *) echo "usage: $0 start|url|stop|status" >&2; exit 2 ;;
esac
