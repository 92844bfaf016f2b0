#!/usr/bin/env bash
# Deterministic instruction count of the hot path (issue 13): `authorize` from headers with a
# verified-secret cache hit and process-local admission, counted by callgrind inside the
# measured loop only. Fails when it grows more than 10% over the figure recorded in
# `authorize.expected` (re-record after an intended change: `check.sh --record`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
n=2000
if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
    else
        echo "icount: valgrind is missing (apt-get install valgrind)" >&2
        exit 1
    fi
fi
cd "$root"
cargo build -q --release -p keycel --example hot_paths --features test-util
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out/cg" --collect-atstart=no --toggle-collect='*measured*' \
    target/release/examples/hot_paths authorize "$n" 2>"$out/log" || { cat "$out/log" >&2; exit 1; }
total="$(awk '/^(summary|totals):/ {print $2; exit}' "$out/cg")"
if [ -z "$total" ] || [ "$total" = 0 ]; then
    echo "icount: callgrind counted nothing (is the measured loop named 'measured'?)" >&2
    exit 1
fi
per_call=$((total / n))
if [ "${1:-}" = "--record" ]; then
    echo "$per_call" >"$here/authorize.expected"
    echo "icount: recorded $per_call instructions per authorize"
    exit 0
fi
expected="$(tr -d '[:space:]' <"$here/authorize.expected")"
limit=$((expected + expected / 10))
echo "icount: authorize $per_call instructions per call (recorded $expected, limit $limit)"
if [ "$per_call" -gt "$limit" ]; then
    echo "icount: authorize grew more than 10% over the recorded figure" >&2
    exit 1
fi
