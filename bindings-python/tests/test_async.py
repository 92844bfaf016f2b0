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
    assert shed.status == 503 and shed.code == "temporarily_unavailable" and shed.headers["Retry-After"] == "1"
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
    assert shed.status == 503 and shed.code == "temporarily_unavailable"
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
    assert shed.status == 503 and shed.code == "temporarily_unavailable"
    with pytest.raises(keycel.InvalidArgumentError):
        step.finish()


def throttled_engine() -> keycel.Engine:
    text = DEFAULT_POLICY.read_text()
    text = text.replace('hash = "owasp"', 'hash = "edge"').replace(
        "[defaults.messages]", "[defaults.throttle]\nper_ip = 3\n\n[defaults.messages]"
    )
    return keycel.Engine.from_toml(text, store=keycel.MemoryStore())


async def asgi_get(app: Any, client: Tuple[str, int], token: str) -> Tuple[int, Dict[str, str]]:
    sent: List[Dict[str, Any]] = []
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [(b"authorization", f"Bearer {token}".encode())],
             "client": client, "asgi": {"version": "3.0"}}

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start.get("headers", [])}


def test_middleware_charges_failures_to_the_socket_peer() -> None:
    from keycel.asgi import KeycelMiddleware

    engine = throttled_engine()

    async def ok_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = KeycelMiddleware(ok_app, engine, action="api.read")
    rng = random.Random(11)
    cached = engine.keyring(hash=CHEAP).create("k", role="reader").token

    async def main() -> Tuple[List[int], Tuple[int, Dict[str, str]], int, int]:
        attacker = ("203.0.113.7", 4000)
        statuses = [(await asgi_get(app, attacker, forged(rng)))[0] for _ in range(5)]
        last = await asgi_get(app, attacker, forged(rng))
        other = (await asgi_get(app, ("198.51.100.2", 4000), forged(rng)))[0]
        # a key already in the verified-secret cache still passes from the throttled address
        assert (await asgi_get(app, ("198.51.100.3", 1), cached))[0] == 200
        hit = (await asgi_get(app, attacker, cached))[0]
        return statuses, last, other, hit

    statuses, (status, headers), other, hit = run(main)
    assert statuses == [401, 401, 401, 429, 429], statuses
    assert status == 429 and "retry-after" in headers
    assert other == 401 and hit == 200


def test_throttle_guard_answers_before_the_app() -> None:
    """`ThrottleGuard` answers a spent address with core's 429 before the app runs (the app
    would answer the same); cached keys, other addresses and requests without credentials
    reach the app. `Engine.screen` itself never charges."""
    from keycel.asgi import KeycelMiddleware, ThrottleGuard

    engine = throttled_engine()
    reached: List[str] = []

    async def ok_app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["client"][0])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guarded = ThrottleGuard(KeycelMiddleware(ok_app, engine, action="api.read"), engine)
    rng = random.Random(12)
    cached = engine.keyring(hash=CHEAP).create("k", role="reader").token
    attacker = ("203.0.113.8", 4000)
    for _ in range(10):
        assert engine.screen(bearer(forged(rng)), client_ip=attacker[0]) is None  # no charge

    async def main() -> Tuple[List[int], Tuple[int, Dict[str, str]], int, int]:
        assert (await asgi_get(guarded, ("198.51.100.3", 1), cached))[0] == 200
        statuses = [(await asgi_get(guarded, attacker, forged(rng)))[0] for _ in range(3)]
        reached.clear()
        last = await asgi_get(guarded, attacker, forged(rng))
        other = (await asgi_get(guarded, ("198.51.100.2", 4000), forged(rng)))[0]
        hit = (await asgi_get(guarded, attacker, cached))[0]
        return statuses, last, other, hit

    statuses, (status, headers), other, hit = run(main)
    assert statuses == [401, 401, 401], statuses
    assert status == 429 and headers["retry-after"] and headers["content-type"] == "application/json"
    # Only the cached key's request reached the app (the other address got the middleware's 401).
    assert reached == [attacker[0]], reached
    assert other == 401 and hit == 200
    screened = engine.screen(bearer(forged(rng)), client_ip=attacker[0])
    stepped = engine.authorize(bearer(forged(rng)), "api.read", client_ip=attacker[0])
    assert screened is not None and screened.status == 429 == stepped.status
    assert screened.body_json() == stepped.body_json() and screened.headers == stepped.headers
    assert engine.screen({}, client_ip=attacker[0]) is None


