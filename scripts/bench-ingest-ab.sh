#!/usr/bin/env bash
# Interleaved A/B of the ingestion benchmark: two builds of `autoloader-worker`/`autoloader-api`
# alternate, one run of each case per side per round, the order swapped every round, so that
# drift of a shared machine falls on both sides alike.
#
#   scripts/bench-ingest-ab.sh <dir of build A> <dir of build B>
#
# Settings (environment): AB_ROUNDS (default 6), AB_CASES (default "json-local json-s3
# jsongz-local parquet-local parquet-s3"), AB_OUT (default .local/bench-ingest-ab), and
# DATABASE_URL as for scripts/bench-ingest.sh. Prints, per case and build, the median (min–max)
# seconds of a run and its median CPU seconds, and B's change against A.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
[ $# -eq 2 ] || { echo "usage: $0 <dir of build A> <dir of build B>" >&2; exit 2; }
a="$(cd "$1" && pwd)"
b="$(cd "$2" && pwd)"
rounds="${AB_ROUNDS:-6}"
out="${AB_OUT:-$root/.local/bench-ingest-ab}"
rm -rf "$out"
mkdir -p "$out"
export BENCH_INGEST_TOOLS=autoloader BENCH_INGEST_REPEATS=1
export BENCH_INGEST_CASES="${AB_CASES:-json-local json-s3 jsongz-local parquet-local parquet-s3}"
for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) = 1 ]; then order="B A"; else order="A B"; fi
    for side in $order; do
        if [ "$side" = A ]; then dir="$a"; else dir="$b"; fi
        echo "bench-ingest-ab: round $round, build $side" >&2
        BENCH_INGEST_BIN_DIR="$dir" BENCH_INGEST_COMMIT="$side" \
            BENCH_INGEST_OUT="$out/report-$side-$round.md" \
            scripts/bench-ingest.sh >"$out/log-$side-$round.txt" 2>&1 \
            || echo "bench-ingest-ab: round $round, build $side failed (see $out)" >&2
        cp .local/bench-ingest/results.tsv "$out/results-$side-$round.tsv"
    done
done
python3 - "$out" <<'PY'
import csv, glob, statistics, sys
from collections import defaultdict
runs = defaultdict(lambda: defaultdict(list))
for side in ("A", "B"):
    for f in sorted(glob.glob(f"{sys.argv[1]}/results-{side}-*.tsv")):
        for r in csv.DictReader(open(f), delimiter="\t"):
            if r["status"] == "SUCCESS":
                runs[r["case"]][side].append((float(r["seconds"]), float(r["cpu_s"])))
print("| case | A seconds | A CPU s | B seconds | B CPU s | B against A |")
print("|---|---:|---:|---:|---:|---:|")
for case, sides in runs.items():
    cells = []
    for side in ("A", "B"):
        s = [x[0] for x in sides[side]] or [float("nan")]
        c = [x[1] for x in sides[side]] or [float("nan")]
        cells += [f"{statistics.median(s):.2f} ({min(s):.2f}–{max(s):.2f})", f"{statistics.median(c):.2f}"]
    a, b = (statistics.median([x[0] for x in sides[k]] or [float("nan")]) for k in ("A", "B"))
    print(f"| {case} | " + " | ".join(cells) + f" | {100 * (b - a) / a:+.1f} % |")
PY
