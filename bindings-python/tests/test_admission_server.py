"""Issue 13: one budget per key across worker processes. The example app under real uvicorn
with 4 workers over one SQLite file (SQLite admission, chosen automatically with a file
`SqliteStore`), driven over HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import httpx
import pytest

import keycel
from helpers import CHEAP, DEFAULT_POLICY, EXAMPLES
from test_flood import flood
from test_server import free_port

LEASE_TTL = 3  # seconds: the lease expiry a SIGKILLed worker's slots come back within


def workers_of(proc: "subprocess.Popen[bytes]") -> List[int]:
    """uvicorn's worker processes (children started by multiprocessing's spawn_main)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []

    def is_worker(pid: int) -> bool:
        try:
            return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    return [p for p in pids if is_worker(p)]


class Fleet:
    def __init__(self, base: str, proc: "subprocess.Popen[bytes]", db: Path, token: str, key_id: str) -> None:
        self.base, self.proc, self.db, self.token, self.key_id = base, proc, db, token, key_id
        # The test process counts through the same file, like a fifth worker.
        self.engine = keycel.Engine(DEFAULT_POLICY, store=keycel.SqliteStore(db))

    def call_with(self, token: str) -> int:
        """One request with `token`, on a new connection (so requests spread over the workers)."""
        url = f"{self.base}/v1/accounts/acc_1/slow?ms=0"
        return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60).status_code

    def slow(self, ms: int, timeout: float = 30) -> int:
        url = f"{self.base}/v1/accounts/acc_1/slow?ms={ms}"
        return httpx.get(url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout).status_code

    def workers(self) -> List[int]:
        return workers_of(self.proc)


