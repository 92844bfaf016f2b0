"""keycel: embedded API-key authentication and CEL authorization.

Every decision is made by the Rust core (the same one the CLI and the WASM package use);
this package converts values and maps errors. See README.md for a quickstart.
"""

from __future__ import annotations

from ._keycel import (
    Decision,
    Engine,
    IssuedKey,
    KeyRecord,
    Keyring,
    Lease,
    MemoryStore,
    Pending,
    PostgresStore,
    RedisAdmission,
    SqliteStore,
    UserRecord,
    __version__,
)
from .errors import (
    CredentialError,
    DeniedError,
    InternalError,
    InvalidArgumentError,
    InvalidRecordError,
    KeycelError,
    NotFoundError,
    PolicyError,
    StoreError,
)
from . import management
from .stores import DictStore, DocumentStore

__all__ = [
    "CredentialError",
    "Decision",
    "DeniedError",
    "DictStore",
    "DocumentStore",
    "Engine",
    "InternalError",
    "InvalidArgumentError",
    "InvalidRecordError",
    "IssuedKey",
    "KeyRecord",
    "KeycelError",
    "Keyring",
    "Lease",
    "MemoryStore",
    "NotFoundError",
    "Pending",
    "PolicyError",
    "PostgresStore",
    "RedisAdmission",
    "SqliteStore",
    "StoreError",
    "UserRecord",
    "__version__",
]
