#!/usr/bin/env bash
# Adds up cargo test's per-binary "test result:" lines into one closing line, and fails when any
# test failed or none ran at all. Tests that could not run here (no Chromium for the browser
# tests, no network namespaces without root) print a line starting "SKIPPED: " or "!! SKIPPED: "
# past the test harness's capture; they are counted and repeated at the end, so a skip is never
# mistaken for a pass.
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
  /^(!! )?SKIPPED: / { skipped++; reasons[skipped] = $0 }
  END {
    printf "\nall test binaries (%d): %d passed, %d failed, %d ignored\n", binaries, passed, failed, ignored
    printf "tests: %d passed, %d failed, %d skipped\n", passed - skipped, failed, skipped
    if (skipped > 0) {
      printf "\n!! %d test(s) SKIPPED, not passed:\n", skipped
      for (i = 1; i <= skipped; i++) printf "!!   %s\n", reasons[i]
    }
    exit (failed > 0 || passed == 0) ? 1 : 0
  }
' "$1"
