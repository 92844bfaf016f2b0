"""What a new user hit (issue 11): records returned from an endpoint carry no hash, an issued
key reveals every form of its secret at once, `require(account=...)` fails closed, and
outdated hashes are upgraded on use."""

from __future__ import annotations

import base64
import json
from typing import Any, Dict, List

import pytest
from fastapi import APIRouter, Depends, FastAPI
from starlette.testclient import TestClient

import keycel
from keycel.fastapi import KeycelConfigError, check_routes, install, query_param, require
from keycel.stores import DictStore
from helpers import CHEAP, DEFAULT_POLICY

FINOUT_POLICY = """
version = 1
[defaults.credentials]
client_id_header = "x-finout-client-id"
secret_header = "x-finout-secret-key"
[scopes]
"api.read" = "read"
[roles]
reader = ["api.read"]
[[rules]]
id = "scope-grants-action"
effect = "allow"
actions = ["*"]
when = "has_scope(request.action)"
"""


def _no_hash(text: str) -> None:
    assert "$argon2" not in text and "secret_hash" not in text and '"previous_secret"' not in text, text


def test_public_forms_never_carry_a_hash(keyring: keycel.Keyring, engine: keycel.Engine) -> None:
    issued = keyring.create("k", role="reader", accounts=["acc_1"], metadata={"team": "core"})
    rec = keyring.rotate(issued.client_id, grace="1h").record
    assert rec.previous_secret_valid_until is not None
    d = rec.to_dict()
    _no_hash(json.dumps(d))
    _no_hash(rec.to_json())
    assert json.loads(rec.to_json()) == d
    assert d["id"] == rec.id and d["accounts"] == ["acc_1"] and d["metadata"] == {"team": "core"}
    assert d["previous_secret_valid_until"] is not None and d["version"] == 2
    # The decision's key too (what an admin endpoint hands back).
    decision = engine.authorize({"authorization": "Bearer " + keyring.rotate(rec.id).token}, "api.read",
                                account="acc_1")
    assert decision.allowed and decision.key is not None
    _no_hash(json.dumps(decision.key.to_dict()))
    decision.release()


def test_storage_form_is_explicit_and_round_trips(keyring: keycel.Keyring) -> None:
    rec = keyring.rotate(keyring.create("k", role="reader").client_id, grace="1h").record
    stored = rec.to_storage_json()
    assert '"secret_hash":"$argon2id$' in stored and '"previous_secret":{' in stored
    assert rec.to_storage_dict() == json.loads(stored)
    assert keycel.KeyRecord.from_storage_json(stored) == rec
    assert keycel.KeyRecord.from_storage_dict(rec.to_storage_dict()) == rec
    assert keycel.KeyRecord.from_json(stored) == rec
    # The public form cannot be mistaken for a record.
    with pytest.raises(keycel.InvalidRecordError):
        keycel.KeyRecord.from_json(rec.to_json())


def test_store_protocol_writes_the_storage_form() -> None:
    store = DictStore()
    rec = keycel.Keyring(store, hash=CHEAP).create("k", role="reader").record
    doc = store.get("keys", rec.id)
    assert doc is not None and json.loads(doc) == rec.to_storage_dict()


def test_reveal_gives_every_form_once(engine: keycel.Engine, keyring: keycel.Keyring) -> None:
    issued = keyring.create("k", role="reader")
    assert issued.readable
    forms = issued.reveal()
    assert not issued.readable
    token = forms["token"]
    assert forms["client_id"] == issued.client_id
    assert token == f"{issued.client_id}_{forms['secret_key']}"
    assert forms["authorization_bearer"] == f"Bearer {token}"
    assert base64.b64decode(forms["authorization_basic"].removeprefix("Basic ")) == f"{token}:".encode()
    assert forms["headers"] == {"x-keycel-client-id": issued.client_id, "x-keycel-secret-key": forms["secret_key"]}
    for headers in ({"authorization": forms["authorization_basic"]},
                    {"authorization": forms["authorization_bearer"]},
                    forms["headers"]):
        d = engine.authorize(headers, "api.read")
        assert d.allowed, d.reason
        d.release()
    for read in (issued.reveal, lambda: issued.token, lambda: issued.secret):
        with pytest.raises(keycel.CredentialError):
            read()
    assert forms["secret_key"] not in repr(issued)


def test_reveal_uses_the_policy_header_names() -> None:
    engine = keycel.Engine.from_toml(FINOUT_POLICY)
    forms = engine.keyring(hash=CHEAP).create("k", role="reader").reveal()
    assert set(forms["headers"]) == {"x-finout-client-id", "x-finout-secret-key"}
    d = engine.authorize(forms["headers"], "api.read")
    assert d.allowed
    d.release()
    standalone = keycel.Keyring(guard=engine, hash=CHEAP).create("k2", role="reader").reveal()
    assert set(standalone["headers"]) == {"x-finout-client-id", "x-finout-secret-key"}


# --- keycel.fastapi.require(account=...) fails closed ------------------------------------------


