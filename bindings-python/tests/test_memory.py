"""Process memory under a forged-token flood, measured on a real process (issue 12).

A fresh Python process builds an engine with the default policy (argon2 `owasp`: 19 MiB per
verification), starts THREADS threads calling `authorize` with forged tokens (valid checksum,
unknown client id: every call runs a dummy argon2 verification through the gate), and reports
its own VmHWM. argon2 memory is one reused block per gate slot, so the peak stays within
base + slots x m_cost + a small constant. Before the fix: ~1.5 GiB with 8 threads, ~4.4 GiB
with 32 (a fresh 19 MiB block per verification, kept by glibc).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Dict

import pytest

from helpers import DEFAULT_POLICY, HERE

M_COST_MIB = 19
#: Thread stacks touched, allocator arenas, Python objects: measured ~10-20 MiB.
SMALL_MIB = 32

CHILD = textwrap.dedent(
    """
    import json, random, sys, threading, time
    sys.path.insert(0, sys.argv[4])
    import keycel
    from flood import forged_token

    def kib(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    threads, seconds = int(sys.argv[1]), float(sys.argv[2])
    engine = keycel.Engine(sys.argv[3])
    rng = random.Random(7)
    tokens = [forged_token(rng) for _ in range(512)]
    # Base: everything but argon2 working memory is warm (one cheap-path call per thread).
    warm = [threading.Thread(target=lambda: engine.authorize({}, "api.read")) for _ in range(threads)]
    for t in warm: t.start()
    for t in warm: t.join()
    base = kib("VmRSS")
    stop = time.monotonic() + seconds
    counts = {}
    lock = threading.Lock()

    def worker(i):
        r = random.Random(i)
        while time.monotonic() < stop:
            d = engine.authorize({"Authorization": "Bearer " + r.choice(tokens)}, "api.read")
            with lock:
                counts[d.status] = counts.get(d.status, 0) + 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(json.dumps({"base_kib": base, "hwm_kib": kib("VmHWM"), "slots": engine.offload.hash.threads,
                      "counts": {str(k): v for k, v in counts.items()}}))
    """
)


def run_child(threads: int, seconds: float) -> Dict[str, object]:
    env = dict(os.environ)
    env.pop("MALLOC_MMAP_THRESHOLD_", None)  # the bound must not depend on allocator tuning
    out = subprocess.run(
        [sys.executable, "-I", "-c", CHILD, str(threads), str(seconds), str(DEFAULT_POLICY), str(HERE.parent / "bench")],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    )
    result: Dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("threads", [8, 32])
def test_rss_is_base_plus_slots_times_m_cost(threads: int) -> None:
    r = run_child(threads, 3.0)
    base, hwm, slots = int(str(r["base_kib"])), int(str(r["hwm_kib"])), int(str(r["slots"]))
    counts = r["counts"]
    assert isinstance(counts, dict) and counts.get("401", 0) > 0, r  # argon2 really ran
    growth_mib = (hwm - base) / 1024
    assert growth_mib <= slots * M_COST_MIB + SMALL_MIB, (growth_mib, r)