def test_throttle_guard_holds_a_bounded_number_of_429s() -> None:
    """The tarpit holds at most `max_held` screened 429s (each at most min(hold, Retry-After));
    past the bound they are answered at once, and nothing else is ever held."""
    from keycel.asgi import ThrottleGuard

    engine = throttled_engine()

    async def ok_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = ThrottleGuard(ok_app, engine, hold=0.5, max_held=1)
    rng = random.Random(13)
    attacker = ("203.0.113.9", 1)
    for _ in range(3):
        assert engine.authorize(bearer(forged(rng)), "api.read", client_ip=attacker[0]).status == 401
    with pytest.raises(ValueError):
        ThrottleGuard(ok_app, engine, hold=-1)

    async def main() -> None:
        first = asyncio.ensure_future(asgi_get(guard, attacker, forged(rng)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert guard.held == 1 and not first.done()
        # The bound is reached: the next 429 goes out at once, and other clients pass.
        assert (await asgi_get(guard, attacker, forged(rng)))[0] == 429
        assert (await asgi_get(guard, ("198.51.100.9", 1), forged(rng)))[0] == 200  # not screened
        assert guard.held == 1 and not first.done()
        # Then it is answered (after `hold`, here shorter than its Retry-After of 20 s).
        status, _ = await asyncio.wait_for(first, timeout=10)
        assert status == 429 and guard.held == 0

    run(main)


def test_a_full_argon2_pool_sheds_before_the_lookup_and_charges(tmp_path: Path) -> None:
    """While the argon2 pool is full, a request that would need argon2 is answered at once
    (503, charged like the step) without queueing for its store lookup; the budget still trips
    (429), and cached keys still go through the step and pass."""
    text = DEFAULT_POLICY.read_text().replace('hash = "owasp"', 'hash = "edge"').replace(
        "[defaults.messages]", "[defaults.throttle]\nper_ip = 2\n\n[defaults.messages]"
    )
    engine = keycel.Engine.from_toml(text, store=keycel.SqliteStore(tmp_path / "k.db"))
    cached = engine.keyring(hash=CHEAP).create("k", role="reader").token
    assert engine.authorize(bearer(cached), "api.read").status == 200
    pools = engine.configure_offload(hash_threads=1, hash_queue=0, io_threads=1, io_queue=4)
    gate = threading.Event()
    rng = random.Random(15)

    async def main() -> Tuple[List[keycel.Decision], keycel.Decision]:
        blocker = pools.hash.try_submit(gate.wait)
        assert blocker is not None and pools.hash_full()
        got = [await engine.authorize_async(bearer(forged(rng)), "api.read", client_ip="192.0.2.80") for _ in range(3)]
        assert pools.io.busy == 0
        hit = await engine.authorize_async(bearer(cached), "api.read", client_ip="192.0.2.80")
        gate.set()
        await blocker
        return got, hit

    (first, second, third), hit = run(main)
    for d in (first, second):
        assert d.status == 503 and d.reason.startswith("argon2 pool full"), d.reason
    assert third.status == 429 and third.code == "too_many_failures"
    assert hit.status == 200


def test_every_thread_gets_the_same_pools() -> None:
    engine = keycel.Engine(DEFAULT_POLICY, store=keycel.MemoryStore())
    barrier = threading.Barrier(8)
    got: List[Any] = []

    def first_use() -> None:
        barrier.wait()
        got.append(engine.offload)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(p is got[0] for p in got)
    assert got[0] is engine.offload
