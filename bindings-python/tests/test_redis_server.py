"""Issue 13: one budget per key across machines. Two separate uvicorn servers (separate
processes, as two machines would run) count budgets in one Redis (Debian's redis-server,
started on 127.0.0.1 on a free port without persistence, stopped after)."""

from __future__ import annotations

import os
import shutil
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
    def __init__(self, redis: RedisServer, bases: List[str], token: str) -> None:
        self.redis, self.bases, self.token = redis, bases, token

    def slow(self, i: int, ms: int) -> int:
        url = f"{self.bases[i % 2]}/v1/accounts/acc_1/slow?ms={ms}"
        return httpx.get(url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30).status_code


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("redis")
    redis = RedisServer(tmp)
    # Each server has its own copy of the keys (as two machines would), one Redis for budgets.
    db_a, db_b = tmp / "a.db", tmp / "b.db"
    issued = keycel.Keyring(keycel.SqliteStore(db_a), hash=CHEAP).create("fleet", role="reader", accounts="all")
    keycel.SqliteStore(db_b).insert_key(issued.record)
    procs = []
    bases = []
    try:
        for name, db, fail in [("a", db_a, "deny"), ("b", db_b, "local")]:
            env = dict(os.environ, KEYCEL_DB=str(db), KEYCEL_POLICY=str(DEFAULT_POLICY), KEYCEL_REDIS=redis.url,
                       KEYCEL_REDIS_FAIL=fail)
            proc, base = uvicorn(tmp, name, env)
            procs.append(proc)
            bases.append(base)
        yield Pair(redis, bases, issued.token)
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
        statuses = sorted(ex.map(lambda i: pair.slow(i, 2000), range(20)))
    assert statuses == [200] * 5 + [429] * 15, statuses


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
        statuses = sorted(ex.map(lambda i: pair.slow(i, 2000), range(20)))
    assert statuses == [200] * 5 + [429] * 15, statuses
