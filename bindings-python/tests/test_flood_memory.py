"""argon2 memory stays bounded under a flood, seen as the process's RSS (issue 12).

Before, every verification allocated a fresh 19 MiB block and glibc kept the freed blocks:
32 Python threads calling `authorize` with forged tokens grew a process to ~4.4 GiB. Core now
reuses one argon2 workspace per gate slot. The flood runs in a fresh interpreter (its peak RSS,
`VmHWM`, is its own), through the installed wheel, at the default `owasp` preset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import DEFAULT_POLICY

CHILD = r"""
import json, sys, threading
import keycel

def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)

engine = keycel.Engine(sys.argv[1])  # default policy: owasp, m = 19 MiB
forge = keycel.Keyring(hash={"m_cost": 1024, "t_cost": 1, "p_cost": 1})
threads, per_thread = 32, 2
# Valid tokens (checksums pass) whose ids the engine's store has never seen: each costs the
# configured dummy verification.
tokens = [[forge.create("f", role="reader").token for _ in range(per_thread)] for _ in range(threads)]
statuses = []
lock = threading.Lock()
start = threading.Barrier(threads + 1)

def flood(batch):
    start.wait()
    for token in batch:
        d = engine.authorize({"Authorization": "Bearer " + token}, "api.read")
        with lock:
            statuses.append(d.status)

workers = [threading.Thread(target=flood, args=(b,)) for b in tokens]
for w in workers:
    w.start()
base = status_kib("VmRSS:")
start.wait()
for w in workers:
    w.join()
print(json.dumps({"base_kib": base, "peak_kib": status_kib("VmHWM:"), "statuses": statuses}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_thirty_two_threads_of_forged_tokens_stay_within_slots_times_m_cost() -> None:
    out = subprocess.run(
        [sys.executable, "-I", "-c", CHILD, str(DEFAULT_POLICY)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    statuses = result["statuses"]
    assert len(statuses) == 64 and set(statuses) <= {401, 503}, statuses
    assert statuses.count(401) >= 1
    # The engine's argon2 gate has one slot per core (Rust's available_parallelism, which
    # sched_getaffinity matches on Linux), each with one 19 MiB workspace.
    slots = len(os.sched_getaffinity(0))
    m_cost_kib = 19 * 1024
    slack_kib = 32 * 1024  # thread stacks, the interpreter's own arenas, tokens
    grown = result["peak_kib"] - result["base_kib"]
    bound = slots * m_cost_kib + slack_kib
    print(f"32 threads x 2 forged tokens, {slots} gate slots: RSS +{grown / 1024:.1f} MiB (bound {bound / 1024:.1f} MiB)")
    assert grown <= bound, f"RSS grew {grown} KiB during the flood, over slots x m_cost + slack = {bound} KiB"
