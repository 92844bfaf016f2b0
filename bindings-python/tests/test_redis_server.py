"""Issue 13: one budget per key across machines. Two separate uvicorn servers (separate
processes, as two machines would run) count budgets in one Redis (Debian's redis-server,
started on 127.0.0.1 on a free port without persistence, stopped after)."""

# Each test leaves the key idle (nothing in flight) for the next.

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, List, Optional

import httpx
import pytest

import keycel
from helpers import CHEAP, DEFAULT_POLICY, EXAMPLES
from test_server import free_port

LEASE_TTL = 5  # seconds: the lease expiry a SIGKILLed server's slots come back within


class RedisServer:
    def __init__(self, tmp: Path) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is needed (the Makefile installs it with apt)"
        self.exe, self.port, self.tmp = exe, free_port(), tmp
        self.proc: Optional["subprocess.Popen[bytes]"] = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        import socket
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


def uvicorn(tmp: Path, name: str, env: dict) -> "tuple[subprocess.Popen[bytes], str]":
    port = free_port()
    log = open(tmp / f"{name}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLES),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError("uvicorn exited: " + (tmp / f"{name}.log").read_text())
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.1)


class Pair:
    def __init__(self, redis: RedisServer, bases: List[str], token: str, key_id: str, tmp: Path,
                 envs: List[dict]) -> None:
        self.redis, self.bases, self.token, self.key_id, self.tmp, self.envs = redis, bases, token, key_id, tmp, envs
        # The test process counts through the same Redis, like a third server.
        self.engine = keycel.Engine(Path(envs[0]["KEYCEL_POLICY"]), admission=keycel.RedisAdmission(redis.url))

    def budgeted(self, budget: dict) -> "tuple[str, str]":
        """A new key whose record carries `budget` (rate_limit / credits / max_concurrent), in
        both servers' stores: (token, key id)."""
        issued = keycel.Keyring(keycel.MemoryStore(), hash=CHEAP).create("budget", role="reader", accounts="all")
        record = keycel.KeyRecord.from_storage_dict({**issued.record.to_storage_dict(), **budget})
        for db in ("a.db", "b.db"):
            keycel.SqliteStore(self.tmp / db).insert_key(record)
        return issued.token, issued.client_id

    def get(self, i: int, token: str) -> httpx.Response:
        url = f"{self.bases[i % 2]}/v1/accounts/acc_1/data"
        return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def in_flight(self) -> int:
        return self.engine.in_flight(self.key_id)

    def wait_idle(self, within: float) -> None:
        deadline = time.monotonic() + within
        while self.in_flight() != 0:
            assert time.monotonic() < deadline, f"{self.in_flight()} leases still in flight"
            time.sleep(0.1)

    def slow(self, i: int, ms: int) -> int:
        url = f"{self.bases[i % 2]}/v1/accounts/acc_1/slow?ms={ms}"
        return httpx.get(url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30).status_code


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("redis")
    redis = RedisServer(tmp)
    # Each server has its own copy of the keys (as two machines would), one Redis for budgets.
    db_a, db_b = tmp / "a.db", tmp / "b.db"
    policy = tmp / "policy.toml"
    src = DEFAULT_POLICY.read_text().replace('lease_ttl = "60s"', f'lease_ttl = "{LEASE_TTL}s"')
    assert f'lease_ttl = "{LEASE_TTL}s"' in src
    policy.write_text(src)
    issued = keycel.Keyring(keycel.SqliteStore(db_a), hash=CHEAP).create("fleet", role="reader", accounts="all")
    keycel.SqliteStore(db_b).insert_key(issued.record)
    procs = []
    bases = []
    envs = []
    try:
        for name, db, fail in [("a", db_a, "deny"), ("b", db_b, "local")]:
            env = dict(os.environ, KEYCEL_DB=str(db), KEYCEL_POLICY=str(policy), KEYCEL_REDIS=redis.url,
                       KEYCEL_REDIS_FAIL=fail)
            proc, base = uvicorn(tmp, name, env)
            procs.append(proc)
            bases.append(base)
            envs.append(env)
        yield Pair(redis, bases, issued.token, issued.client_id, tmp, envs)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        redis.stop()


