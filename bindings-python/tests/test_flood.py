"""A short forged-token flood against the example app under real uvicorn (issue 12).

The same harness as `make flood` (bench/flood.py), for 6 s instead of 30: the event loop must
keep answering (/health and a cached key), the server's RSS must stay bounded (argon2 memory
is reused per gate slot), and an overloaded server must shed (503) or throttle (429) at once
instead of stalling. Before the fix the loop froze for seconds per request and RSS grew past a
gigabyte. Bounds are generous multiples of the targets (this is a guard, not the benchmark).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from types import ModuleType
from typing import Any, Dict

import pytest

from helpers import HERE

BENCH = HERE.parent / "bench" / "flood.py"


def _flood_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("keycel_flood_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


flood = _flood_module()


@pytest.fixture(scope="module")
def result() -> Dict[str, Any]:
    args = argparse.Namespace(
        seconds=6.0, connections=32, flood_ips=32, hash="owasp", probe_timeout=20.0, server="standard"
    )
    r: Dict[str, Any] = flood.run(args)
    print(flood.report(r))
    return r


def test_forged_tokens_are_well_formed() -> None:
    """The flood's tokens pass the checksum and fail as unknown client ids (not as garbage)."""
    import random

    import keycel
    from helpers import DEFAULT_POLICY

    engine = keycel.Engine(DEFAULT_POLICY, store=keycel.MemoryStore())
    engine.configure_offload()
    token = flood.forged_token(random.Random(1))
    step = engine.authorize_step({"Authorization": f"Bearer {token}"}, "api.read")
    assert isinstance(step, keycel.Pending), step  # an unknown id costs a (dummy) argon2 run
    d = step.finish()
    assert d.status == 401 and "unknown client id" in d.reason


def test_event_loop_keeps_answering_during_a_flood(result: Dict[str, Any]) -> None:
    health, cached = result["health"], result["cached"]
    # Before: one or two probes finished in the whole flood (4-30 s each: argon2 ran on the
    # loop). The benchmark's target is p99 <= 50 ms on a quiet machine; this guard only
    # tells "answers" from "stalls" (it must hold on a busy shared CI box too).
    assert health["requests"] >= 5 and set(health["answers"]) == {"200"}, health
    assert cached["requests"] >= 5 and set(cached["answers"]) == {"200"}, cached
    assert health["max_ms"] < 3000 and cached["max_ms"] < 3000, (health, cached)


def test_first_use_answers_or_sheds_without_stalling(result: Dict[str, Any]) -> None:
    first = result["first_use"]
    assert first["requests"] >= 3 and set(first["answers"]) <= {"200", "503"}, first
    assert first["max_ms"] < 3000, first


def test_flood_is_shed_or_throttled_not_queued(result: Dict[str, Any]) -> None:
    answers = result["flood"]["answers"]
    assert answers.get("503", 0) + answers.get("429", 0) > 0, answers
    # "unfinished": requests cut off by the generator's deadline, not failures.
    assert set(answers) - {"unfinished"} <= {"401", "429", "503"}, answers
    assert result["flood"]["max_ms"] < 5000, result["flood"]


def test_throttled_clients_stay_throttled_under_saturation(result: Dict[str, Any]) -> None:
    """Each of the 32 flood addresses spends its failure budget (20 per 60 s) within the first
    second; from then on it must get the cheap 429, also while the server is saturated. Before,
    an attempt shed with a 503 (argon2 pool full) gave its charge back, so under saturation no
    budget ever tripped: 0 x 429 among thousands of 503s, each costing a store lookup and the
    whole FastAPI dependency path on the event loop."""
    answers = result["flood"]["answers"]
    throttled = answers.get("429", 0)
    passed = sum(n for a, n in answers.items() if a.isdigit() and a != "429")
    # Past its budget an address gets one attempt per 3 s through: at most 20 + 3 per address
    # in the ~7 s the flood runs (x 32 addresses), whatever the flood's rate; all the rest is
    # 429. (Before: 0 x 429 unless argon2 alone worked through 32 x 20 failures in 6 s, over
    # 100 hashes/s at the owasp preset: not on a 2-core machine.)
    assert passed <= 32 * 25, answers
    assert throttled > 0, answers


def test_server_rss_stays_bounded(result: Dict[str, Any]) -> None:
    # Before: +1.1 GiB. Target: base + 64 MiB with the default (owasp, 19 MiB) preset.
    assert result["rss"]["growth_mib"] <= 64, result["rss"]