@pytest.fixture
def keys() -> Dict[str, Any]:
    engine = keycel.Engine(DEFAULT_POLICY)
    kr = engine.keyring(hash=CHEAP)
    reader = kr.create("r", role="reader", accounts=["acc_1"])
    return {"engine": engine, "reader_id": reader.client_id, "reader": reader.token}


def test_account_param_missing_from_the_route_is_an_error_at_install(keys: Dict[str, Any]) -> None:
    app = FastAPI()

    @app.get("/v1/data")
    def data(auth: keycel.Decision = Depends(require("api.read", account="account_id"))) -> None: ...

    with pytest.raises(KeycelConfigError, match="account_id"):
        install(app, keys["engine"])


def test_account_param_missing_from_a_later_route_stops_startup(keys: Dict[str, Any]) -> None:
    app = FastAPI()
    install(app, keys["engine"])
    router = APIRouter(dependencies=[Depends(require("api.read", account="account_id"))])

    @router.get("/v1/data")
    def data() -> Dict[str, str]:
        return {"leaked": "yes"}

    app.include_router(router)
    with pytest.raises(KeycelConfigError, match="/v1/data"):
        check_routes(app)
    with pytest.raises(KeycelConfigError):
        with TestClient(app):
            pass


def test_included_routers_are_checked_with_their_prefix(keys: Dict[str, Any]) -> None:
    guarded = [Depends(require("api.read", account="account_id"))]
    router = APIRouter()

    @router.get("/data")
    def data() -> Dict[str, str]:
        return {"ok": "yes"}

    good = FastAPI()
    good.include_router(router, prefix="/accounts/{account_id}", dependencies=guarded)
    install(good, keys["engine"])
    with TestClient(good) as client:
        h = {"authorization": f"Bearer {keys['reader']}"}
        assert client.get("/accounts/acc_1/data", headers=h).status_code == 200
        assert client.get("/accounts/acc_2/data", headers=h).status_code == 404
    bad = FastAPI()
    bad.include_router(router, prefix="/v2", dependencies=guarded)
    with pytest.raises(KeycelConfigError, match="/v2/data"):
        install(bad, keys["engine"])


def test_a_request_reaching_a_misconfigured_route_never_runs_the_endpoint(keys: Dict[str, Any]) -> None:
    # Without install() nothing checks at startup: the dependency itself refuses (500).
    app = FastAPI()
    ran: List[str] = []

    @app.get("/v1/data")
    def data(auth: keycel.Decision = Depends(require("api.read", account="account_id",
                                                      engine=keys["engine"]))) -> None:
        ran.append("endpoint")

    headers = {"authorization": f"Bearer {keys['reader']}"}
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/v1/data", headers=headers).status_code == 500
        assert c.get("/v1/data?account_id=acc_1", headers=headers).status_code == 500
    with pytest.raises(KeycelConfigError):
        TestClient(app).get("/v1/data", headers=headers)
    assert ran == []
    assert keys["engine"].in_flight(keys["reader_id"]) == 0


def test_query_param_and_callables_always_check_an_account(keys: Dict[str, Any]) -> None:
    app = FastAPI()

    @app.get("/q")
    def q(auth: keycel.Decision = Depends(require("api.read", account=query_param("account")))) -> Dict[str, str]:
        return {"ok": "yes"}

    @app.get("/c")
    def c(auth: keycel.Decision = Depends(require("api.read", account=lambda r: r.headers.get("x-account")))) -> Dict[str, str]:
        return {"ok": "yes"}

    @app.get("/p/{account_id}")
    def p(account_id: str, auth: keycel.Decision = Depends(require("api.read", account="account_id"))) -> Dict[str, str]:
        return {"ok": account_id}

    install(app, keys["engine"])
    h = {"authorization": f"Bearer {keys['reader']}"}
    with TestClient(app) as client:
        assert client.get("/q?account=acc_1", headers=h).status_code == 200
        assert client.get("/q?account=acc_2", headers=h).status_code == 404
        assert client.get("/q", headers=h).status_code == 400
        assert client.get("/c", headers={**h, "x-account": "acc_1"}).status_code == 200
        assert client.get("/c", headers={**h, "x-account": "acc_2"}).status_code == 404
        assert client.get("/c", headers=h).status_code == 400
        assert client.get("/p/acc_1", headers=h).json() == {"ok": "acc_1"}
        assert client.get("/p/acc_2?account_id=acc_1", headers=h).status_code == 404


# --- rehash on use ----------------------------------------------------------------------------


def _rehash_engine(store: Any) -> keycel.Engine:
    # The default policy hashes with "owasp"; keys made with CHEAP parameters are outdated.
    return keycel.Engine(DEFAULT_POLICY, store=store, rehash_on_use=True)


