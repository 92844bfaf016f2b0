"""Type-checked with `mypy --strict` (make mypy): the public API as a user writes it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

import keycel
from keycel.offload import Offload
from keycel.stores import DictStore, DocumentStore


def lifecycle() -> List[str]:
    store: DocumentStore = DictStore()
    engine = keycel.Engine(None, store=store)
    kr: keycel.Keyring = engine.keyring(hash={"m_cost": 1024, "t_cost": 1, "p_cost": 1})
    issued: keycel.IssuedKey = kr.create("svc", role="reader", accounts=["acc_1"], expires_in=timedelta(days=30))
    token: str = issued.token
    rec: keycel.KeyRecord = kr.rename(issued.client_id, "service")
    exp: Optional[datetime] = rec.expires_at
    kr.set_accounts(rec.id, "all")
    rotated = kr.rotate(rec.id, grace="1h")
    user: keycel.UserRecord = kr.put_user("u1", roles=["viewer"])
    removed: int = kr.remove_user(user.id)
    d: Dict[str, object] = rec.to_dict()
    stored: Dict[str, object] = rec.to_storage_dict()
    again = keycel.KeyRecord.from_storage_dict(stored)
    again = keycel.KeyRecord.from_storage_json(rec.to_storage_json())
    metered = kr.create("metered", role="reader", rate_limit={"limit": 100, "per": "1m", "burst": 20},
                        credits={"remaining": 1000, "refill": {"amount": 1000, "interval": timedelta(days=1)}})
    kr.create("metered2", role="reader", rate_limit={"limit": 5, "per": 10}, credits=50)
    left: Optional[int] = engine.usage(metered.client_id)
    forms = kr.create("svc2", role="reader").reveal()
    basic: str = forms["authorization_basic"]
    pair: Dict[str, str] = forms["headers"]
    rehashing = keycel.Engine(None, store=store, rehash_on_use=True)
    waited: int = rehashing.wait_for_rehashes()
    authority: Dict[str, Any] = engine.explain(rec)
    roles: Dict[str, List[str]] = engine.roles()
    catalogue: Dict[str, str] = engine.scopes()
    decision = engine.authorize({"Authorization": f"Bearer {token}"}, "api.read", account="acc_1",
                                now=datetime.now(timezone.utc))
    with decision as dd:
        status: int = dd.status
        rules = dd.matched_rules
        body: str = dd.body_json()
    try:
        kr.get("kc_missing")
    except keycel.NotFoundError as e:
        missing_id: str = e.id
    except keycel.KeycelError:
        pass
    return [token, str(exp), rotated.client_id, str(removed), again.id, str(status), body, *rules, basic, str(d),
            str(pair), str(left), str(waited), str(rehashing.rehash_on_use), str(authority), str(roles), str(catalogue)]


async def serve(engine: keycel.Engine, token: str) -> int:
    async with engine.authorize([("authorization", f"Bearer {token}")], "api.read") as d:
        if d.lease is not None:
            async with d.lease:
                pass
        return d.status


def errors() -> Optional[str]:
    try:
        keycel.Engine.from_toml("version = 1\n[scopes\n", origin="x.toml")
    except keycel.PolicyError as e:
        where: str = e.file
        line: Optional[int] = e.line
        rule: Optional[str] = e.rule_id
        return f"{where}:{line}:{rule}"
    return None


async def on_a_loop(engine: keycel.Engine, token: str) -> int:
    pools: Offload = engine.configure_offload(hash_threads=2, hash_queue=4)
    busy: int = pools.hash.busy
    decision: keycel.Decision = await engine.authorize_async({"Authorization": f"Bearer {token}"}, "api.read", ip="10.0.0.1")
    step = engine.authorize_step({}, "api.read", client_ip="10.0.0.1")
    if isinstance(step, keycel.Pending):
        shed: keycel.Decision = step.overloaded()
        return shed.status + busy
    return decision.status + busy


if __name__ == "__main__":
    print(lifecycle(), errors(), asyncio.run(serve(keycel.Engine(), "x")))
