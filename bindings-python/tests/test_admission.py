"""Issue 13: where per-key budgets are counted, chosen per engine (in-process checks; the
real-server checks are in test_admission_server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest

import keycel
from helpers import CHEAP, DEFAULT_POLICY


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_file_sqlite_store_shares_the_budget_between_engines(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    a = keycel.Engine(DEFAULT_POLICY, store=keycel.SqliteStore(db))
    b = keycel.Engine(DEFAULT_POLICY, store=keycel.SqliteStore(db))  # as another worker process
    assert a.admission == b.admission == "sqlite"
    issued = a.keyring(hash=CHEAP).create("k", role="reader")
    token, key_id = issued.token, issued.client_id
    held = [(a if i % 2 else b).authorize(bearer(token), "api.read") for i in range(5)]
    assert all(d.allowed for d in held)
    assert a.in_flight(key_id) == b.in_flight(key_id) == 5
    sixth = b.authorize(bearer(token), "api.read")
    assert sixth.status == 429 and sixth.code == "too_many_requests"
    held.pop().release()
    assert a.authorize(bearer(token), "api.read").allowed
    held.clear()
    assert b.in_flight(key_id) == 0


def test_admission_local_opts_out_and_memory_stores_stay_local(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    assert keycel.Engine(DEFAULT_POLICY, store=keycel.SqliteStore(db), admission="local").admission == "local"
    assert keycel.Engine(DEFAULT_POLICY).admission == "local"
    assert keycel.Engine(DEFAULT_POLICY, store=keycel.SqliteStore.in_memory()).admission == "local"
    assert keycel.Engine.from_toml(DEFAULT_POLICY.read_text(), store=keycel.SqliteStore(db)).admission == "sqlite"


def test_bad_admission_arguments_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(keycel.InvalidArgumentError) as e:
        keycel.Engine(DEFAULT_POLICY, admission="sqlite")
    assert e.value.argument == "admission"
    with pytest.raises(keycel.InvalidArgumentError):
        keycel.Engine(DEFAULT_POLICY, admission="zookeeper")
    with pytest.raises(keycel.InvalidArgumentError):
        keycel.Engine(DEFAULT_POLICY, admission=42)  # type: ignore[arg-type]
