"""Issue 13 in Python: budget setters, the request cost, decision headers and the ASGI
middleware's RateLimit headers on success. Values are converted only; core decides."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, MutableMapping

import pytest

import keycel
from helpers import CHEAP, DEFAULT_POLICY
from keycel.asgi import KeycelMiddleware

NOW = "2026-11-23T12:00:00Z"


def world() -> "tuple[keycel.Engine, keycel.Keyring]":
    store = keycel.MemoryStore()
    return keycel.Engine(DEFAULT_POLICY, store=store), keycel.Keyring(store, hash=CHEAP)


def test_setters_validate_with_the_field_named() -> None:
    _, ring = world()
    k = ring.create("k", role="reader", accounts="all")
    r = ring.set_rate_limit(k.client_id, 100, "1m", 20)
    assert r.to_dict()["rate_limit"] == {"limit": 100, "per": "1m", "burst": 20}
    with pytest.raises(keycel.InvalidRecordError) as e:
        ring.set_rate_limit(k.client_id, 0, "1m")
    assert "rate_limit.limit" in str(e.value)
    with pytest.raises(keycel.InvalidArgumentError):
        ring.set_credits(k.client_id, 5, refill_amount=3)
    with pytest.raises(keycel.InvalidRecordError) as e:
        ring.set_credits(k.client_id, 5, refill_amount=0, refill_interval="1d")
    assert "credits.refill.amount" in str(e.value)
    r = ring.set_credits(k.client_id, 5, refill_amount=5, refill_interval="1d")
    assert r.to_dict()["credits"]["refill"] == {"amount": 5, "interval": "1d"}
    cleared = ring.set_rate_limit(k.client_id, None)
    assert "rate_limit" not in cleared.to_dict()


def test_cost_spends_credits_and_rate_headers_ride_on_decisions() -> None:
    engine, ring = world()
    k = ring.create("k", role="reader", accounts="all")
    ring.set_credits(k.client_id, 5, now=NOW)
    h = {"Authorization": f"Bearer {k.token}"}
    with engine.authorize(h, "api.read", cost=3, now=NOW) as d:
        assert d.allowed
    d = engine.authorize(h, "api.read", cost=3, now=NOW)
    assert (d.status, d.code) == (429, "usage_exceeded")
    with engine.authorize(h, "api.read", cost=2, now=NOW) as d:
        assert d.allowed
    r = ring.create("r", role="reader", accounts="all")
    ring.set_rate_limit(r.client_id, 1, "1m", 1)
    hr = {"Authorization": f"Bearer {r.token}"}
    with engine.authorize(hr, "api.read", now=NOW) as d:
        assert d.header("RateLimit-Policy") == '"default";q=1;w=60'
        assert d.header("RateLimit") == '"default";r=0;t=60'
    d = engine.authorize(hr, "api.read", now=NOW)
    assert (d.status, d.code, d.header("Retry-After")) == (429, "rate_limited", "60")
    with pytest.raises((keycel.InvalidArgumentError, OverflowError, TypeError)):
        engine.authorize(hr, "api.read", cost=-1, now=NOW)


def test_asgi_middleware_sends_ratelimit_on_success_by_default() -> None:
    engine, ring = world()
    k = ring.create("k", role="reader", accounts="all")
    ring.set_rate_limit(k.client_id, 10, "1m", 5)
    token = k.token

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
        await send({"type": "http.response.body", "body": b"ok"})

    def run(mw: KeycelMiddleware) -> Dict[bytes, bytes]:
        sent: List[MutableMapping[str, Any]] = []

        async def send(m: MutableMapping[str, Any]) -> None:
            sent.append(m)

        async def receive() -> Dict[str, Any]:
            return {"type": "http.request"}

        scope = {"type": "http", "method": "GET", "path": "/v1/data", "client": ("127.0.0.1", 5),
                 "headers": [(b"authorization", f"Bearer {token}".encode())]}
        asyncio.run(mw(scope, receive, send))
        return dict(sent[0]["headers"])

    on = run(KeycelMiddleware(app, engine, action="api.read"))
    assert on[b"ratelimit-policy"] == b'"default";q=10;w=60' and on[b"x-app"] == b"1"
    assert on[b"ratelimit"].startswith(b'"default";r=')
    off = run(KeycelMiddleware(app, engine, action="api.read", rate_limit_headers=False, cost=lambda s: 1))
    assert b"ratelimit" not in off
