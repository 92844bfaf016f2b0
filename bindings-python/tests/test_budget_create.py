"""Issue 13 in Python: a key created with its budget in one step (`Keyring.create(...,
rate_limit=..., credits=...)`, parsed by core like the management API's POST /keys), held to
the delegation rule, and the credits a key has left read through `Engine.usage` from any
engine sharing the admission backend."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Dict

import pytest

import keycel
from helpers import CHEAP, DEFAULT_POLICY

NOW = "2026-11-23T12:00:00Z"


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_create_with_rate_limit_and_credits_is_one_write() -> None:
    ring = keycel.Keyring(hash=CHEAP)
    k = ring.create(
        "metered",
        role="reader",
        rate_limit={"limit": 100, "per": "1m", "burst": 20},
        credits={"remaining": 10_000, "refill": {"amount": 500, "interval": timedelta(days=1)}},
        now=NOW,
    )
    d = k.record.to_dict()
    assert d["rate_limit"] == {"limit": 100, "per": "1m", "burst": 20}
    assert d["credits"] == {"remaining": 10_000, "refill": {"amount": 500, "interval": "1d"}, "set_at": NOW}
    assert d["version"] == 1
    # The same value shapes as the setters: a bare number of credits, per as a timedelta or
    # seconds, burst optional.
    k2 = ring.create("c", role="reader", credits=3, rate_limit={"limit": 5, "per": timedelta(seconds=10)})
    d2 = k2.record.to_dict()
    assert d2["credits"]["remaining"] == 3 and d2["credits"]["refill"] is None
    assert d2["rate_limit"] == {"limit": 5, "per": "10s", "burst": 0}
    k3 = ring.create("p", role="reader", rate_limit={"limit": 5, "per": 120}, credits=None)
    assert k3.record.to_dict()["rate_limit"]["per"] == "2m" and "credits" not in k3.record.to_dict()


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"rate_limit": {"limit": 0, "per": "1m"}}, "rate_limit.limit"),
        ({"rate_limit": {"limit": 5}}, "rate_limit.per"),
        ({"rate_limit": {"limit": 5, "per": "1m", "brust": 1}}, "rate_limit.brust"),
        ({"rate_limit": {"limit": 5, "per": "1m", "burst": -1}}, "rate_limit.burst"),
        ({"credits": -1}, "credits.remaining"),
        ({"credits": {"remaining": 5, "refill": {"amount": 0, "interval": "1d"}}}, "credits.refill.amount"),
        ({"credits": {"remaining": 5, "refill": {"amount": 3}}}, "credits.refill.interval"),
        ({"credits": {"left": 5}}, "credits.left"),
    ],
)
def test_a_bad_budget_creates_nothing(kw: Dict[str, Any], field: str) -> None:
    ring = keycel.Keyring(hash=CHEAP)
    with pytest.raises(keycel.InvalidRecordError) as e:
        ring.create("k", role="reader", **kw)
    assert e.value.field == field, str(e.value)
    assert ring.list() == []


def test_values_without_a_json_form_are_argument_errors() -> None:
    """JSON-shaped mistakes (a list, an unreadable window) are core's field-named
    `InvalidRecordError`, as in every runtime (tests/vectors/forms/budgets.json); a value with
    no JSON form at all cannot be converted and is the binding's `InvalidArgumentError`."""
    ring = keycel.Keyring(hash=CHEAP)
    with pytest.raises(keycel.InvalidArgumentError):
        ring.create("k", role="reader", rate_limit={"limit": 5, "per": object()})
    with pytest.raises(keycel.InvalidArgumentError):
        ring.create("k", role="reader", credits={1, 2})  # type: ignore[arg-type]
    with pytest.raises(keycel.InvalidRecordError) as e:
        ring.create("k", role="reader", rate_limit=[100, "1m"])  # type: ignore[arg-type]
    assert e.value.field == "rate_limit"
    assert ring.list() == []


def test_create_with_a_budget_is_held_to_the_delegation_rule(
    engine: keycel.Engine, keyring: keycel.Keyring
) -> None:
    admin = keyring.create(
        "admin",
        role="admin",
        rate_limit={"limit": 10, "per": "1m", "burst": 2},
        credits={"remaining": 100, "refill": {"amount": 100, "interval": "1d"}},
        now=NOW,
    ).record
    within = {"rate_limit": {"limit": 10, "per": "1m", "burst": 2}, "credits": 100}
    looser = [
        {**within, "rate_limit": {"limit": 11, "per": "1m", "burst": 2}},
        {**within, "rate_limit": {"limit": 10, "per": "1m", "burst": 3}},
        {**within, "rate_limit": None},
        {**within, "credits": 101},
        {**within, "credits": None},
        {**within, "credits": {"remaining": 5, "refill": {"amount": 10, "interval": "1h"}}},
    ]
    for kw in looser:
        with pytest.raises(keycel.DeniedError) as e:
            keyring.create("child", role="reader", actor=admin, now=NOW, **kw)
        assert e.value.decision.code == "exceeds_actor", kw
    assert [r.name for r in keyring.list()] == ["admin"]
    child = keyring.create("child", role="reader", actor=admin, now=NOW, **within)  # type: ignore[arg-type]
    assert child.record.to_dict()["credits"]["remaining"] == 100


def test_usage_reads_credits_left_across_engines_on_one_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    a = keycel.Engine(DEFAULT_POLICY, store=keycel.SqliteStore(db))
    b = keycel.Engine(DEFAULT_POLICY, store=keycel.SqliteStore(db))  # as another worker process
    assert a.admission == b.admission == "sqlite"
    ring = a.keyring(hash=CHEAP)
    k = ring.create("metered", role="reader", credits=10, now=NOW)
    token = k.token  # shown once
    free = ring.create("free", role="reader", now=NOW)
    assert a.usage(k.client_id, now=NOW) == b.usage(k.client_id, now=NOW) == 10
    with a.authorize(bearer(token), "api.read", cost=3, now=NOW) as d:
        assert d.allowed
    assert b.usage(k.client_id, now=NOW) == 7
    with b.authorize(bearer(token), "api.read", cost=7, now=NOW) as d:
        assert d.allowed
    assert a.usage(k.client_id, now=NOW) == 0
    assert a.authorize(bearer(token), "api.read", now=NOW).code == "usage_exceeded"
    assert b.usage(free.client_id) is None
    with pytest.raises(keycel.NotFoundError):
        a.usage("kc_doesnotexist")
    # A new grant is a new count, seen by both.
    ring.set_credits(k.client_id, 4, now=NOW)
    assert b.usage(k.client_id, now=NOW) == 4


def test_usage_with_local_admission_counts_this_process() -> None:
    engine = keycel.Engine(DEFAULT_POLICY, store=keycel.MemoryStore())
    k = engine.keyring(hash=CHEAP).create(
        "k", role="reader", credits={"remaining": 2, "refill": {"amount": 2, "interval": "1h"}}, now=NOW
    )
    with engine.authorize(bearer(k.token), "api.read", cost=2, now=NOW) as d:
        assert d.allowed
    assert engine.usage(k.client_id, now=NOW) == 0
    assert engine.usage(k.client_id, now="2026-11-23T13:00:00Z") == 2, "refilled at the next hour"
