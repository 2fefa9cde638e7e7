#!/usr/bin/env bash
# Recovery times of worker hosts that lose the network: runs tests/tests/netns.rs (worker hosts in
# network namespaces, a link cut mid-run or while idle; root only) BENCH_NETNS_ROUNDS times
# (default 5), collects the RECOVERY line each test prints, and prints a markdown table of the
# medians (with min and max) of each measurement, against the tests' lease settings. The raw
# lines go to bench/results/raw/netns.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
: "${DATABASE_URL:?DATABASE_URL must be set (make bench-netns sets it)}"
rounds="${BENCH_NETNS_ROUNDS:-5}"
out="$root/bench/results"
mkdir -p "$out"
mkdir -p "$out/raw"
raw="$out/raw/netns.txt"
: >"$raw"

cargo build -q -p autoloader-worker -p autoloader-api
for i in $(seq 1 "$rounds"); do
    echo "bench-netns: round $i of $rounds" >&2
    log="$(cargo test -q -p autoloader-tests --test netns -- --nocapture --test-threads 1 2>&1)" || {
        echo "$log" | tail -40 >&2
        echo "bench-netns: the tests failed in round $i" >&2
        exit 1
    }
    if echo "$log" | grep -q 'SKIPPED'; then
        echo "bench-netns: the tests were skipped (root and iproute2 are needed)" >&2
        exit 1
    fi
    echo "$log" | grep -o 'RECOVERY .*' >>"$raw"
done

echo "Recovery of worker hosts cut off from PostgreSQL ($rounds rounds of \`tests/tests/netns.rs\`,"
echo "$(grep -o 'lease_ttl=[0-9]*' "$raw" | head -1 | cut -d= -f2) s lease, 1 s heartbeats; $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| test | measurement | median | min | max |"
echo "|---|---|---|---|---|"
awk '
{
    test = ""; for (i = 2; i <= NF; i++) {
        split($i, kv, "=");
        if (kv[1] == "test") { test = kv[2]; continue }
        if (kv[1] == "lease_ttl" || kv[1] == "heartbeat") continue;
        key = test SUBSEP kv[1]; n[key]++; v[key, n[key]] = kv[2] + 0; keys[key] = 1
    }
}
END {
    for (key in keys) {
        m = n[key];
        for (i = 1; i <= m; i++) a[i] = v[key, i];
        for (i = 2; i <= m; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
        med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2;
        split(key, parts, SUBSEP);
        printf "| %s | %s | %.2f s | %.2f s | %.2f s |\n", parts[1], parts[2], med, a[1], a[m]
    }
}' "$raw" | sort