def test_two_servers_sharing_redis_admit_exactly_five_of_twenty(pair: Pair) -> None:
    with ThreadPoolExecutor(max_workers=20) as ex:
        statuses = sorted(ex.map(lambda i: pair.slow(i, 4000), range(20)))
    assert statuses == [200] * 5 + [429] * 15, statuses
    pair.wait_idle(5)


def test_a_thousand_aborted_requests_leave_nothing_in_flight(pair: Pair) -> None:
    pair.wait_idle(10)

    def aborted(i: int) -> None:
        url = f"{pair.bases[i % 2]}/v1/accounts/acc_1/slow?ms=300"
        try:
            httpx.get(url, headers={"Authorization": f"Bearer {pair.token}"}, timeout=0.05)
        except httpx.TransportError:
            pass

    with ThreadPoolExecutor(max_workers=32) as ex:
        list(ex.map(aborted, range(1000)))
    # Every admitted handler ends within its 300 ms and releases (one ZREM); nothing waits for
    # the lease expiry.
    pair.wait_idle(5)
    assert pair.slow(0, 0) == 200 and pair.slow(1, 0) == 200


def test_a_sigkilled_servers_slots_return_within_the_lease_expiry(pair: Pair) -> None:
    """A third server holds all five slots and is SIGKILLed: its leases are neither released
    nor renewed again, and come back within the lease expiry; live holders past the TTL keep
    theirs (renewed)."""
    pair.wait_idle(10)
    proc, base = uvicorn(pair.tmp, "c", pair.envs[0])
    url = f"{base}/v1/accounts/acc_1/slow?ms=10000"
    try:
        with ThreadPoolExecutor(max_workers=5) as ex:
            holders = [ex.submit(lambda: httpx.get(url, headers={"Authorization": f"Bearer {pair.token}"}, timeout=60))
                       for _ in range(5)]
            deadline = time.monotonic() + 10
            while pair.in_flight() < 5:
                assert time.monotonic() < deadline, "the five slow requests never all held a lease"
                time.sleep(0.05)
            time.sleep(LEASE_TTL + 1.5)
            assert pair.in_flight() == 5 and pair.slow(0, 0) == 429, "a live holder lost its slot past the TTL"
            os.kill(proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            for h in holders:
                with pytest.raises(httpx.TransportError):
                    h.result()
        while pair.slow(0, 0) != 200:
            assert time.monotonic() - killed < LEASE_TTL + 2, "a SIGKILLed server's slots did not come back"
            time.sleep(0.1)
        pair.wait_idle(LEASE_TTL + 2)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_a_rate_limit_of_50_per_10s_across_two_servers_admits_50_plus_burst_of_200(pair: Pair) -> None:
    """200 requests over about 10 s (8 clients, alternating between the two servers): the GCRA
    count in Redis admits the burst plus one per 200 ms of the elapsed time (50 + burst over
    10 s), not that per server. On a slow machine the run takes longer and the bound with it."""
    token, _ = pair.budgeted({"max_concurrent": 100, "rate_limit": {"limit": 50, "per": "10s", "burst": 5}})
    start = time.monotonic()

    def one(i: int) -> int:
        delay = start + i * 0.05 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        r = pair.get(i, token)
        if r.status_code == 429:
            assert r.json()["error"] == "rate_limited" and int(r.headers["retry-after"]) >= 1, r.text
            assert r.headers["ratelimit-policy"] == '"default";q=50;w=10'
        return r.status_code

    with ThreadPoolExecutor(max_workers=8) as ex:
        statuses = list(ex.map(one, range(200)))
    elapsed = time.monotonic() - start
    admitted = statuses.count(200)
    bound = int(elapsed * 50 / 10) + 5 + 1
    assert 5 <= admitted <= bound, f"{admitted} of 200 admitted in {elapsed:.1f} s (bound {bound})"
    assert statuses.count(429) == 200 - admitted
    if elapsed < 12:
        assert admitted <= 50 + 5 + 1 + 10


def test_credits_never_go_below_zero_under_eight_concurrent_clients(pair: Pair) -> None:
    set_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    token, key_id = pair.budgeted({"max_concurrent": 100,
                                   "credits": {"remaining": 40, "refill": None, "set_at": set_at}})

    def client(c: int) -> List[httpx.Response]:
        return [pair.get(c, token) for _ in range(10)]

    with ThreadPoolExecutor(max_workers=8) as ex:
        answers = [r for rs in ex.map(client, range(8)) for r in rs]
    assert [r.status_code for r in answers].count(200) == 40
    refused = [r for r in answers if r.status_code != 200]
    assert len(refused) == 40 and all(r.status_code == 429 and r.json()["error"] == "usage_exceeded" for r in refused)
    # Still exhausted for both servers (and for a third process reading Redis).
    assert pair.get(0, token).status_code == 429 and pair.get(1, token).status_code == 429


def test_redis_restarted_mid_run_fail_mode_then_recovery(pair: Pair) -> None:
    assert pair.slow(0, 0) == 200 and pair.slow(1, 0) == 200
    pair.redis.stop()
    # Server a fails closed (503), server b counts in its own process (200, said in the reason).
    a = httpx.get(f"{pair.bases[0]}/v1/accounts/acc_1/slow?ms=0", headers={"Authorization": f"Bearer {pair.token}"})
    assert a.status_code == 503 and a.json()["error"] == "temporarily_unavailable", a.text
    assert pair.slow(1, 0) == 200
    pair.redis.start()  # empty: its script cache is gone (NOSCRIPT), reloaded on first use
    deadline = time.monotonic() + 10
    while pair.slow(0, 0) != 200:
        assert time.monotonic() < deadline, "server a did not recover after Redis came back"
        time.sleep(0.1)
    with ThreadPoolExecutor(max_workers=20) as ex:
        statuses = sorted(ex.map(lambda i: pair.slow(i, 4000), range(20)))
    assert statuses == [200] * 5 + [429] * 15, statuses


def test_the_event_loop_runs_while_redis_admission_waits(tmp_path: Path) -> None:
    """With a memory store and Redis admission, `authorize_async` runs the first step (the
    admission's round trip, the shared failure budgets) in the I/O pool, not on the loop: with
    the real redis-server stopped (SIGSTOP), a cached key's request waits the admission's
    timeout and answers 503, while the loop keeps ticking. Before, the step ran on the loop and
    froze it for the whole timeout."""
    import asyncio

    redis = RedisServer(tmp_path)
    try:
        store = keycel.MemoryStore()
        engine = keycel.Engine(DEFAULT_POLICY, store=store, admission=keycel.RedisAdmission(redis.url, timeout=1.0))
        issued = keycel.Keyring(store, hash=CHEAP).create("loop", role="reader", accounts="all")
        headers = {"Authorization": f"Bearer {issued.token}"}
        assert engine.authorize(headers, "api.read", account="acc_1").allowed  # cached, script loaded
        assert redis.proc is not None
        redis.proc.send_signal(signal.SIGSTOP)
        ticks: List[float] = []

        async def ticker(until: "asyncio.Future[keycel.Decision]") -> None:
            while not until.done():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        async def main() -> keycel.Decision:
            call = asyncio.ensure_future(engine.authorize_async(headers, "api.read", account="acc_1"))
            await ticker(call)
            return await call

        start = time.monotonic()
        d = asyncio.run(main())
        waited = time.monotonic() - start
        assert d.status == 503 and d.code == "temporarily_unavailable", (d.status, d.code, d.reason)
        assert waited >= 0.9, waited
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        assert len(ticks) >= 20 and max(gaps) < 0.5, (len(ticks), max(gaps, default=None))
    finally:
        if redis.proc is not None:
            redis.proc.send_signal(signal.SIGCONT)
        redis.stop()
