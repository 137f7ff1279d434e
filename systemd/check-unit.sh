#!/bin/sh
# Checks the systemd unit (make systemd-check, part of make test):
#  1. `systemd-analyze security --offline=true`: prints the exposure score and fails
#     above MAX_EXPOSURE (1.1; --threshold takes it times ten);
#  2. `systemd-analyze verify`, with ExecStart pointed at this checkout's console script
#     (verify fails when the ExecStart binary does not exist on this machine).
# Skipped with a note where systemd-analyze (or its --offline mode, systemd >= 250) is
# missing.
set -eu
unit=${1:-systemd/account-watcher.service}
exe=${2:-.venv/bin/account-watcher}
MAX_EXPOSURE=1.1

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd-check: systemd-analyze not found: unit checks skipped"
    exit 0
fi
if ! systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    echo "systemd-check: systemd-analyze has no --offline mode (systemd < 250): skipped"
    exit 0
fi

report=$(systemd-analyze security --offline=true "$unit" 2>&1 || true)
score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
    printf '%s\n' "$report"
    echo "systemd-check: no exposure score for $unit" >&2
    exit 1
fi
echo "systemd-check: $unit exposure $score (at most $MAX_EXPOSURE)"
threshold=$(echo "$MAX_EXPOSURE" | awk '{ printf "%d", $1 * 10 + 0.5 }')
if ! systemd-analyze security --offline=true --threshold="$threshold" "$unit" >/dev/null 2>&1; then
    printf '%s\n' "$report" | grep '✗' || true
    echo "systemd-check: exposure $score is above $MAX_EXPOSURE" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
exe_path=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")
sed "s|^ExecStart=/opt/account-watcher/bin/account-watcher|ExecStart=$exe_path|" "$unit" \
    >"$tmp/$(basename "$unit")"
systemd-analyze verify "$tmp/$(basename "$unit")"
echo "systemd-check: systemd-analyze verify ok"