@pytest.mark.parametrize("store_kind", ["memory", "python"])
def test_rehash_on_use_upgrades_an_outdated_hash_once(store_kind: str) -> None:
    store: Any = keycel.MemoryStore() if store_kind == "memory" else DictStore()
    engine = _rehash_engine(store)
    assert engine.rehash_on_use and not keycel.Engine(DEFAULT_POLICY).rehash_on_use
    issued = keycel.Keyring(store, hash=CHEAP).create("old", role="reader")
    before = issued.record
    headers = {"authorization": f"Bearer {issued.token}"}
    first = engine.authorize(headers, "api.read")
    assert first.allowed and first.needs_rehash
    first.release()
    again = engine.authorize(headers, "api.read")
    assert again.allowed and again.needs_rehash
    again.release()
    assert engine.wait_for_rehashes() == 1, "one upgrade per key"
    after = keycel.Keyring(store).get(before.id)
    assert after.version == before.version + 1
    assert after.secret_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    engine.clear_cache()
    third = engine.authorize(headers, "api.read")
    assert third.allowed and not third.needs_rehash
    third.release()
    assert engine.wait_for_rehashes() == 0


class BrokenWrites(DictStore):
    broken = False

    def put(self, collection: str, id: str, document: str) -> None:
        if getattr(self, "broken", False):
            raise OSError("disk full")
        super().put(collection, id, document)


def test_a_failing_rehash_never_fails_the_request() -> None:
    store = BrokenWrites()
    engine = _rehash_engine(store)
    issued = keycel.Keyring(store, hash=CHEAP).create("old", role="reader")
    store.broken = True
    headers = {"authorization": f"Bearer {issued.token}"}
    d = engine.authorize(headers, "api.read")
    assert d.allowed and d.needs_rehash
    d.release()
    assert engine.wait_for_rehashes() == 1
    assert keycel.Keyring(store).get(issued.client_id) == issued.record
    # The claim was freed: once the store works again, a later use upgrades it.
    store.broken = False
    engine.authorize(headers, "api.read").release()
    assert engine.wait_for_rehashes() == 1
    assert keycel.Keyring(store).get(issued.client_id).version == 2


def test_without_the_option_nothing_is_rewritten() -> None:
    store = keycel.MemoryStore()
    engine = keycel.Engine(DEFAULT_POLICY, store=store)
    issued = keycel.Keyring(store, hash=CHEAP).create("old", role="reader")
    d = engine.authorize({"authorization": f"Bearer {issued.token}"}, "api.read")
    assert d.allowed and d.needs_rehash
    d.release()
    assert engine.wait_for_rehashes() == 0
    assert keycel.Keyring(store).get(issued.client_id) == issued.record


def test_public_record_forms_match_the_shared_vectors() -> None:
    from helpers import VECTORS

    forms = json.loads((VECTORS / "forms" / "records.json").read_text())
    assert len(forms["cases"]) >= 3
    for case in forms["cases"]:
        rec = keycel.KeyRecord.from_storage_dict(case["storage"])
        assert rec.to_dict() == case["public"], case["name"]
        assert json.loads(rec.to_json()) == case["public"], case["name"]
        assert rec.to_storage_dict() == case["storage"], case["name"]
        _no_hash(rec.to_json())


# --- explain / roles ---------------------------------------------------------------------------


def test_explain_shows_what_a_key_can_do_now(engine: keycel.Engine, keyring: keycel.Keyring) -> None:
    keyring.put_user("alice", roles=["viewer"], accounts=["acc_1", "acc_2"])
    rec = keyring.create("laptop", kind="personal", user="alice", role="viewer", accounts=["acc_2", "acc_3"]).record
    a = engine.explain(rec)  # the user is read from the engine's store
    assert a["key_id"] == rec.id and a["kind"] == "personal" and a["user"] == "alice" and a["role"] == "viewer"
    assert a["accounts"] == ["acc_2"], "the key's accounts capped by the user's data access"
    assert "api.read" in a["scopes"] and "api.write" not in a["scopes"]
    assert a["max_concurrent"] == 5 and a["active"] is True and a["expires_at"] is None
    keyring.put_user("alice", roles=["reader"], accounts=["acc_1", "acc_2"])
    assert engine.explain(rec)["scopes"] == ["api.read"], "the user's current roles cap the token"
    assert engine.explain(rec, user=keycel.UserRecord("alice", ["reader"], "all"))["accounts"] == ["acc_2", "acc_3"]
    api = keyring.create("svc", role="integration", max_concurrent=2, expires_in="1h").record
    b = engine.explain(api)
    assert b["scopes"] == ["api.read", "api.write"] and b["accounts"] == "all" and b["max_concurrent"] == 2
    assert b["expires_at"] is not None and b["user"] is None
    keyring.remove_user("alice")
    with pytest.raises(keycel.InvalidRecordError):
        engine.explain(rec)


def test_roles_and_scope_catalogue(engine: keycel.Engine) -> None:
    roles = engine.roles()
    assert roles["reader"] == ["api.read"] and "admin.*" in roles["admin"]
    assert set(roles) >= {"admin", "editor", "viewer", "integration", "reader"}
    scopes = engine.scopes()
    assert "keys.create.api" in scopes and all(isinstance(v, str) for v in scopes.values())
