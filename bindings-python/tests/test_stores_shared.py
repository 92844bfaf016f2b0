"""Every store, one suite: core's store conformance cases over MemoryStore, SqliteStore
(cached and not), PostgresStore (cached and not, on a throwaway PostgreSQL cluster started by
tests/servers/postgres.sh) and Python host stores; the shared vectors decided over each; and
changes made elsewhere reaching a process's record cache."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

import keycel
from keycel import _keycel

from helpers import CHEAP, DEFAULT_POLICY, REPO, VECTORS

SCRIPT = REPO / "tests" / "servers" / "postgres.sh"
PSQL = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")) / "psql"


class Cluster:
    def __init__(self) -> None:
        out = subprocess.run(
            ["bash", str(SCRIPT), "start", str(os.getpid())], check=True, capture_output=True, text=True
        ).stdout
        self.dsn, self.dir = out.strip().split("\t")
        self._n = itertools.count()

    def database(self) -> str:
        name = f"py{os.getpid()}_{next(self._n)}"
        subprocess.run([str(PSQL), "-q", self.dsn, "-c", f"CREATE DATABASE {name}"], check=True)
        return self.dsn.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", self.dir], check=False)


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.stop()


def conforms(factory: Callable[[], Any]) -> None:
    failures = _keycel._store_conformance(factory)
    assert failures == [], "\n".join(failures)


def test_memory_store_conforms() -> None:
    conforms(keycel.MemoryStore)


def test_dict_host_store_conforms() -> None:
    conforms(keycel.DictStore)


@pytest.mark.parametrize("cache", [True, False])
def test_sqlite_store_conforms(cache: bool) -> None:
    conforms(lambda: keycel.SqliteStore.in_memory(cache=cache))


@pytest.mark.parametrize("cache", [True, False])
def test_postgres_store_conforms(pg: Cluster, cache: bool) -> None:
    conforms(lambda: keycel.PostgresStore(pg.database(), cache=cache, heartbeat_ms=50, bound_ms=250))


class NoTombstones(keycel.DictStore):
    """A host store that drops the "retired" collection: ids could be reused."""

    def put(self, collection: str, id: str, document: str) -> None:
        if collection != "retired":
            super().put(collection, id, document)


def test_the_suite_catches_a_broken_host_store() -> None:
    failures = _keycel._store_conformance(NoTombstones)
    assert any(f.startswith("ids_never_reused") for f in failures), failures


def run_vectors(make_store: Callable[[], Any]) -> List[str]:
    """Every shared vector, decided over a store made by `make_store` (allowed/status/code/key)."""
    problems: List[str] = []
    for f in sorted(VECTORS.glob("*.json")):
        doc: Dict[str, Any] = json.loads(f.read_text())
        store = make_store()
        for k in doc["keys"]:
            if isinstance(store, keycel.DictStore):  # a host store takes documents
                store.put("keys", k["id"], keycel.KeyRecord.from_dict(k).to_storage_json())
            else:
                store.insert_key(keycel.KeyRecord.from_dict(k))
        for u in doc["users"]:
            if isinstance(store, keycel.DictStore):
                store.put("users", u["id"], json.dumps(u))
            else:
                store.put_user(keycel.UserRecord.from_dict(u))
        engine = keycel.Engine(REPO / doc["policy"], store=store)
        for case in doc["cases"]:
            req = case["request"]

            def call() -> keycel.Decision:
                return engine.authorize(
                    [(n, v) for n, v in case["headers"]],
                    req["action"],
                    account=req.get("account"),
                    method=req.get("method"),
                    path=req.get("path"),
                    ip=req.get("ip"),
                    attributes=req.get("attributes") or None,
                    now=case.get("now") or doc["now"],
                )

            held = [call() for _ in range(case.get("in_flight", 0))]
            d = call()
            del held
            e = case["expect"]
            got = (d.allowed, d.status, d.code, d.key_id)
            want = (e["allowed"], e["status"], e["code"], e["key_id"])
            if got != want:
                problems.append(f"{f.stem}:{case['name']}: {got} != {want}")
    return problems


def test_vectors_over_sqlite(tmp_path: Path) -> None:
    n = itertools.count()
    assert run_vectors(lambda: keycel.SqliteStore(tmp_path / f"v{next(n)}.db")) == []


def test_vectors_over_postgres(pg: Cluster) -> None:
    assert run_vectors(lambda: keycel.PostgresStore(pg.database())) == []


def test_vectors_over_a_host_store() -> None:
    assert run_vectors(keycel.DictStore) == []


def wait_for(pred: Callable[[], bool], timeout: float = 3.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(0.002)
    raise AssertionError("timed out")


def issue(store: Any) -> tuple[keycel.Engine, keycel.Keyring, str, str]:
    engine = keycel.Engine(DEFAULT_POLICY, store=store)
    ring = engine.keyring(hash=CHEAP)
    key = ring.create("svc", kind="api", role="admin")
    return engine, ring, key.client_id, "Bearer " + key.token


def allowed(engine: keycel.Engine, bearer: str) -> bool:
    return engine.authorize([("authorization", bearer)], "api.read").allowed


def test_sqlite_cache_sees_another_connections_change_on_the_next_request(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    server_store = keycel.SqliteStore(db)
    assert server_store.cached
    engine, _, kid, bearer = issue(server_store)
    assert allowed(engine, bearer)
    # Another process's CLI: its own connection.
    other = keycel.Keyring(keycel.SqliteStore(db, cache=False), hash=CHEAP)
    other.deactivate(kid)
    assert not allowed(engine, bearer), "the very next request must see the deactivation"


def test_postgres_cache_sees_another_processes_change(pg: Cluster) -> None:
    dsn = pg.database()
    store = keycel.PostgresStore(dsn, heartbeat_ms=50, bound_ms=250)
    assert store.wait_live(5.0) and store.cache_live
    engine, _, kid, bearer = issue(store)
    assert allowed(engine, bearer)
    other = keycel.Keyring(keycel.PostgresStore(dsn, cache=False), hash=CHEAP)
    other.deactivate(kid)
    took = wait_for(lambda: not allowed(engine, bearer))
    assert took < 1.0


def test_postgres_store_errors_are_typed() -> None:
    with pytest.raises(keycel.StoreError):
        keycel.PostgresStore("postgresql://nobody@127.0.0.1:1/none", cache=False)
    with pytest.raises(keycel.InvalidArgumentError):
        keycel.PostgresStore("postgresql://x@127.0.0.1/x", heartbeat_ms=100, bound_ms=100)


def test_repr_hides_the_password(pg: Cluster) -> None:
    dsn = pg.database().replace("keycel@", "keycel:s3cret@")
    s = keycel.PostgresStore(dsn, cache=False)
    assert "s3cret" not in repr(s) and "s3cret" not in s.database
