"""A real server: the example app under uvicorn on 127.0.0.1, driven over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import httpx
import pytest
import requests

import keycel
from helpers import CHEAP, DEFAULT_POLICY, EXAMPLES

UNAUTHORIZED = b'{"error":"invalid_token","message":"Invalid username/account key"}'


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, base: str, keyring: keycel.Keyring, tokens: Dict[str, str], ids: Dict[str, str]) -> None:
        self.base = base
        self.keyring = keyring
        self.tokens = tokens
        self.ids = ids


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server")
    db = tmp / "keys.db"
    kr = keycel.Keyring(keycel.SqliteStore(db), hash=CHEAP)
    tokens: Dict[str, str] = {}
    ids: Dict[str, str] = {}
    for label, role, accounts in [
        ("reader", "reader", ["acc_1"]),
        ("admin", "admin", "all"),
        ("rotating", "reader", "all"),
        ("deactivated", "reader", "all"),
        ("slow", "reader", "all"),
    ]:
        issued = kr.create(label, role=role, accounts=accounts)
        ids[label] = issued.client_id
        tokens[label] = issued.token
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
        yield Server(base, kr, tokens, ids)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_basic_auth_with_token_as_user(server: Server) -> None:
    r = requests.get(server.base + "/v1/accounts/acc_1/data", auth=(server.tokens["reader"], ""), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"account": "acc_1", "key_id": server.ids["reader"], "key_name": "reader"}


def test_bearer(server: Server) -> None:
    r = httpx.get(server.base + "/v1/accounts/acc_1/data", headers={"Authorization": f"Bearer {server.tokens['reader']}"})
    assert r.status_code == 200 and r.json()["key_id"] == server.ids["reader"]


def test_header_pair(server: Server) -> None:
    token = server.tokens["reader"]
    r = httpx.get(
        server.base + "/v1/accounts/acc_1/data",
        headers={"X-Keycel-Client-Id": token[:19], "X-Keycel-Secret-Key": token[20:]},
    )
    assert r.status_code == 200 and r.json()["key_id"] == server.ids["reader"]


def test_wrong_secret(server: Server) -> None:
    token = server.tokens["reader"]
    bad = token[:-12] + ("x" if token[-12] != "x" else "y") + token[-11:]
    r = requests.get(server.base + "/v1/accounts/acc_1/data", auth=(bad, ""), timeout=10)
    assert r.status_code == 401 and r.content == UNAUTHORIZED
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert r.headers["content-type"] == "application/json"


def test_no_credentials(server: Server) -> None:
    r = httpx.get(server.base + "/v1/accounts/acc_1/data")
    assert r.status_code == 401 and "www-authenticate" in r.headers


def test_out_of_scope_account_is_404_like_a_missing_resource(server: Server) -> None:
    h = {"Authorization": f"Bearer {server.tokens['reader']}"}
    out = httpx.get(server.base + "/v1/accounts/acc_2/data", headers=h)
    missing = httpx.get(server.base + "/v1/accounts/acc_1/missing", headers=h)
    assert out.status_code == missing.status_code == 404
    assert out.content == missing.content == keycel.Engine(DEFAULT_POLICY).not_found_body().encode()
    assert out.headers["content-type"] == missing.headers["content-type"]


def test_rotated_key(server: Server) -> None:
    url = server.base + "/v1/accounts/acc_1/data"
    old = server.tokens["rotating"]
    assert requests.get(url, auth=(old, ""), timeout=10).status_code == 200
    new = server.keyring.rotate(server.ids["rotating"]).token
    r = requests.get(url, auth=(old, ""), timeout=10)
    assert r.status_code == 401 and r.content == UNAUTHORIZED
    assert requests.get(url, auth=(new, ""), timeout=10).status_code == 200


def test_deactivated_key(server: Server) -> None:
    url = server.base + "/v1/accounts/acc_1/data"
    token = server.tokens["deactivated"]
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    server.keyring.deactivate(server.ids["deactivated"])
    r = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.content == UNAUTHORIZED


def test_admin_scope_only_on_admin_api(server: Server) -> None:
    ok = httpx.post(server.base + "/admin/accounts", headers={"Authorization": f"Bearer {server.tokens['admin']}"})
    assert ok.status_code == 200 and ok.json() == {"created": True, "by": server.ids["admin"]}
    no = httpx.post(server.base + "/admin/accounts", headers={"Authorization": f"Bearer {server.tokens['reader']}"})
    assert no.status_code == 403 and no.json()["error"] == "insufficient_scope"


def test_six_concurrent_slow_requests_sixth_gets_429(server: Server) -> None:
    url = server.base + "/v1/accounts/acc_1/slow?ms=2500"
    h = {"Authorization": f"Bearer {server.tokens['slow']}"}

    def call(_: int) -> Tuple[int, Dict[str, str], bytes]:
        r = httpx.get(url, headers=h, timeout=30)
        return r.status_code, dict(r.headers), r.content

    with ThreadPoolExecutor(max_workers=6) as ex:
        results = list(ex.map(call, range(6)))
    statuses = sorted(s for s, _, _ in results)
    assert statuses == [200, 200, 200, 200, 200, 429], statuses
    busy = next(r for r in results if r[0] == 429)
    assert busy[1]["retry-after"] == "1"
    assert busy[2] == b'{"error":"too_many_requests","message":"Too many concurrent requests for this key"}'
    # every lease was released when its request ended
    again = httpx.get(server.base + "/v1/accounts/acc_1/slow?ms=0", headers=h)
    assert again.status_code == 200


def test_middleware_hands_the_key_to_the_handler(server: Server) -> None:
    h = {"Authorization": f"Bearer {server.tokens['reader']}"}
    r = httpx.get(server.base + "/mw/accounts/acc_1/data", headers=h)
    assert r.status_code == 200
    assert r.json() == {"account": "acc_1", "key_id": server.ids["reader"], "via": "middleware"}


def test_middleware_denials_use_core_bodies(server: Server) -> None:
    engine = keycel.Engine(DEFAULT_POLICY)
    missing = engine.authorize({}, "api.read")
    r = httpx.get(server.base + "/mw/accounts/acc_1/data")
    assert r.status_code == 401 and r.content == missing.body_json().encode()
    assert r.headers["www-authenticate"] == missing.headers["WWW-Authenticate"]
    h = {"Authorization": f"Bearer {server.tokens['reader']}"}
    out = httpx.get(server.base + "/mw/accounts/acc_2/data", headers=h)
    assert out.status_code == 404 and out.content == engine.not_found_body().encode()
    bad = httpx.get(server.base + "/mw/accounts/acc_1/data", auth=("kc_nonsense", ""))
    assert bad.status_code == 401 and bad.content == UNAUTHORIZED
