"""The store protocol for keeping keys in your own database, and a reference implementation.

A store holds two collections, ``"keys"`` and ``"users"``, of JSON documents by id: the
records' *storage* form, as ``KeyRecord.to_storage_json()`` writes it (with the argon2id hash;
``to_json()`` / ``to_dict()`` give the public form, without it), and a third, ``"retired"``, of
small tombstones (``{"id": ...}``) for deleted key ids, so an id is never issued twice.
Implement four methods and pass the object as ``store=`` to :class:`keycel.Keyring` or
:class:`keycel.Engine`::

    class PgStore:
        def get(self, collection: str, id: str) -> str | None: ...
        def put(self, collection: str, id: str, document: str) -> None: ...
        def delete(self, collection: str, id: str) -> bool: ...
        def list(self, collection: str) -> Iterable[str]: ...

keycel validates every document it reads and re-reads the stored version before each write,
so concurrent edits are detected in core (``StoreError(kind="conflict")``). Exceptions your
methods raise become ``StoreError(kind="backend")``. ``get``/``list`` may also return dicts
(e.g. from a JSON column). Calls come from whichever thread runs the keycel call, with the
GIL held; make the store thread-safe if you share it.
"""

from __future__ import annotations

import threading
from typing import Dict, Iterable, Mapping, Optional, Protocol, Tuple, Union, runtime_checkable

__all__ = ["DocumentStore", "DictStore"]

Document = Union[str, Mapping[str, object]]


@runtime_checkable
class DocumentStore(Protocol):
    """What keycel needs from a store written in Python."""

    def get(self, collection: str, id: str) -> Optional[Document]: ...

    def put(self, collection: str, id: str, document: str) -> None: ...

    def delete(self, collection: str, id: str) -> bool: ...

    def list(self, collection: str) -> Iterable[Document]: ...


class DictStore:
    """A thread-safe dict-backed :class:`DocumentStore` (reference implementation, tests)."""

    def __init__(self) -> None:
        self._docs: Dict[Tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, collection: str, id: str) -> Optional[str]:
        with self._lock:
            return self._docs.get((collection, id))

    def put(self, collection: str, id: str, document: str) -> None:
        with self._lock:
            self._docs[(collection, id)] = document

    def delete(self, collection: str, id: str) -> bool:
        with self._lock:
            return self._docs.pop((collection, id), None) is not None

    def list(self, collection: str) -> Iterable[str]:
        with self._lock:
            return [d for (c, _), d in self._docs.items() if c == collection]

    def __len__(self) -> int:
        with self._lock:
            return len(self._docs)
