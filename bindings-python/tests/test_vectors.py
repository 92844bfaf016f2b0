"""The shared conformance vectors (tests/vectors/*.json), the very files Rust and WASM run.

Runner contract (tests/vectors/README.md): build the engine from `policy`, put `keys` and
`users` into an in-memory store, then per case hold `in_flight` leases, authorize, compare.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import keycel

from helpers import REPO, VECTORS


def load_cases() -> List[Tuple[Path, Dict[str, Any]]]:
    files = sorted(VECTORS.glob("*.json"))
    out = []
    for f in files:
        doc = json.loads(f.read_text())
        for case in doc["cases"]:
            out.append((f, case))
    return out


CASES = load_cases()


def test_vector_files_exist() -> None:
    files = sorted(VECTORS.glob("*.json"))
    assert files, f"no conformance vectors in {VECTORS}: the Python runner has nothing to check"
    assert len(CASES) >= len(files)


_ENGINES: Dict[Path, Tuple[keycel.Engine, Dict[str, Any]]] = {}


def engine_for(path: Path) -> Tuple[keycel.Engine, Dict[str, Any]]:
    if path not in _ENGINES:
        doc = json.loads(path.read_text())
        store = keycel.MemoryStore()
        for k in doc["keys"]:
            store.insert_key(keycel.KeyRecord.from_dict(k))
        for u in doc["users"]:
            store.put_user(keycel.UserRecord.from_dict(u))
        _ENGINES[path] = (keycel.Engine(REPO / doc["policy"], store=store), doc)
    return _ENGINES[path]


@pytest.mark.parametrize(
    "path,case", CASES, ids=[f"{p.stem}:{c['name']}" for p, c in CASES] or None
)
def test_vector(path: Path, case: Dict[str, Any]) -> None:
    engine, doc = engine_for(path)
    now = case.get("now") or doc["now"]
    req = case["request"]
    headers = [(n, v) for n, v in case["headers"]]

    def call() -> keycel.Decision:
        return engine.authorize(
            headers,
            req["action"],
            account=req.get("account"),
            method=req.get("method"),
            path=req.get("path"),
            ip=req.get("ip"),
            attributes=req.get("attributes") or None,
            now=now,
            cost=req.get("cost"),
        )

    held = []
    try:
        for i in range(case.get("in_flight", 0)):
            d = call()
            assert d.allowed, f"in-flight request {i} was denied: {d.reason}"
            held.append(d)
        got = call()
    finally:
        for d in held:
            d.release()
    got.release()
    exp = case["expect"]
    assert (got.allowed, got.status, got.code, got.message, got.key_id, list(got.matched_rules)) == (
        exp["allowed"],
        exp["status"],
        exp["code"],
        exp["message"],
        exp["key_id"],
        exp["matched_rules"],
    ), got.reason
    for name, value in exp.get("headers", {}).items():
        assert got.header(name) == value, (name, got.headers)


# Management cases (issue 11): every keyring runs the same operations by the same keys and
# must reach the same outcome. Each case starts from a fresh copy of the vector's records.
MANAGEMENT = [
    (f, case)
    for f in sorted(VECTORS.glob("*.json"))
    for case in json.loads(f.read_text()).get("management", [])
]
CHEAP = {"m_cost": 1024, "t_cost": 1, "p_cost": 1}


def test_management_vectors_exist() -> None:
    assert MANAGEMENT, "no management cases in the vectors: delegation is unchecked in Python"


def _outcome(call: Any) -> Dict[str, Any]:
    try:
        call()
    except keycel.DeniedError as e:
        return {"ok": False, "error": "denied", "status": e.decision.status, "code": e.decision.code}
    except keycel.NotFoundError:
        return {"ok": False, "error": "not_found", "status": None, "code": None}
    except keycel.InvalidRecordError:
        return {"ok": False, "error": "invalid", "status": None, "code": None}
    return {"ok": True, "error": None, "status": None, "code": None}


@pytest.mark.parametrize(
    "path,case", MANAGEMENT, ids=[f"{p.stem}:{c['name']}" for p, c in MANAGEMENT] or None
)
def test_management_vector(path: Path, case: Dict[str, Any]) -> None:
    engine, doc = engine_for(path)
    store = keycel.MemoryStore()
    for k in doc["keys"]:
        store.insert_key(keycel.KeyRecord.from_dict(k))
    for u in doc["users"]:
        store.put_user(keycel.UserRecord.from_dict(u))
    ring = keycel.Keyring(store, guard=engine, hash=CHEAP)
    now = case.get("now") or doc["now"]
    tokens = doc["tokens"]
    actor: Any = "vectors" if case["actor"] == "operator" else store.get_key(tokens[case["actor"]]["client_id"])
    assert actor is not None
    target = tokens[case["target"]]["client_id"] if case.get("target") else ""
    change = case.get("change") or {}
    op = case["op"]

    def call() -> Any:
        if op == "create":
            k = case["key"]
            return ring.create(
                "vector",
                role=k["role"],
                kind=k["kind"],
                user=k.get("user"),
                scopes=k.get("scopes") or None,
                accounts=k["accounts"],
                expires_in=k.get("expires_in"),
                max_concurrent=k.get("max_concurrent"),
                actor=actor,
                now=now,
            )
        if op == "update":
            (field, value), = change.items()
            setter: Dict[str, Any] = {
                "role": ring.set_role,
                "scopes": ring.set_scopes,
                "accounts": ring.set_accounts,
                "expires_at": ring.set_expiry,
                "max_concurrent": ring.set_max_concurrent,
            }
            return setter[field](target, value, actor=actor, now=now)
        if op == "set_active":
            return ring.set_active(target, change["active"], actor=actor, now=now)
        if op == "rotate":
            return ring.rotate(target, actor=actor, now=now)
        if op == "delete":
            return ring.delete(target, actor=actor, now=now)
        if op == "get":
            return ring.get(target, actor=actor, now=now)
        raise AssertionError(f"unknown op {op}")

    assert _outcome(call) == case["expect"], case["name"]
