#!/usr/bin/env bash
# Adds up cargo test's per-binary "test result:" lines into one closing line, and fails when any
# test failed or none ran at all. Tests that could not run here and said so (a "!! SKIPPED:"
# banner, e.g. the network-namespace tests without root) are named in it: cargo counts them as
# passed.
set -euo pipefail
awk '
  /^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i + 1) ~ /^passed/) passed += $i
      if ($(i + 1) ~ /^failed/) failed += $i
      if ($(i + 1) ~ /^ignored/) ignored += $i
    }
    binaries++
  }
  /^!! SKIPPED: / { skipped++; names = names "\n  " $3 }
  END {
    printf "\nall test binaries (%d): %d passed, %d failed, %d ignored\n", binaries, passed, failed, ignored
    printf "tests: %d passed, %d failed\n", passed, failed
    if (skipped > 0) printf "SKIPPED (counted as passed above, could not run here): %d%s\n", skipped, names
    exit (failed > 0 || passed == 0) ? 1 : 0
  }
' "$1"
