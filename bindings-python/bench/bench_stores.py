"""`authorize` over each store, in one run so the ratios are fair: MemoryStore (the baseline),
SqliteStore and PostgresStore uncached and behind the record cache. Target: the cached stores
within 1.3x of MemoryStore. Starts a throwaway PostgreSQL (tests/servers/postgres.sh).
Every engine uses `admission="local"`, so the figures compare the stores' lookups alone (a
file-backed SqliteStore otherwise defaults to SQLite admission: a write transaction per request).

    make -C bindings-python bench      # or: .venv/bin/python -I bench/bench_stores.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, List, Tuple

import keycel

REPO = Path(__file__).resolve().parent.parent.parent
POLICY = REPO / "policies" / "default.toml"
SCRIPT = REPO / "tests" / "servers" / "postgres.sh"
ROUNDS = 31
ROUND_SECONDS = 0.02


def measure(fn: Callable[[int], None]) -> float:
    """Median seconds per call over ROUNDS rounds; `fn(n)` makes n calls."""
    fn(50)
    n = 1
    while True:
        t = time.perf_counter()
        fn(n)
        if time.perf_counter() - t >= ROUND_SECONDS or n >= 1 << 20:
            break
        n *= 2
    samples = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn(n)
        samples.append((time.perf_counter() - t) / n)
    return statistics.median(samples)


def bench(store: Any) -> float:
    engine = keycel.Engine(POLICY, store=store, admission="local")
    token = engine.keyring(hash="edge").create("bench", role="reader", accounts=["acc_1", "acc_2"]).token
    headers = {"accept": "application/json", "authorization": f"Bearer {token}"}

    def call() -> keycel.Decision:
        return engine.authorize(headers, "api.read", account="acc_1", method="GET", path="/v1/data")

    first = call()
    assert first.allowed, first.reason
    first.release()

    def run(n: int) -> None:
        for _ in range(n):
            call().release()

    return measure(run)


def main() -> int:
    out = subprocess.run(["bash", str(SCRIPT), "start", str(os.getpid())], check=True, capture_output=True, text=True)
    dsn, cluster = out.stdout.strip().split("\t")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stores: List[Tuple[str, Callable[[], Any]]] = [
                ("MemoryStore", keycel.MemoryStore),
                ("SqliteStore(cache=False)", lambda: keycel.SqliteStore(Path(tmp) / "a.db", cache=False)),
                ("SqliteStore (cached)", lambda: keycel.SqliteStore(Path(tmp) / "b.db")),
                ("PostgresStore(cache=False)", lambda: keycel.PostgresStore(dsn, cache=False)),
                ("PostgresStore (cached)", lambda: keycel.PostgresStore(dsn)),
            ]
            results = [(name, bench(make())) for name, make in stores]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", cluster], check=False)
    base = results[0][1]
    print(f"{'store':<28} {'median':>10} {'vs memory':>10}")
    for name, secs in results:
        print(f"{name:<28} {secs * 1e6:>8.2f}us {secs / base:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