@contextmanager
def running_fleet(tmp: Path) -> Iterator[Fleet]:
    """The example app under uvicorn with 4 workers over a fresh SQLite file in `tmp`."""
    db = tmp / "keys.db"
    policy = tmp / "policy.toml"
    src = DEFAULT_POLICY.read_text().replace('lease_ttl = "60s"', f'lease_ttl = "{LEASE_TTL}s"')
    assert f'lease_ttl = "{LEASE_TTL}s"' in src
    policy.write_text(src)
    issued = keycel.Keyring(keycel.SqliteStore(db), hash=CHEAP).create("fleet", role="reader", accounts="all")
    port = free_port()
    env = dict(os.environ, KEYCEL_DB=str(db), KEYCEL_POLICY=str(policy))
    log = open(tmp / "uvicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLES), "--workers", "4",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError("uvicorn exited: " + (tmp / "uvicorn.log").read_text())
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200 and len(workers_of(proc)) == 4:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start 4 workers within 60 s")
            time.sleep(0.2)
        yield Fleet(base, proc, db, issued.token, issued.client_id)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running_fleet(tmp_path_factory.mktemp("fleet")) as f:
        yield f


def wait_idle(fleet: Fleet, within: float) -> None:
    deadline = time.monotonic() + within
    while fleet.engine.in_flight(fleet.key_id) != 0:
        assert time.monotonic() < deadline, f"{fleet.engine.in_flight(fleet.key_id)} leases still in flight"
        time.sleep(0.1)


def test_twenty_concurrent_slow_requests_over_four_workers_admit_exactly_five(fleet: Fleet) -> None:
    assert fleet.engine.admission == "sqlite"
    with ThreadPoolExecutor(max_workers=20) as ex:
        statuses = sorted(ex.map(lambda _: fleet.slow(2000), range(20)))
    assert statuses == [200] * 5 + [429] * 15, statuses
    wait_idle(fleet, 5)


def test_a_sigkilled_workers_slots_return_within_the_lease_expiry(fleet: Fleet) -> None:
    wait_idle(fleet, 10)
    with ThreadPoolExecutor(max_workers=5) as ex:
        holders = [ex.submit(fleet.slow, 10_000, 60) for _ in range(5)]
        deadline = time.monotonic() + 10
        while fleet.engine.in_flight(fleet.key_id) < 5:
            assert time.monotonic() < deadline, "the five slow requests never all held a lease"
            time.sleep(0.05)
        # Long past the TTL, live holders still keep their slots (the workers renew them).
        time.sleep(LEASE_TTL + 1.5)
        assert fleet.engine.in_flight(fleet.key_id) == 5 and fleet.slow(0) == 429
        workers = fleet.workers()
        assert len(workers) == 4
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        for h in holders:
            with pytest.raises(httpx.TransportError):
                h.result()
    # The killed workers' rows stop counting at their deadline: at most TTL + 1 s after the kill
    # (deadlines are whole seconds, rounded up so a live lease never lapses early).
    while fleet.engine.in_flight(fleet.key_id) != 0:
        assert time.monotonic() - killed < LEASE_TTL + 2.5, "a SIGKILLed worker's slots did not come back"
        time.sleep(0.1)
    assert fleet.engine.authorize({"Authorization": f"Bearer {fleet.token}"}, "api.read").status == 200
    # uvicorn replaces its workers; once they answer, the budget is whole again.
    deadline = time.monotonic() + 60
    while True:
        try:
            if len(fleet.workers()) == 4 and fleet.slow(0, timeout=5) == 200:
                break
        except httpx.TransportError:
            pass  # connections wait in the listen queue while the new workers start
        assert time.monotonic() < deadline, "uvicorn did not replace its workers"
        time.sleep(0.2)
    assert_exactly_five_of_six(fleet)


def assert_exactly_five_of_six(fleet: Fleet) -> None:
    """Six concurrent slow requests: five admitted, one refused. A fresh worker's first use of the
    key may shed a request (503 `overloaded`, issue 12) before admission; then it ran with fewer
    than six, so it is tried again once the workers know the key."""
    for _ in range(5):
        wait_idle(fleet, LEASE_TTL + 2)
        with ThreadPoolExecutor(max_workers=6) as ex:
            statuses = sorted(ex.map(lambda _: fleet.slow(1500), range(6)))
        if 503 not in statuses:
            break
    assert statuses == [200] * 5 + [429], statuses
    wait_idle(fleet, LEASE_TTL + 2)


def test_a_thousand_aborted_requests_leave_nothing_in_flight(fleet: Fleet) -> None:
    wait_idle(fleet, 10)

    def aborted(_: int) -> None:
        try:
            fleet.slow(300, timeout=0.05)
        except httpx.TransportError:
            pass

    with ThreadPoolExecutor(max_workers=32) as ex:
        list(ex.map(aborted, range(1000)))
    # Every admitted handler ends within its 300 ms and releases; nothing waits for expiry.
    wait_idle(fleet, 5)
    assert fleet.slow(0) == 200


def test_forged_tokens_get_one_failure_budget_across_four_workers(tmp_path: Path) -> None:
    """The failed-authentication budget of an address (default 20 per 60 s) lives in the
    SQLite file with the admission, so the four workers charge one budget: of 80 forged tokens
    from 127.0.0.1, 8 clients at once over new connections (spread over the workers), at most
    20 plus the refill (one per 3 s) are verified (401), the rest get 429 `too_many_failures`.
    With a budget per worker, up to 4 x 20 were verified."""
    rng = random.Random(13)
    tokens = [flood.forged_token(rng) for _ in range(80)]
    with running_fleet(tmp_path) as f:
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as ex:
            answers = list(ex.map(f.call_with, tokens))
        elapsed = time.monotonic() - start
    # 503: an attempt shed while the argon2 pool was full (charged like a failure, issue 12).
    assert set(answers) <= {401, 429, 503}, answers
    verified = answers.count(401)
    assert verified <= 20 + int(elapsed / 3) + 1, (verified, round(elapsed, 1), answers)
    assert answers.count(429) >= 40, answers
