"""Issue 15: the management API in the example FastAPI app over real uvicorn on 127.0.0.1,
mounted both ways (``management_router`` at /manage, ``asgi_app`` at /manage-asgi), running
the shared cases (tests/http_cases/management.json)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, Tuple

import httpx
import pytest

import keycel
from helpers import CHEAP, DEFAULT_POLICY, EXAMPLES
from management_cases import Cred, load, run, scenario_ids, seed

CASES = load()
MOUNTS = ["/manage", "/manage-asgi"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=MOUNTS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, Dict[str, Cred]]]:
    """One server (and store) per mount: the cases share one world each."""
    mount: str = request.param
    tmp = tmp_path_factory.mktemp("mgmt")
    db = tmp / "keys.db"
    keys = seed(keycel.Keyring(keycel.SqliteStore(db), hash=CHEAP), CASES)
    port = free_port()
    env = dict(os.environ, KEYCEL_DB=str(db), KEYCEL_POLICY=str(DEFAULT_POLICY))
    log = open(tmp / "uvicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLES),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError("uvicorn exited: " + (tmp / "uvicorn.log").read_text())
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.1)
        yield base + mount, keys
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.mark.parametrize("scenario", CASES["scenarios"], ids=scenario_ids(CASES))
def test_shared_management_cases(served: Tuple[str, Dict[str, Cred]], scenario: Dict[str, Any]) -> None:
    base, keys = served
    run(base, scenario, keys)


def test_openapi_is_the_checked_in_document(served: Tuple[str, Dict[str, Cred]]) -> None:
    base, _ = served
    r = httpx.get(base + "/openapi.json")
    assert r.status_code == 200
    from helpers import REPO

    assert r.content == (REPO / "docs" / "management.openapi.json").read_bytes()
    assert r.content.decode() == keycel.management.openapi()
    doc = json.loads(r.content)
    assert doc["openapi"] == "3.1.0" and "/keys/{id}/rotate" in doc["paths"]


def test_oversized_body_is_refused(served: Tuple[str, Dict[str, Cred]]) -> None:
    base, keys = served
    body = b"{" + b" " * (keycel.management.MAX_BODY_BYTES + 10) + b"}"
    r = httpx.post(base + "/keys", content=body, headers={"Authorization": f"Bearer {keys['admin'].token}"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "body_too_large"


def test_racing_idempotent_creates_over_http(served: Tuple[str, Dict[str, Cred]]) -> None:
    """Eight concurrent retries of one create over HTTP: one key, one secret."""
    from concurrent.futures import ThreadPoolExecutor

    base, keys = served
    body = {"name": "raced over http", "role": "reader", "accounts": ["acc_1"]}
    headers = {"Authorization": f"Bearer {keys['admin'].token}", "Idempotency-Key": "py-race-1"}

    def post(_: int) -> httpx.Response:
        return httpx.post(base + "/keys", json=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 7 + [201], [r.text for r in answers]
    assert len({r.json()["key"]["id"] for r in answers}) == 1
    assert sum(1 for r in answers if r.json()["secret"] is not None) == 1
