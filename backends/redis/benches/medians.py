#!/usr/bin/env python3
"""Prints the medians of the last `cargo bench -p keycel-redis --bench admission` run (from
criterion's estimates.json) and the Redis figures against the PING round trip of the same run."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
med = {}
for group in ("admission", "authorize_cached_with_admission"):
    for d in sorted((root / group).glob("*/new/estimates.json")):
        med[f"{group}/{d.parent.parent.name}"] = json.loads(d.read_text())["median"]["point_estimate"]


def show(ns: float) -> str:
    return f"{ns / 1000:.1f} µs" if ns >= 1000 else f"{ns:.1f} ns"


for name, ns in med.items():
    print(f"{name:55s} {show(ns)}")
rtt = med.get("admission/redis_ping_round_trip")
if rtt:
    for name in ("admission/redis_evalsha_empty_script", "admission/redis_admit", "admission/redis_admit_release", "authorize_cached_with_admission/redis"):
        if name in med:
            over = med[name] - rtt
            print(f"{name}: {med[name] / rtt:.2f}x the round trip; round trip + {show(over)}")
lease = med.get("admission/lease_limiter_only")
if lease and "admission/local" in med:
    print(f"local / lease: {med['admission/local'] / lease:.2f}x")
