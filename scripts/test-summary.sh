#!/usr/bin/env bash
# Adds up cargo test's per-binary "test result:" lines into one closing line, and fails when any
# test failed or none ran at all.
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
  END {
    printf "\nall test binaries (%d): %d passed, %d failed, %d ignored\n", binaries, passed, failed, ignored
    printf "tests: %d passed, %d failed\n", passed, failed
    exit (failed > 0 || passed == 0) ? 1 : 0
  }
' "$1"
