"""Engine.authorize_step / Pending.finish: core says whether argon2 is needed (issue 12)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Dict

import pytest

import keycel
from helpers import CHEAP, DEFAULT_POLICY

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_first_use_is_pending_then_the_cache_decides_in_the_step() -> None:
    engine = keycel.Engine(DEFAULT_POLICY)
    issued = engine.keyring(hash=CHEAP).create("k", role="reader", now=NOW)
    token = issued.token  # readable once
    step = engine.authorize_step(bearer(token), "api.read", now=NOW)
    assert isinstance(step, keycel.Pending)
    assert step.client_id == issued.client_id and not step.finished
    with step.finish(now=NOW) as d:
        assert d.allowed and d.lease is not None and d.key is not None
    assert step.finished
    with pytest.raises(keycel.InvalidArgumentError):
        step.finish(now=NOW)
    cached = engine.authorize_step(bearer(token), "api.read", now=NOW)
    assert isinstance(cached, keycel.Decision)
    with cached as d:
        assert d.allowed and d.lease is not None


def test_cheap_failures_decide_and_unknown_ids_wait_for_their_dummy_hash() -> None:
    engine = keycel.Engine(DEFAULT_POLICY)
    missing = engine.authorize_step({}, "api.read", now=NOW)
    assert isinstance(missing, keycel.Decision) and missing.status == 401
    forged = keycel.Keyring(hash=CHEAP).create("elsewhere", role="reader", now=NOW).token
    pending = engine.authorize_step(bearer(forged), "api.read", now=NOW)
    assert isinstance(pending, keycel.Pending)
    d = pending.finish(now=NOW)
    assert d.status == 401 and d.code == "invalid_token"


def test_a_spent_address_gets_a_cheap_429_and_cached_keys_still_answer() -> None:
    policy = DEFAULT_POLICY.read_text() + "\n[defaults.throttle]\nper_ip = 2\n"
    engine = keycel.Engine.from_toml(policy)
    token = engine.keyring(hash=CHEAP).create("k", role="reader", now=NOW).token
    with engine.authorize(bearer(token), "api.read", now=NOW, client_ip="192.0.2.9"):
        pass
    forge = keycel.Keyring(hash=CHEAP)
    for _ in range(2):
        d = engine.authorize(bearer(forge.create("f", role="reader").token), "api.read", now=NOW, client_ip="192.0.2.9")
        assert d.status == 401
    step = engine.authorize_step(bearer(forge.create("f", role="reader").token), "api.read", now=NOW, client_ip="192.0.2.9")
    assert isinstance(step, keycel.Decision), "a throttled request must not wait for argon2"
    assert step.status == 429 and step.code == "too_many_failures" and step.header("Retry-After") == "30"
    with engine.authorize(bearer(token), "api.read", now=NOW, client_ip="192.0.2.9") as d:
        assert d.allowed, "the cached key from the same address"
