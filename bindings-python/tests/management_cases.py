"""Runs the shared management API cases (tests/http_cases/management.json) against a server on
127.0.0.1. The Rust runner (core/tests/management_http.rs) and the JS runner read the same
file; see tests/http_cases/README.md, section "Management API cases"."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Dict, List, Optional, Tuple

import httpx

import keycel
from helpers import REPO

CASES_FILE = REPO / "tests" / "http_cases" / "management.json"


def load() -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads(CASES_FILE.read_text())
    if not data.get("scenarios"):
        raise RuntimeError(f"{CASES_FILE}: no scenarios")
    return data


class Cred:
    def __init__(self, client_id: str, secret: str, token: str) -> None:
        self.client_id = client_id
        self.secret = secret
        self.token = token


def seed(keyring: keycel.Keyring, data: Dict[str, Any]) -> Dict[str, Cred]:
    """The cases' users and keys, created by the operator (keys named by their label)."""
    for uid, u in data["users"].items():
        keyring.put_user(keycel.UserRecord(uid, u["roles"], u["accounts"]))
    out: Dict[str, Cred] = {}
    for label, k in data["keys"].items():
        issued = keyring.create(
            label, role=k["role"], kind=k.get("kind", "api"), user=k.get("user"), accounts=k["accounts"]
        )
        r = issued.reveal()
        out[label] = Cred(r["client_id"], r["secret_key"], r["token"])
    return out


class Saved:
    def __init__(self, r: httpx.Response) -> None:
        self.body = r.content
        self.content_type = r.headers.get("content-type")
        try:
            self.json: Any = r.json()
        except ValueError:
            self.json = None


def _lookup(saved: Dict[str, Saved], path: str) -> Any:
    name, *parts = path.split(".")
    v = saved[name].json
    for p in parts:
        v = v[p]
    return v


def template(s: str, keys: Dict[str, Cred], saved: Dict[str, Saved]) -> str:
    def sub(m: "re.Match[str]") -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "id":
            return keys[arg].client_id
        return str(_lookup(saved, arg))

    return re.sub(r"\{(id|saved):([^}]+)\}", sub, s)


def _cred(auth: Dict[str, Any], keys: Dict[str, Cred], saved: Dict[str, Saved]) -> Cred:
    if "key" in auth:
        return keys[auth["key"]]
    s = saved[auth["saved"]].json["secret"]
    return Cred(s["client_id"], s["secret_key"], s["token"])


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def auth_headers(auth: Dict[str, Any], keys: Dict[str, Cred], saved: Dict[str, Saved]) -> List[Tuple[str, str]]:
    form = auth["form"]
    if form == "none":
        return []
    c = _cred(auth, keys, saved)
    if form == "bearer":
        return [("Authorization", f"Bearer {c.token}")]
    if form == "basic_token":
        return [("Authorization", _basic(c.token, ""))]
    if form == "basic_pair":
        return [("Authorization", _basic(c.client_id, c.secret))]
    if form == "header_pair":
        return [("X-Keycel-Client-Id", c.client_id), ("X-Keycel-Secret-Key", c.secret)]
    if form == "wrong_secret":
        i = len(c.token) - 12
        flipped = "x" if c.token[i] != "x" else "y"
        return [("Authorization", f"Bearer {c.token[:i]}{flipped}{c.token[i + 1:]}")]
    raise ValueError(f"unknown credential form {form!r}")


def matches(expected: Any, actual: Any, keys: Dict[str, Cred], saved: Dict[str, Saved]) -> bool:
    """``expected`` is a subset of ``actual`` (objects by the keys given, arrays exactly)."""
    if isinstance(expected, dict):
        if set(expected) == {"$key_id"}:
            return bool(actual == keys[expected["$key_id"]].client_id)
        if set(expected) == {"$saved"}:
            return bool(actual == _lookup(saved, expected["$saved"]))
        if set(expected) == {"$type"}:
            kinds = {"string": str, "number": (int, float)}
            return isinstance(actual, kinds[expected["$type"]])  # type: ignore[arg-type]
        return isinstance(actual, dict) and all(
            k in actual and matches(v, actual[k], keys, saved) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(matches(e, a, keys, saved) for e, a in zip(expected, actual))
        )
    return bool(expected == actual) and type(expected) is type(actual)


def check(where: str, r: httpx.Response, expect: Dict[str, Any], keys: Dict[str, Cred], saved: Dict[str, Saved]) -> None:
    text = r.content.decode("utf-8", "replace")
    assert "$argon2" not in text, f"{where}: an answer carries a hash: {text}"
    assert r.status_code == expect["status"], f"{where}: status {r.status_code}, body {text}"
    if "body" in expect:
        assert text == expect["body"], f"{where}: body {text}"
    if "json_has" in expect:
        assert matches(expect["json_has"], r.json(), keys, saved), f"{where}: {text} does not match {expect['json_has']}"
    for k, n in expect.get("json_len", {}).items():
        assert len(r.json()[k]) == n, f"{where}: {k} in {text}"
    for name, value in expect.get("headers", {}).items():
        assert r.headers.get(name) == value, f"{where}: header {name}: {r.headers.get(name)!r}"
    for name, part in expect.get("header_contains", {}).items():
        assert part in r.headers.get(name, ""), f"{where}: header {name}: {r.headers.get(name)!r}"
    for part in expect.get("body_contains", []):
        p = template(part, keys, saved)
        assert p in text, f"{where}: {p} not in {text}"
    for part in expect.get("body_excludes", []):
        p = template(part, keys, saved)
        assert p not in text, f"{where}: {p} in {text}"
    if "same_as" in expect:
        other = saved[expect["same_as"]]
        assert r.content == other.body, f"{where}: {r.content!r} differs from {other.body!r}"
        assert r.headers.get("content-type") == other.content_type, where


def run(base: str, scenario: Dict[str, Any], keys: Dict[str, Cred]) -> None:
    saved: Dict[str, Saved] = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for i, step in enumerate(scenario["steps"]):
            where = f"{scenario['name']} / step {i}"
            assert step["do"] == "request", where
            headers = auth_headers(step["auth"], keys, saved)
            headers += list(step.get("headers", {}).items())
            content: Optional[bytes] = None
            if "body" in step:
                content = json.dumps(step["body"]).encode()
            if "raw_body" in step:
                content = step["raw_body"].encode()
            path = template(step["path"], keys, saved)
            r = client.request(step["method"], base + path, headers=headers, content=content)
            if "save_as" in step:
                saved[step["save_as"]] = Saved(r)
            check(where, r, step["expect"], keys, saved)


def scenario_ids(data: Dict[str, Any]) -> List[str]:
    return [s["name"] for s in data["scenarios"]]
