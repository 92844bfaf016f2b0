"""Issue 11 through the public Python API: a key acting through management never creates,
reshapes or takes over a key that exceeds itself, and stale actors are refused. Each attack
from the issue, reproduced as a user would run it (default policy, in-process)."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import pytest

import keycel

NOW = "2026-11-23T12:00:00Z"
LATER = "2026-11-23T14:00:00Z"


def bearer(token: str) -> List[Tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


def make(ring: keycel.Keyring, role: str, **kw: Any) -> Tuple[keycel.KeyRecord, str]:
    issued = ring.create("k", role=role, now=NOW, **kw)
    return issued.record, issued.token


def denied(call: Any) -> keycel.Decision:
    with pytest.raises(keycel.DeniedError) as e:
        call()
    return e.value.decision


def status(engine: keycel.Engine, token: str, action: str, **kw: Any) -> int:
    d = engine.authorize(bearer(token), action, now=NOW, **kw)
    d.release()
    return d.status


def test_self_promotion_to_admin(engine: keycel.Engine, keyring: keycel.Keyring) -> None:
    me, token = make(keyring, "reader", scopes=["keys.update", "keys.manage_all"])
    assert denied(lambda: keyring.set_role(me.id, "admin", actor=me, now=NOW)).status == 403
    d = denied(lambda: keyring.set_scopes(me.id, ["admin.*", "keys.*", "users.*"], actor=me, now=NOW))
    assert d.code == "insufficient_scope"
    assert status(engine, token, "admin.account.create", path="/admin/accounts") == 403


def test_account_limited_admin(engine: keycel.Engine, keyring: keycel.Keyring) -> None:
    admin, _ = make(keyring, "admin", accounts=["acc_1"])
    d = denied(lambda: keyring.create("wide", role="reader", accounts="all", actor=admin, now=NOW))
    assert d.code == "exceeds_actor"
    assert denied(lambda: keyring.set_accounts(admin.id, "all", actor=admin, now=NOW)).code == "exceeds_actor"
    other, other_token = make(keyring, "reader", accounts=["acc_2"])
    texts = []
    for call in (
        lambda: keyring.rotate(other.id, actor=admin, now=NOW),
        lambda: keyring.delete(other.id, actor=admin, now=NOW),
        lambda: keyring.get(other.id, actor=admin, now=NOW),
        lambda: keyring.deactivate(other.id, actor=admin, now=NOW),
    ):
        with pytest.raises(keycel.NotFoundError) as e:
            call()
        texts.append(str(e.value))
    assert other.id not in [k.id for k in keyring.list(actor=admin, now=NOW)]
    assert status(engine, other_token, "api.read", account="acc_2") == 200
    keyring.delete(other.id, now=NOW)
    with pytest.raises(keycel.NotFoundError) as gone:
        keyring.get(other.id, actor=admin, now=NOW)
    assert set(texts) == {str(gone.value)}


def test_wildcard_minting(keyring: keycel.Keyring) -> None:
    keyring.put_user("root", roles=["admin"], now=NOW)
    me, _ = make(keyring, "reader", scopes=["keys.create", "keys.manage_all"])
    d = denied(
        lambda: keyring.create(
            "t", role="reader", kind="personal", user="root", scopes=["keys.create.*"], actor=me, now=NOW
        )
    )
    assert d.code == "insufficient_scope"


def test_short_lived_mints_permanent(keyring: keycel.Keyring) -> None:
    keyring.put_user("v", roles=["viewer"], now=NOW)
    me, _ = make(keyring, "viewer", kind="personal", user="v", expires_in="1h")
    d = denied(lambda: keyring.create("forever", role="viewer", kind="personal", user="v", actor=me, now=NOW))
    assert d.code == "exceeds_actor"
    keyring.create("short", role="viewer", kind="personal", user="v", expires_in="30m", actor=me, now=NOW)


@pytest.mark.parametrize("how", ["deactivate", "delete", "expire", "rotate"])
def test_stale_decision_actor(engine: keycel.Engine, keyring: keycel.Keyring, how: str) -> None:
    me, token = make(keyring, "admin")
    decision = engine.authorize(bearer(token), "keys.create.api", now=NOW)
    assert decision.allowed
    keyring.create("ok", role="reader", actor=decision, now=NOW)
    when: Optional[str] = NOW
    if how == "deactivate":
        keyring.deactivate(me.id, now=NOW)
    elif how == "delete":
        keyring.delete(me.id, now=NOW)
    elif how == "expire":
        keyring.set_expiry(me.id, NOW, now=NOW)
        when = LATER
    else:
        keyring.rotate(me.id, now=NOW)
    for actor in (decision, me):
        d = denied(lambda: keyring.create("x", role="reader", actor=actor, now=when))
        assert d.status == 401


def test_narrower_personal_token(engine: keycel.Engine, keyring: keycel.Keyring) -> None:
    keyring.put_user("ed", roles=["editor"], now=NOW)
    token = keyring.create("ro", role="reader", kind="personal", user="ed", now=NOW).token
    assert status(engine, token, "api.read") == 200
    assert status(engine, token, "api.write") == 403
    with pytest.raises(keycel.InvalidRecordError):
        keyring.create("x", role="admin", kind="personal", user="ed", now=NOW)


def test_management_checks_take_no_slot(engine: keycel.Engine, keyring: keycel.Keyring) -> None:
    _, token = make(keyring, "admin", max_concurrent=1)
    held = [engine.authorize(bearer(token), "keys.create.api", now=NOW) for _ in range(30)]
    assert all(d.allowed for d in held)
    for d in held:
        d.release()


def test_omitted_path_does_not_widen(engine: keycel.Engine, keyring: keycel.Keyring) -> None:
    _, token = make(keyring, "admin")
    assert status(engine, token, "admin.account.create") == 403
    assert status(engine, token, "admin.account.create", path="/admin/accounts") == 200
