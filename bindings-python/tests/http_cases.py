"""Runs the shared HTTP cases (tests/http_cases/cases.json at the repository root) against a
server listening on 127.0.0.1. The same file drives every framework integration; see
tests/http_cases/README.md for the route contract and the step kinds."""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Dict, Iterator, List, Optional

import httpx

from helpers import REPO

CASES_FILE = REPO / "tests" / "http_cases" / "cases.json"


def load() -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads(CASES_FILE.read_text())
    if not data.get("scenarios"):
        raise RuntimeError(f"{CASES_FILE}: no scenarios")
    return data


class Key:
    def __init__(self, client_id: str, token: str) -> None:
        self.client_id = client_id
        self.token = token
        self.secret = token[len(client_id) + 1 :]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def auth_headers(auth: Dict[str, Any], keys: Dict[str, Key]) -> Dict[str, str]:
    form = auth["form"]
    if form == "none":
        return {}
    if form == "raw":
        return dict(auth["headers"])
    k = keys[auth["key"]]
    pair = {"X-Keycel-Client-Id": k.client_id, "X-Keycel-Secret-Key": k.secret}
    if form == "bearer":
        return {"Authorization": f"Bearer {k.token}"}
    if form == "basic_token":
        return {"Authorization": _basic(k.token, "")}
    if form == "basic_pair":
        return {"Authorization": _basic(k.client_id, k.secret)}
    if form == "header_pair":
        return pair
    if form == "wrong_secret":
        i = len(k.token) - 12
        flipped = "x" if k.token[i] != "x" else "y"
        return {"Authorization": f"Bearer {k.token[:i]}{flipped}{k.token[i + 1:]}"}
    if form == "two_methods":
        return {"Authorization": f"Bearer {k.token}", **pair}
    raise ValueError(f"unknown credential form {form!r}")


def _substitute(value: Any, keys: Dict[str, Key]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$key_id"}:
            return keys[value["$key_id"]].client_id
        return {k: _substitute(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, keys) for v in value]
    return value


def check(where: str, r: httpx.Response, expect: Dict[str, Any], keys: Dict[str, Key], saved: Dict[str, httpx.Response]) -> None:
    assert r.status_code == expect["status"], f"{where}: status {r.status_code}, body {r.content!r}"
    if "body" in expect:
        assert r.content == expect["body"].encode(), f"{where}: body {r.content!r}"
    if "json" in expect:
        assert r.json() == _substitute(expect["json"], keys), f"{where}: json {r.content!r}"
    for name, value in expect.get("headers", {}).items():
        assert r.headers.get(name) == value, f"{where}: header {name}: {r.headers.get(name)!r}"
    for name, part in expect.get("header_contains", {}).items():
        assert part in r.headers.get(name, ""), f"{where}: header {name}: {r.headers.get(name)!r}"
    if "same_as" in expect:
        other = saved[expect["same_as"]]
        assert r.content == other.content, f"{where}: body {r.content!r} differs from {other.content!r}"
        assert r.headers.get("content-type") == other.headers.get("content-type"), where


def run(base: str, scenario: Dict[str, Any], keys: Dict[str, Key]) -> None:
    saved: Dict[str, httpx.Response] = {}
    stream: Optional[httpx.Response] = None
    chunks: Iterator[bytes] = iter(())
    first = b""
    with httpx.Client(base_url=base, timeout=20) as client:
        try:
            for i, step in enumerate(scenario["steps"]):
                where = f"{scenario['name']} / step {i} ({step['do']})"
                do = step["do"]
                if do == "request":
                    r = client.request(step["method"], step["path"], headers=auth_headers(step["auth"], keys))
                    check(where, r, step["expect"], keys, saved)
                    if "save_as" in step:
                        saved[step["save_as"]] = r
                elif do == "open_stream":
                    req = client.build_request("GET", step["path"], headers=auth_headers(step["auth"], keys))
                    stream = client.send(req, stream=True)
                    assert stream.status_code == 200, f"{where}: status {stream.status_code}"
                    chunks = stream.iter_raw()
                    first = next(chunks)
                    assert first, where
                elif do == "finish_stream":
                    assert stream is not None, where
                    rest: List[bytes] = list(chunks)
                    assert first + b"".join(rest) == step["body"].encode(), f"{where}: {first!r} + {rest!r}"
                    stream.close()
                    stream = None
                elif do == "abort_stream":
                    assert stream is not None, where
                    stream.close()  # unread: httpx drops the connection
                    stream = None
                elif do == "in_flight":
                    key_id = keys[step["key"]].client_id
                    deadline = time.monotonic() + 5
                    while True:
                        n = client.get(f"/_inflight/{key_id}").json()["in_flight"]
                        if n == step["n"]:
                            break
                        assert time.monotonic() < deadline, f"{where}: {n} leases in flight, expected {step['n']}"
                        time.sleep(0.05)
                else:
                    raise ValueError(f"{where}: unknown step kind")
        finally:
            if stream is not None:
                stream.close()


def scenario_ids(data: Dict[str, Any]) -> List[str]:
    return [s["name"] for s in data["scenarios"]]


__all__ = ["CASES_FILE", "Key", "load", "run", "scenario_ids"]
