#!/usr/bin/env bash
# What the browser tests (tests/tests/browser.rs) need, installed when missing:
#
#   scripts/chromium.sh     install Debian's Chromium (as root) and axe-core, or say loudly why not
#
# * /usr/bin/chromium, Debian's package `chromium`: installed with apt-get when it is missing and
#   this runs as root; otherwise a SKIP banner (the browser tests then skip loudly, and fail on CI).
#   Set AUTOLOADER_CHROMIUM to use another Chromium binary.
# * axe-core, the accessibility checker the tests inject into each page: pinned in
#   tests/browser/package-lock.json, installed with `npm ci --ignore-scripts` into
#   tests/browser/node_modules (git-ignored) when missing or when the lock file changed.
# Progress and banners go to stderr. Never fails: the tests are where a missing piece is reported.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/tests/browser"
log="$root/.local/browser-install.log"
mkdir -p "$root/.local"

say() { echo "chromium.sh: $*" >&2; }
banner() {
    local rule
    rule="$(printf '!%.0s' {1..78})"
    {
        echo "$rule"
        for line in "$@"; do echo "!! $line"; done
        echo "$rule"
    } >&2
}

chromium="${AUTOLOADER_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing Debian's chromium (log: $log)"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -q --no-install-recommends chromium >"$log" 2>&1; then
            apt-get update -q >>"$log" 2>&1
            apt-get install -y -q --no-install-recommends chromium >>"$log" 2>&1
        fi
    fi
    if [ ! -x "$chromium" ]; then
        banner "Browser tests will be SKIPPED: no Chromium at $chromium." \
            "Install Debian's package as root: apt-get install chromium" \
            "(on CI, CI=true, the browser tests fail instead)."
    fi
fi

stamp="$dir/node_modules/.package-lock.sha256"
want="$(sha256sum <"$dir/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$dir/node_modules/axe-core/axe.min.js" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    if command -v npm >/dev/null; then
        say "installing axe-core with npm ci (log: $log)"
        if (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund) >>"$log" 2>&1; then
            echo "$want" >"$stamp"
        fi
    fi
    if [ ! -f "$dir/node_modules/axe-core/axe.min.js" ]; then
        banner "Browser tests will be SKIPPED: axe-core is not installed." \
            "Run: (cd tests/browser && npm ci --ignore-scripts); see $log"
    fi
fi
exit 0
