"""Engine loading, policy errors, authorize from every header shape, decisions and leases,
and the seed products' scenarios end to end through the Python API."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import keycel
from helpers import CHEAP, DEFAULT_POLICY, REPO, basic

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def make(engine: keycel.Engine, role: str = "reader", **kw: Any) -> Tuple[keycel.KeyRecord, str]:
    issued = engine.keyring(hash=CHEAP).create(kw.pop("name", "k"), role=role, now=NOW, **kw)
    return issued.record, issued.token


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- loading ------------------------------------------------------------------------------


def test_load_from_file_toml_dict_and_builtin() -> None:
    src = DEFAULT_POLICY.read_text()
    engines = [
        keycel.Engine(DEFAULT_POLICY),
        keycel.Engine(str(DEFAULT_POLICY)),
        keycel.Engine.from_file(DEFAULT_POLICY),
        keycel.Engine.from_toml(src, origin="default.toml"),
        keycel.Engine(),
    ]
    import tomllib

    engines.append(keycel.Engine(tomllib.loads(src)))
    engines.append(keycel.Engine.from_dict(tomllib.loads(src), origin="mine"))
    assert engines[3].origin == "default.toml" and engines[6].origin == "mine"
    for e in engines:
        rec, token = make(e, role="reader")
        d = e.authorize(bearer(token), "api.read", now=NOW)
        assert d.allowed and d.matched_rules == ("scope-grants-action",), e
        assert not e.authorize(bearer(token), "api.write", now=NOW).allowed


BAD_RULE = """
version = 1
[scopes]
"api.read" = "read"
[roles]
reader = ["api.read"]
[[rules]]
id = "broken"
effect = "allow"
actions = ["*"]
when = "has_scope(request.action) &&"
"""


def test_policy_error_names_file_rule_and_position() -> None:
    with pytest.raises(keycel.PolicyError) as e:
        keycel.Engine.from_toml(BAD_RULE, origin="bad.toml")
    err = e.value
    assert err.file == "bad.toml" and err.rule_id == "broken"
    assert isinstance(err, keycel.KeycelError)
    assert "bad.toml" in str(err)


def test_policy_error_unknown_variable() -> None:
    src = BAD_RULE.replace("has_scope(request.action) &&", "secret_backdoor == 1")
    with pytest.raises(keycel.PolicyError) as e:
        keycel.Engine.from_toml(src, origin="p.toml")
    assert e.value.rule_id == "broken" and "secret_backdoor" in str(e.value)


def test_policy_error_toml_syntax_has_line() -> None:
    with pytest.raises(keycel.PolicyError) as e:
        keycel.Engine.from_toml("version = 1\n[scopes\n", origin="syntax.toml")
    assert e.value.file == "syntax.toml" and e.value.line == 2


def test_policy_error_uncatalogued_scope_in_role() -> None:
    src = BAD_RULE.replace('reader = ["api.read"]', 'reader = ["api.nope"]').replace("&&", "")
    with pytest.raises(keycel.PolicyError) as e:
        keycel.Engine.from_toml(src)
    assert e.value.file == "<string>"


def test_policy_file_missing(tmp_path: Path) -> None:
    with pytest.raises(keycel.PolicyError) as e:
        keycel.Engine(tmp_path / "nope.toml")
    assert "nope.toml" in e.value.file


def test_policy_dict_unknown_field() -> None:
    with pytest.raises(keycel.PolicyError):
        keycel.Engine({"version": 1, "surprise": True})


def test_every_example_policy_loads() -> None:
    files = sorted((REPO / "policies").glob("**/*.toml"))
    files = [f for f in files if not f.name.endswith(".tests.toml")]
    assert len(files) >= 5
    for f in files:
        keycel.Engine(f)


# --- header shapes ------------------------------------------------------------------------


class DjangoLikeHeaders:
    """Case-insensitive mapping with items(), like django.http.HttpHeaders."""

    def __init__(self, d: Dict[str, str]) -> None:
        self._d = {k.title(): v for k, v in d.items()}

    def items(self) -> Any:
        return self._d.items()


def test_authorize_accepts_every_header_shape(engine: keycel.Engine) -> None:
    from starlette.datastructures import Headers

    rec, token = make(engine)
    value = f"Bearer {token}"
    shapes: List[Any] = [
        {"Authorization": value},
        {"authorization": value},
        [("Authorization", value)],
        (("Authorization", value),),
        [(b"authorization", value.encode())],
        [[b"authorization", value.encode()]],
        Headers({"Authorization": value}),
        Headers(raw=[(b"authorization", value.encode())]),
        DjangoLikeHeaders({"authorization": value}),
        iter([("Authorization", value)]),
    ]
    for h in shapes:
        d = engine.authorize(h, "api.read", now=NOW)
        assert d.allowed and d.key_id == rec.id, (h, d.reason)
        d.release()


def test_bad_header_types_raise_type_error(engine: keycel.Engine) -> None:
    with pytest.raises(TypeError):
        engine.authorize({"Authorization": 5}, "api.read")
    with pytest.raises(TypeError):
        engine.authorize([("only-one",)], "api.read")
    with pytest.raises(TypeError):
        engine.authorize(42, "api.read")


def test_irrelevant_headers_are_ignored_like_core_does(engine: keycel.Engine) -> None:
    rec, token = make(engine)
    h = {"Host": "x", "X-Forwarded-For": "1.2.3.4", "Cookie": "a" * 100_000, "Authorization": f"Bearer {token}"}
    d = engine.authorize(h, "api.read", now=NOW)
    assert d.allowed, d.reason
    d.release()
    # a repeated credential header is still seen (400), whatever its case
    d = engine.authorize([("authorization", f"Bearer {token}"), ("AUTHORIZATION", f"Bearer {token}")], "api.read", now=NOW)
    assert d.status == 400 and d.code == "invalid_request"
    # an oversized credential header is refused by core, not silently dropped
    d = engine.authorize({"Authorization": "Bearer " + "a" * 100_000}, "api.read", now=NOW)
    assert d.status == 401


def test_three_credential_forms(engine: keycel.Engine) -> None:
    issued = engine.keyring(hash=CHEAP).create("k", role="reader", now=NOW)
    token = issued.token
    cid, secret = token[:19], token[20:]
    forms = [
        {"Authorization": basic(token)},
        {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()},
        {"Authorization": basic(cid, secret)},
        {"Authorization": f"Bearer {token}"},
        {"X-Keycel-Client-Id": cid, "X-Keycel-Secret-Key": secret},
    ]
    for h in forms:
        d = engine.authorize(h, "api.read", now=NOW)
        assert d.allowed, (h.keys(), d.reason)
        d.release()


# --- decisions ----------------------------------------------------------------------------


def test_decision_fields_when_allowed(engine: keycel.Engine) -> None:
    rec, token = make(engine, role="reader")
    d = engine.authorize(bearer(token), "api.read", account="acc_1", method="GET", path="/v1/x", ip="203.0.113.7", now=NOW)
    assert d and d.allowed and d.status == 200 and d.code is None and d.message == "OK"
    assert d.key_id == rec.id and d.key == rec and d.headers == {}
    assert d.body_json() == '{"ok":true}' and d.reason
    assert d.lease is not None and d.lease.key_id == rec.id and not d.lease.released
    assert d.needs_rehash  # cheap test parameters differ from the policy's owasp preset
    assert d.to_dict()["status"] == 200
    assert d.release() and not d.release()


def test_decision_401_hides_the_reason(engine: keycel.Engine) -> None:
    rec, token = make(engine)
    wrong = token[:-10] + ("A" if token[-10] != "A" else "B") + token[-9:]
    for h in [bearer(wrong), bearer("kc_garbage"), {"Authorization": basic(token[:19], "x" * 38)}]:
        d = engine.authorize(h, "api.read", now=NOW)
        assert not d and d.status == 401 and d.code == "invalid_token"
        assert d.message == "Invalid username/account key"
        assert "invalid_token" in (d.header("www-authenticate") or "")
        assert d.lease is None and d.key is None
        assert json.loads(d.body_json()) == {"error": "invalid_token", "message": "Invalid username/account key"}


def test_missing_credentials(engine: keycel.Engine) -> None:
    d = engine.authorize({}, "api.read", now=NOW)
    assert d.status == 401 and d.code is None and "WWW-Authenticate" in d.headers


def test_invalid_action_is_400(engine: keycel.Engine) -> None:
    _, token = make(engine)
    d = engine.authorize(bearer(token), "Not An Action", now=NOW)
    assert d.status == 400 and d.code == "invalid_request"


def test_attributes_validation(engine: keycel.Engine) -> None:
    _, token = make(engine)
    with pytest.raises(keycel.InvalidArgumentError):
        engine.authorize(bearer(token), "api.read", attributes={"x": object()})
    with pytest.raises(keycel.InvalidArgumentError):
        engine.authorize(bearer(token), "api.read", attributes={"x": float("nan")})
    deep: Dict[str, Any] = {}
    cur = deep
    for _ in range(40):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(keycel.InvalidArgumentError):
        engine.authorize(bearer(token), "api.read", attributes=deep)
    d = engine.authorize(bearer(token), "api.read", attributes={"n": 1, "l": [1, "a", None, True], "m": {"k": 2.5}}, now=NOW)
    assert d.allowed


def test_decide_is_policy_only(engine: keycel.Engine) -> None:
    rec, _ = make(engine, role="reader", accounts=["acc_1"])
    assert engine.decide(rec, "api.read", account="acc_1", now=NOW).allowed
    d = engine.decide(rec, "api.read", account="acc_2", now=NOW)
    assert d.status == 404 and d.lease is None
    assert engine.decide(rec, "api.write", now=NOW).status == 403


# --- leases -------------------------------------------------------------------------------


def test_lease_context_manager_releases(engine: keycel.Engine) -> None:
    rec, token = make(engine)
    with engine.authorize(bearer(token), "api.read", now=NOW) as d:
        assert d.allowed and engine.in_flight(rec.id) == 1
    assert engine.in_flight(rec.id) == 0
    d = engine.authorize(bearer(token), "api.read", now=NOW)
    assert d.lease is not None
    with d.lease as lease:
        assert not lease.released
    assert lease.released and engine.in_flight(rec.id) == 0


def test_lease_released_on_exception(engine: keycel.Engine) -> None:
    rec, token = make(engine)
    with pytest.raises(ZeroDivisionError):
        with engine.authorize(bearer(token), "api.read", now=NOW):
            assert engine.in_flight(rec.id) == 1
            1 / 0
    assert engine.in_flight(rec.id) == 0


def test_async_context_manager_releases_on_exception(engine: keycel.Engine) -> None:
    rec, token = make(engine)

    async def main() -> None:
        async with engine.authorize(bearer(token), "api.read", now=NOW) as d:
            assert d.allowed and engine.in_flight(rec.id) == 1
        assert engine.in_flight(rec.id) == 0
        d2 = engine.authorize(bearer(token), "api.read", now=NOW)
        assert d2.lease is not None
        with pytest.raises(KeyError):
            async with d2.lease:
                assert engine.in_flight(rec.id) == 1
                raise KeyError("boom")
        assert engine.in_flight(rec.id) == 0

    asyncio.run(main())


def test_dropping_a_decision_releases_its_lease(engine: keycel.Engine) -> None:
    rec, token = make(engine)
    d = engine.authorize(bearer(token), "api.read", now=NOW)
    assert engine.in_flight(rec.id) == 1
    del d
    assert engine.in_flight(rec.id) == 0


def test_a_live_lease_never_expires() -> None:
    """Issue 12: with lease_ttl = 3s, ten 10-second requests ran at once on a key limited to 5.
    A Python lease is released when its object goes away, so a live one keeps its slot."""
    src = DEFAULT_POLICY.read_text().replace('lease_ttl = "60s"', 'lease_ttl = "3s"')
    assert 'lease_ttl = "3s"' in src
    e = keycel.Engine.from_toml(src)
    issued = e.keyring(hash=CHEAP).create("slow", role="reader", now=NOW)
    headers = bearer(issued.token)
    running: List[Tuple[int, keycel.Decision]] = []
    statuses = []
    for start in range(10):  # one request a second, each running 10 s
        running = [(s, d) for (s, d) in running if start < s + 10]
        d = e.authorize(headers, "api.read", now=NOW + timedelta(seconds=start))
        statuses.append(d.status)
        if d.allowed:
            assert d.lease is not None and d.lease.expires_at is None
            running.append((start, d))
        assert len(running) <= 5
        assert e.in_flight(issued.client_id) == len(running)
    assert statuses == [200] * 5 + [429] * 5
    running.clear()
    assert e.in_flight(issued.client_id) == 0


def test_denied_requests_take_no_lease(engine: keycel.Engine) -> None:
    rec, token = make(engine, max_concurrent=1)
    for _ in range(3):
        assert engine.authorize(bearer(token), "api.write", now=NOW).status == 403
    assert engine.in_flight(rec.id) == 0
    with engine.authorize(bearer(token), "api.read", now=NOW) as d:
        assert d.allowed


# --- seed scenarios -----------------------------------------------------------------------


def test_finout_five_concurrent_requests_per_key(engine: keycel.Engine) -> None:
    rec, token = make(engine)
    held = [engine.authorize(bearer(token), "api.read", now=NOW) for _ in range(5)]
    assert all(d.allowed for d in held)
    sixth = engine.authorize(bearer(token), "api.read", now=NOW)
    assert sixth.status == 429 and sixth.code == "too_many_requests" and sixth.headers == {"Retry-After": "1"}
    held.pop().release()
    assert engine.authorize(bearer(token), "api.read", now=NOW).allowed


def test_finout_header_pair_names_from_policy() -> None:
    src = DEFAULT_POLICY.read_text().replace(
        "[defaults.messages]",
        '[defaults.credentials]\nclient_id_header = "x-finout-client-id"\nsecret_header = "x-finout-secret-key"\n\n[defaults.messages]',
    )
    e = keycel.Engine.from_toml(src)
    issued = e.keyring(hash=CHEAP).create("k", role="reader", now=NOW)
    cid, secret = issued.client_id, issued.secret
    d = e.authorize({"X-Finout-Client-Id": cid, "X-Finout-Secret-Key": secret}, "api.read", now=NOW)
    assert d.allowed, d.reason


def test_finout_personal_token_follows_its_user(engine: keycel.Engine) -> None:
    kr = engine.keyring(hash=CHEAP)
    kr.put_user("dana", roles=["editor"], accounts=["acc_1"], now=NOW)
    issued = kr.create("dana's", role="editor", kind="personal", user="dana", now=NOW)
    token = issued.token
    assert engine.authorize(bearer(token), "api.write", account="acc_1", now=NOW).allowed
    assert engine.authorize(bearer(token), "api.read", account="acc_2", now=NOW).status == 404
    kr.put_user("dana", roles=["viewer"], accounts=["acc_1"], now=NOW)  # demoted
    assert engine.authorize(bearer(token), "api.write", account="acc_1", now=NOW).status == 403
    assert kr.remove_user("dana", now=NOW) == 1
    assert engine.authorize(bearer(token), "api.read", account="acc_1", now=NOW).status == 401


def test_finout_only_admins_create_api_tokens(engine: keycel.Engine) -> None:
    kr = engine.keyring(hash=CHEAP)
    admin = kr.create("admin", role="admin", now=NOW).record
    kr.put_user("erin", roles=["editor"], now=NOW)
    personal = kr.create("erin's", role="editor", kind="personal", user="erin", now=NOW).record
    made = kr.create("svc", role="reader", actor=admin, now=NOW)
    assert made.record.kind == "api"
    with pytest.raises(keycel.DeniedError) as e:
        kr.create("svc2", role="reader", actor=personal, now=NOW)
    assert e.value.decision.status == 403 and not e.value.decision.allowed
    mine = kr.create("erin 2", role="editor", kind="personal", user="erin", actor=personal, now=NOW)
    assert mine.record.user == "erin"


def test_management_actor_from_an_allowed_decision(engine: keycel.Engine) -> None:
    kr = engine.keyring(hash=CHEAP)
    issued = kr.create("admin", role="admin", now=NOW)
    d = engine.authorize(bearer(issued.token), "keys.create.api", now=NOW)
    assert d.allowed
    assert kr.create("by decision", role="reader", actor=d, now=NOW).record.name == "by decision"
    denied = engine.authorize({}, "keys.create.api", now=NOW)
    with pytest.raises(keycel.InvalidArgumentError):
        kr.create("x", role="reader", actor=denied, now=NOW)


def test_keyring_without_engine_refuses_keys_as_actors(plain_keyring: keycel.Keyring) -> None:
    admin = plain_keyring.create("a", role="admin").record
    with pytest.raises(keycel.DeniedError):
        plain_keyring.rename(admin.id, "x", actor=admin)


def test_finta_account_scope_and_404_body(engine: keycel.Engine) -> None:
    kr = engine.keyring(hash=CHEAP)
    issued = kr.create("scoped", role="reader", accounts=["acc_1"], now=NOW)
    token = issued.token
    assert engine.authorize(bearer(token), "api.read", account="acc_1", now=NOW).allowed
    out = engine.authorize(bearer(token), "api.read", account="acc_2", now=NOW)
    assert out.status == 404 and out.body_json() == engine.not_found_body()
    kr.set_accounts(issued.client_id, "all", now=NOW)  # effective on the very next request
    assert engine.authorize(bearer(token), "api.read", account="acc_new", now=NOW).allowed
    kr.set_accounts(issued.client_id, ["acc_9"], now=NOW)
    assert engine.authorize(bearer(token), "api.read", account="acc_1", now=NOW).status == 404


def test_finta_rotate_kills_old_secret_and_keeps_name_and_scope(engine: keycel.Engine) -> None:
    kr = engine.keyring(hash=CHEAP)
    first = kr.create("Prod", role="reader", accounts=["acc_1"], now=NOW)
    old = first.token
    assert engine.authorize(bearer(old), "api.read", account="acc_1", now=NOW).allowed
    new = kr.rotate(first.client_id, now=NOW)
    assert new.record.name == "Prod" and new.record.accounts == frozenset({"acc_1"})
    assert engine.authorize(bearer(old), "api.read", account="acc_1", now=NOW).status == 401
    assert engine.authorize(bearer(new.token), "api.read", account="acc_1", now=NOW).allowed


def test_rotation_grace_period(engine: keycel.Engine) -> None:
    kr = engine.keyring(hash=CHEAP)
    first = kr.create("k", role="reader", now=NOW)
    old = first.token
    kr.rotate(first.client_id, grace="1h", now=NOW)
    assert engine.authorize(bearer(old), "api.read", now=NOW + timedelta(minutes=30)).allowed
    assert engine.authorize(bearer(old), "api.read", now=NOW + timedelta(hours=2)).status == 401


def test_finta_delete_is_permanent(engine: keycel.Engine) -> None:
    kr = engine.keyring(hash=CHEAP)
    issued = kr.create("k", role="reader", now=NOW)
    token = issued.token
    kr.delete(issued.client_id, now=NOW)
    assert engine.authorize(bearer(token), "api.read", now=NOW).status == 401


def test_004_basic_auth_scopes_and_inactive(engine: keycel.Engine) -> None:
    kr = engine.keyring(hash=CHEAP)
    issued = kr.create("fin", role="admin", now=NOW)
    token = issued.token
    h = {"Authorization": basic(token)}
    assert engine.authorize(h, "admin.account.create", path="/admin/accounts", now=NOW).allowed
    d = engine.authorize(h, "admin.account.create", path="/v1/accounts", now=NOW)
    assert d.status == 403 and d.matched_rules == ("admin-scopes-only-on-admin-api",)
    kr.deactivate(issued.client_id, now=NOW)
    d = engine.authorize(h, "api.read", now=NOW)
    assert d.status == 401 and d.message == "Invalid username/account key"
    kr.activate(issued.client_id, now=NOW)
    assert engine.authorize(h, "api.read", now=NOW).allowed


def test_expiry(engine: keycel.Engine) -> None:
    _, token = make(engine, expires_in=timedelta(days=1))
    assert engine.authorize(bearer(token), "api.read", now=NOW + timedelta(hours=23)).allowed
    assert engine.authorize(bearer(token), "api.read", now=NOW + timedelta(days=2)).status == 401


def test_python_store_behind_the_engine() -> None:
    store = keycel.DictStore()
    e = keycel.Engine(DEFAULT_POLICY, store=store)
    _, token = make(e)
    assert e.authorize(bearer(token), "api.read", now=NOW).allowed
    assert e.store is store


class FailingLookup(keycel.DictStore):
    fail = False

    def get(self, collection: str, id: str) -> Any:
        if self.fail:
            raise ConnectionError("db down")
        return super().get(collection, id)


def test_store_failure_during_authorize_fails_closed() -> None:
    store = FailingLookup()
    e = keycel.Engine(DEFAULT_POLICY, store=store)
    _, token = make(e)
    store.fail = True
    d = e.authorize(bearer(token), "api.read", now=NOW)
    assert not d.allowed and d.status == 503 and "db down" in d.reason


@pytest.mark.parametrize("now", [NOW, int(NOW.timestamp()), float(NOW.timestamp()), "2026-11-23T12:00:00Z"])
def test_now_forms(engine: keycel.Engine, now: Any) -> None:
    _, token = make(engine, expires_in="1h")
    assert engine.authorize(bearer(token), "api.read", now=now).allowed


def test_clear_cache_keeps_working(engine: keycel.Engine) -> None:
    _, token = make(engine)
    assert engine.authorize(bearer(token), "api.read", now=NOW).allowed
    engine.clear_cache()
    assert engine.authorize(bearer(token), "api.read", now=NOW).allowed
