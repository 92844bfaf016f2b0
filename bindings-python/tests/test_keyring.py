"""Key lifecycle, records, the once-readable secret, stores and typed errors."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import keycel
from helpers import CHEAP, basic


def test_create_returns_record_and_secret_once(plain_keyring: keycel.Keyring) -> None:
    issued = plain_keyring.create("Production", role="admin", description="prod key")
    rec = issued.record
    assert issued.client_id == rec.id and rec.id.startswith("kc_") and len(rec.id) == 19
    assert rec.name == "Production" and rec.description == "prod key" and rec.version == 1
    assert rec.kind == "api" and rec.user is None and rec.active and rec.accounts == "all"
    assert rec.secret_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert issued.readable
    token = issued.token
    assert token.startswith(rec.id + "_") and len(token) == 58
    assert not issued.readable
    with pytest.raises(keycel.CredentialError):
        issued.token
    with pytest.raises(keycel.CredentialError):
        issued.secret
    assert "redacted" in repr(issued) and token not in repr(issued)


def test_secret_form_for_the_header_pair(plain_keyring: keycel.Keyring) -> None:
    issued = plain_keyring.create("k", role="reader")
    secret = issued.secret
    assert len(secret) == 38 and "_" not in secret
    with pytest.raises(keycel.CredentialError):
        issued.token


def test_records_are_frozen_and_round_trip(plain_keyring: keycel.Keyring) -> None:
    rec = plain_keyring.create(
        "k", role="reader", scopes=["api.write"], accounts=["acc_1", "acc_2"],
        metadata={"team": "billing"}, max_concurrent=3, expires_in="30d",
    ).record
    with pytest.raises(AttributeError):
        rec.name = "x"  # type: ignore[misc]
    assert rec.scopes == frozenset({"api.write"})
    assert rec.accounts == frozenset({"acc_1", "acc_2"})
    assert rec.metadata == {"team": "billing"} and rec.max_concurrent == 3
    assert rec.expires_at is not None and rec.expires_at - rec.created_at == timedelta(days=30)
    d = rec.to_storage_dict()
    assert d["schema"] == 1 and d["accounts"] == ["acc_1", "acc_2"]
    assert keycel.KeyRecord.from_dict(d) == rec
    assert keycel.KeyRecord.from_json(rec.to_storage_json()) == rec
    assert json.loads(rec.to_storage_json()) == d
    assert rec.to_dict() == {k: v for k, v in d.items() if k not in ("secret_hash", "previous_secret")} | {
        "previous_secret_valid_until": None}
    assert hash(keycel.KeyRecord.from_dict(d)) == hash(rec)
    d2 = dict(d, name="other")
    assert keycel.KeyRecord.from_dict(d2) != rec


def test_from_dict_names_the_bad_field(plain_keyring: keycel.Keyring) -> None:
    d = plain_keyring.create("k", role="reader").record.to_storage_dict()
    with pytest.raises(keycel.InvalidRecordError) as e:
        keycel.KeyRecord.from_dict(dict(d, name=""))
    assert e.value.field == "name"
    with pytest.raises(keycel.InvalidRecordError) as e:
        keycel.KeyRecord.from_dict(dict(d, scopes=["ok.scope", "Bad Scope"]))
    assert e.value.field == "scopes[1]"
    with pytest.raises(keycel.InvalidRecordError) as e:
        keycel.KeyRecord.from_dict(dict(d, surprise=1))
    assert e.value.field == "json"
    with pytest.raises(keycel.InvalidRecordError) as e:
        keycel.KeyRecord.from_dict(dict(d, schema=2))
    assert e.value.field == "schema"
    with pytest.raises(ValueError):  # InvalidRecordError is also a ValueError
        keycel.KeyRecord.from_json("{not json")


def test_every_lifecycle_operation(plain_keyring: keycel.Keyring) -> None:
    kr = plain_keyring
    kid = kr.create("k", role="reader").client_id
    assert kr.rename(kid, "renamed").name == "renamed"
    assert kr.describe(kid, "desc").description == "desc"
    assert kr.set_role(kid, "editor").role == "editor"
    assert kr.set_scopes(kid, ["api.write"]).scopes == frozenset({"api.write"})
    assert kr.set_accounts(kid, ["a1"]).accounts == frozenset({"a1"})
    assert kr.set_accounts(kid, "all").accounts == "all"
    assert kr.deactivate(kid).active is False
    assert kr.activate(kid).active is True
    assert kr.set_active(kid, False).active is False
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert kr.set_expiry(kid, when).expires_at == when
    assert kr.set_expiry(kid, None).expires_at is None
    assert kr.set_max_concurrent(kid, 2).max_concurrent == 2
    assert kr.set_metadata(kid, {"a": "b"}).metadata == {"a": "b"}
    rec = kr.get(kid)
    assert rec.version == 14
    assert [r.id for r in kr.list()] == [kid]
    assert kr.list(active=True) == [] and len(kr.list(active=False)) == 1
    assert kr.list(kind="personal") == []


def test_rotate_keeps_settings_and_replaces_secret(plain_keyring: keycel.Keyring) -> None:
    kr = plain_keyring
    first = kr.create("k", role="reader", accounts=["a1"])
    rotated = kr.rotate(first.client_id)
    r = rotated.record
    assert r.id == first.client_id and r.name == "k" and r.accounts == frozenset({"a1"})
    assert r.secret_hash != first.record.secret_hash and r.rotated_at is not None
    assert r.previous_secret_valid_until is None
    assert rotated.token != first.token
    graced = kr.rotate(first.client_id, grace=timedelta(hours=1))
    assert graced.record.previous_secret_valid_until == graced.record.rotated_at + timedelta(hours=1)


def test_delete_is_permanent(plain_keyring: keycel.Keyring) -> None:
    kid = plain_keyring.create("k", role="reader").client_id
    plain_keyring.delete(kid)
    with pytest.raises(keycel.NotFoundError) as e:
        plain_keyring.get(kid)
    assert e.value.id == kid
    with pytest.raises(keycel.NotFoundError):
        plain_keyring.delete(kid)
    with pytest.raises(LookupError):
        plain_keyring.rename(kid, "x")


def test_users_and_personal_tokens(plain_keyring: keycel.Keyring) -> None:
    kr = plain_keyring
    u = kr.put_user("alice", roles=["viewer"], accounts=["acc_1"])
    assert u.id == "alice" and u.roles == frozenset({"viewer"}) and u.accounts == frozenset({"acc_1"})
    assert kr.put_user(keycel.UserRecord("alice", ["viewer", "editor"])).version == 2
    assert kr.get_user("alice") is not None and kr.get_user("nobody") is None
    p1 = kr.create("mine", role="viewer", kind="personal", user="alice").record
    kr.create("mine too", role="editor", kind="personal", user="alice")
    kr.create("api", role="reader")
    assert p1.kind == "personal" and p1.user == "alice"
    assert len(kr.list(user="alice")) == 2 and len(kr.list(kind="api")) == 1
    with pytest.raises(keycel.InvalidRecordError) as e:
        kr.create("x", role="admin", kind="personal", user="alice")
    assert e.value.field == "role"
    with pytest.raises(keycel.InvalidRecordError) as e:
        kr.create("x", role="viewer", kind="personal", user="ghost")
    assert e.value.field == "user"
    assert [x.id for x in kr.list_users()] == ["alice"]
    assert kr.remove_user("alice") == 2
    assert kr.list(user="alice") == [] and kr.get_user("alice") is None
    with pytest.raises(keycel.NotFoundError):
        kr.remove_user("alice")


def test_user_record_round_trip() -> None:
    u = keycel.UserRecord("bob", ["reader"], accounts="all")
    assert keycel.UserRecord.from_dict(u.to_dict()) == u
    with pytest.raises(keycel.InvalidRecordError) as e:
        keycel.UserRecord("bad id", ["reader"])
    assert e.value.field == "id"


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"kind": "robot"}, "kind"),
        ({"kind": "personal"}, "user"),
        ({"user": "u"}, "user"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"expires_in": -5}, "expires_in"),
        ({"expires_in": 2e11}, "expires_in"),
        ({"expires_in": "200000w"}, "expires_in"),
        ({"scopes": "api.read"}, "scopes"),
        ({"accounts": "some"}, "accounts"),
        ({"now": datetime(2030, 1, 1)}, "now"),
        ({"now": "yesterday"}, "now"),
    ],
)
def test_bad_arguments_are_typed(plain_keyring: keycel.Keyring, kwargs: Dict[str, Any], argument: str) -> None:
    with pytest.raises(keycel.InvalidArgumentError) as e:
        plain_keyring.create("k", role="reader", **kwargs)
    assert e.value.argument == argument
    assert plain_keyring.list() == []  # nothing half-applied


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 200}, "name"),
        ({"role": "has space"}, "role"),
        ({"scopes": ["NOT A SCOPE"]}, "scopes"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"metadata": {"bad key!": "v"}}, "metadata"),
    ],
)
def test_invalid_values_name_the_field(plain_keyring: keycel.Keyring, kwargs: Dict[str, Any], field: str) -> None:
    args: Dict[str, Any] = {"name": "k", "role": "reader"}
    args.update(kwargs)
    name = args.pop("name")
    with pytest.raises(keycel.InvalidRecordError) as e:
        plain_keyring.create(name, **args)
    assert e.value.field == field
    assert plain_keyring.list() == []


def test_failed_change_leaves_record_untouched(plain_keyring: keycel.Keyring) -> None:
    kid = plain_keyring.create("k", role="reader").client_id
    with pytest.raises(keycel.InvalidRecordError):
        plain_keyring.rename(kid, "")
    r = plain_keyring.get(kid)
    assert r.name == "k" and r.version == 1


def test_hash_presets_and_custom_params() -> None:
    assert "m=2048,t=1,p=1" in keycel.Keyring(hash="edge").create("k", role="r").record.secret_hash
    assert "m=1024,t=1,p=1" in keycel.Keyring(hash=CHEAP).create("k", role="r").record.secret_hash
    with pytest.raises(keycel.InvalidArgumentError) as e:
        keycel.Keyring(hash="fast")
    assert e.value.argument == "hash"
    with pytest.raises(keycel.InvalidArgumentError):
        keycel.Keyring(hash={"m_cost": 8, "t_cost": 1, "p_cost": 1})  # below the floor
    with pytest.raises(keycel.InvalidArgumentError):
        keycel.Keyring(hash={"m_cost": 1024})


def test_owasp_preset_is_the_default() -> None:
    rec = keycel.Keyring().create("k", role="r").record
    assert "m=19456,t=2,p=1" in rec.secret_hash


def test_a_guarded_keyring_hashes_with_its_engines_preset() -> None:
    edge = keycel.Engine.from_toml(
        'version = 1\n[defaults]\nhash = "edge"\n[scopes]\n"api.read" = "read"\n[roles]\nr = ["api.read"]\n'
    )
    rec = keycel.Keyring(guard=edge).create("k", role="r").record
    assert "m=2048,t=1,p=1" in rec.secret_hash, "same preset as engine.keyring()"
    assert "m=2048,t=1,p=1" in edge.keyring().create("k2", role="r").record.secret_hash
    assert "m=1024,t=1,p=1" in keycel.Keyring(guard=edge, hash=CHEAP).create("k3", role="r").record.secret_hash


def test_custom_prefix() -> None:
    issued = keycel.Keyring(hash=CHEAP, prefix="acme").create("k", role="r")
    assert issued.token.startswith("acme_")
    with pytest.raises(keycel.InvalidArgumentError) as e:
        keycel.Keyring(prefix="Bad_Prefix")
    assert e.value.argument == "prefix"


def test_audit_callback_receives_events() -> None:
    events: List[Dict[str, Any]] = []
    kr = keycel.Keyring(hash=CHEAP, audit=events.append, operator="ops")
    kid = kr.create("k", role="r").client_id
    kr.rotate(kid)
    assert [e["action"] for e in events] == ["keys.create.api", "keys.rotate"]
    assert events[0]["actor"] == "operator:ops" and events[0]["key_id"] == kid
    assert all("argon2" not in json.dumps(e) for e in events)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_failing_audit_callback_does_not_fail_the_change() -> None:
    def boom(_: Dict[str, Any]) -> None:
        raise RuntimeError("audit down")

    kr = keycel.Keyring(hash=CHEAP, audit=boom)
    assert kr.create("k", role="r").record.version == 1


# --- stores -------------------------------------------------------------------------------


def test_dict_store_protocol_holds_the_stable_json() -> None:
    store = keycel.DictStore()
    assert isinstance(store, keycel.DocumentStore)
    kr = keycel.Keyring(store, hash=CHEAP)
    rec = kr.create("k", role="reader").record
    doc = store.get("keys", rec.id)
    assert doc is not None and json.loads(doc) == rec.to_storage_dict()
    kr.put_user("u", roles=["reader"])
    assert json.loads(store.get("users", "u") or "{}")["id"] == "u"
    assert kr.store is store


class ConflictingStore(keycel.DictStore):
    """Bumps a record's version behind keycel's back right before the write."""

    def __init__(self) -> None:
        super().__init__()
        self.meddle = False

    def get(self, collection: str, id: str) -> Optional[str]:
        doc = super().get(collection, id)
        if self.meddle and doc is not None and collection == "keys":
            d = json.loads(doc)
            d["version"] += 1
            self.meddle = False
            super().put(collection, id, json.dumps(d))
        return doc


def test_python_store_version_conflict_is_detected_in_core() -> None:
    store = ConflictingStore()
    kr = keycel.Keyring(store, hash=CHEAP)
    kid = kr.create("k", role="reader").client_id
    store.meddle = True
    with pytest.raises(keycel.StoreError) as e:
        kr.rename(kid, "new")
    assert e.value.kind == "conflict"
    assert kr.get(kid).name == "k"


class BrokenStore(keycel.DictStore):
    def put(self, collection: str, id: str, document: str) -> None:
        raise OSError("disk full")


def test_python_store_exception_becomes_store_error() -> None:
    kr = keycel.Keyring(BrokenStore(), hash=CHEAP)
    with pytest.raises(keycel.StoreError) as e:
        kr.create("k", role="reader")
    assert e.value.kind == "backend" and "disk full" in str(e.value) and "OSError" in str(e.value)


class CorruptStore(keycel.DictStore):
    def get(self, collection: str, id: str) -> Optional[str]:
        return '{"schema": 1, "id": "nope"}' if collection == "keys" else None

    def list(self, collection: str) -> List[str]:
        return ['{"schema": 1}'] if collection == "keys" else []


def test_python_store_corrupt_document_is_rejected() -> None:
    kr = keycel.Keyring(CorruptStore(), hash=CHEAP)
    with pytest.raises(keycel.StoreError) as e:
        kr.list()
    assert e.value.kind == "corrupt"


class DictDocStore(keycel.DictStore):
    """Returns parsed dicts, like a JSON column would."""

    def get(self, collection: str, id: str) -> Any:
        doc = super().get(collection, id)
        return None if doc is None else json.loads(doc)


def test_python_store_may_return_dicts() -> None:
    kr = keycel.Keyring(DictDocStore(), hash=CHEAP)
    kid = kr.create("k", role="reader").client_id
    assert kr.rename(kid, "n").version == 2


def test_store_without_protocol_is_refused() -> None:
    with pytest.raises(keycel.InvalidArgumentError) as e:
        keycel.Keyring(object())
    assert e.value.argument == "store"


def test_sqlite_store_persists_across_handles(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    kr = keycel.Keyring(keycel.SqliteStore(path), hash=CHEAP)
    issued = kr.create("k", role="reader")
    token = issued.token
    kr.put_user("u", roles=["reader"])
    again = keycel.Keyring(keycel.SqliteStore(path, create=False), hash=CHEAP)
    assert again.get(issued.client_id) == issued.record
    assert again.get_user("u") is not None
    engine = keycel.Engine(store=keycel.SqliteStore(path))
    assert engine.authorize({"Authorization": f"Bearer {token}"}, "api.read").allowed
    kr.delete(issued.client_id)
    with pytest.raises(keycel.StoreError) as e:
        keycel.SqliteStore(path).insert_key(issued.record)
    assert e.value.kind == "already_exists"  # ids are never reused


def test_sqlite_missing_file_without_create(tmp_path: Path) -> None:
    with pytest.raises(keycel.StoreError) as e:
        keycel.SqliteStore(tmp_path / "absent.db", create=False)
    assert e.value.kind == "backend"


def test_memory_store_raw_access() -> None:
    store = keycel.MemoryStore()
    rec = keycel.Keyring(hash=CHEAP).create("k", role="r").record
    store.insert_key(rec)
    assert store.get_key(rec.id) == rec and store.get_key("kc_xxxxxxxxxxxxxxxx") is None
    with pytest.raises(keycel.StoreError) as e:
        store.insert_key(rec)
    assert e.value.kind == "already_exists"


def test_keyring_is_shared_across_threads(plain_keyring: keycel.Keyring) -> None:
    kid = plain_keyring.create("k", role="reader").client_id
    errors: List[BaseException] = []

    def worker(i: int) -> None:
        try:
            for _ in range(5):
                try:
                    plain_keyring.rename(kid, f"n{i}")
                except keycel.StoreError as e:
                    assert e.kind == "conflict"
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    r = plain_keyring.get(kid)
    assert r.name.startswith("n") and r.version >= 2


def test_basic_helper() -> None:
    assert basic("a", "b") == "Basic YTpi"
