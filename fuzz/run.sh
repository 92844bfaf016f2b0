#!/usr/bin/env bash
# Runs every fuzz target for N seconds each (default 60): `fuzz/run.sh 30`.
# TARGETS="token phc" fuzz/run.sh 10 runs a subset. Exits non-zero on the first crash; the
# crashing input is in fuzz/artifacts/<target>/ (copy it to fuzz/regressions/<target>/ once
# fixed, so every later run replays it).
#
# cargo-fuzz needs nightly-only rustc flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1. No sanitizer: keycel forbids unsafe code, so libFuzzer's coverage
# guidance plus Rust's own checks (debug assertions on: overflow, bounds) find the bugs that
# matter here at several times ASan's speed. FUZZ_SANITIZER=address turns ASan on.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-60}"
ALL="credentials basic token phc record_json policy_load policy_eval"
TARGETS="${TARGETS:-$ALL}"
SANITIZER="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2
fi
python3 seeds.py seeds >/dev/null
cargo fuzz build -s "$SANITIZER" -a
for t in $TARGETS; do
    mkdir -p "corpus/$t" "regressions/$t" "artifacts/$t"
    echo "fuzz: $t for ${SECONDS_EACH}s"
    log="artifacts/$t/last-run.log"
    if ! cargo fuzz run -s "$SANITIZER" -a "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz: $t FAILED (crashing input in fuzz/artifacts/$t/, log in $log)" >&2
        exit 1
    fi
    grep -E "^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
done
echo "fuzz: all targets ran ${SECONDS_EACH}s without a crash"
