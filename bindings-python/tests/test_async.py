"""`Engine.authorize_async`: core decides cached keys on the loop, argon2 runs on a bounded
pool, a full pool answers core's 503 at once, and the event loop keeps running meanwhile."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Tuple

import pytest

import keycel
from helpers import CHEAP, DEFAULT_POLICY, HERE

def forged(rng: random.Random) -> str:
    """A token with a valid checksum for an unknown client id (see bench/flood.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("flood_tokens", HERE.parent / "bench" / "flood.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    token: str = mod.forged_token(rng)
    return token


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def engines(tmp_path: Path) -> List[Tuple[str, keycel.Engine]]:
    return [
        ("memory", keycel.Engine(DEFAULT_POLICY, store=keycel.MemoryStore())),
        ("sqlite", keycel.Engine(DEFAULT_POLICY, store=keycel.SqliteStore(tmp_path / "k.db"))),
        ("python", keycel.Engine(DEFAULT_POLICY, store=keycel.DictStore())),
    ]


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "python"])
def test_authorize_async_matches_authorize(tmp_path: Path, kind: str) -> None:
    engine = dict(engines(tmp_path))[kind]
    token = engine.keyring(hash=CHEAP).create("k", role="reader", accounts=["acc_1"]).token

    async def main() -> List[keycel.Decision]:
        out = []
        for headers, account in [(bearer(token), "acc_1"), (bearer(token), "acc_2"), ({}, None),
                                 (bearer(forged(random.Random(3))), None)]:
            out.append(await engine.authorize_async(headers, "api.read", account=account, ip="10.0.0.1"))
        return out

    got = run(main)
    assert [d.status for d in got] == [200, 404, 401, 401]
    assert got[0].key_id is not None and got[0].lease is not None
    got[0].release()
    sync = engine.authorize(bearer(token), "api.read", account="acc_2")
    assert got[1].body_json() == sync.body_json()


def test_a_full_pool_sheds_with_cores_503_and_cached_keys_still_pass() -> None:
    engine = keycel.Engine(DEFAULT_POLICY, store=keycel.MemoryStore())
    kr = engine.keyring(hash=CHEAP)
    cached = kr.create("cached", role="reader").token
    fresh = kr.create("fresh", role="reader").token
    assert engine.authorize(bearer(cached), "api.read").status == 200  # into the cache
    pools = engine.configure_offload(hash_threads=1, hash_queue=0)
    assert pools is engine.offload and pools.hash.threads == 1
    gate = threading.Event()

    async def main() -> Tuple[keycel.Decision, keycel.Decision, keycel.Decision]:
        blocker = pools.hash.try_submit(gate.wait)  # the only thread, busy
        assert blocker is not None and pools.hash.try_submit(lambda: None) is None
        hit = await engine.authorize_async(bearer(cached), "api.read")
        shed = await engine.authorize_async(bearer(fresh), "api.read")
        gate.set()
        await blocker
        later = await engine.authorize_async(bearer(fresh), "api.read")
        return hit, shed, later

    hit, shed, later = run(main)
    assert hit.status == 200
    assert shed.status == 503 and shed.code == "overloaded" and shed.headers["Retry-After"] == "1"
    # Core's overloaded decision, the same a Pending shed by any host gets.
    other = engine.authorize_step(bearer(forged(random.Random(9))), "api.read")
    assert isinstance(other, keycel.Pending)
    assert shed.body_json() == other.overloaded().body_json()
    assert later.status == 200
    assert pools.hash.busy == 0


def test_store_io_runs_off_the_loop_and_its_pool_sheds_too(tmp_path: Path) -> None:
    engine = keycel.Engine(DEFAULT_POLICY, store=keycel.SqliteStore(tmp_path / "k.db"))
    token = engine.keyring(hash=CHEAP).create("k", role="reader").token
    pools = engine.configure_offload(io_threads=1, io_queue=0)
    gate = threading.Event()

    async def main() -> Tuple[keycel.Decision, keycel.Decision]:
        blocker = pools.io.try_submit(gate.wait)
        assert blocker is not None
        shed = await engine.authorize_async(bearer(token), "api.read")
        gate.set()
        await blocker
        ok = await engine.authorize_async(bearer(token), "api.read")
        return shed, ok

    shed, ok = run(main)
    assert shed.status == 503 and shed.code == "overloaded"
    assert ok.status == 200


def test_python_store_is_called_off_the_loop(tmp_path: Path) -> None:
    calls: List[int] = []

    class Spy(keycel.DictStore):
        def get(self, collection: str, id: str) -> Any:
            calls.append(threading.get_ident())
            return super().get(collection, id)

    engine = keycel.Engine(DEFAULT_POLICY, store=Spy())
    token = engine.keyring(hash=CHEAP).create("k", role="reader").token
    calls.clear()

    async def main() -> Tuple[int, keycel.Decision]:
        return threading.get_ident(), await engine.authorize_async(bearer(token), "api.read")

    loop_thread, d = run(main)
    assert d.status == 200 and calls and loop_thread not in calls


def test_the_loop_keeps_running_while_argon2_works() -> None:
    """An owasp verification takes tens of ms; on the loop it would starve this ticker."""
    engine = keycel.Engine(DEFAULT_POLICY, store=keycel.MemoryStore())
    token = engine.keyring(hash="owasp").create("k", role="reader").token
    engine.clear_cache()

    async def main() -> Tuple[keycel.Decision, int]:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        start = ticks
        d = await engine.authorize_async(bearer(token), "api.read")
        done = True
        await t
        return d, ticks - start

    d, ticks = run(main)
    assert d.status == 200
    assert ticks >= 5, ticks


def test_pending_and_prepared_steps_run_once() -> None:
    engine = keycel.Engine(DEFAULT_POLICY, store=keycel.MemoryStore())
    step = engine.authorize_step(bearer(forged(random.Random(5))), "api.read")
    assert isinstance(step, keycel.Pending)
    shed = step.overloaded()
    assert shed.status == 503 and shed.code == "overloaded"
    with pytest.raises(keycel.InvalidArgumentError):
        step.finish()
