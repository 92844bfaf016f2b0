"""Type stubs for the native module keycel._keycel (built from bindings-python/src)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Generator,
    Generic,
    Iterable,
    List,
    Literal,
    Mapping,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from .stores import DocumentStore

__version__: str

TimeLike = Union[datetime, int, float, str]
"""An aware datetime, Unix seconds, or an RFC 3339 string."""
DurationLike = Union[timedelta, int, float, str]
"""A timedelta, seconds, or a string like "90d", "12h", "30m", "45s", "2w"."""
Accounts = Union[Literal["all"], FrozenSet[str]]
AccountsArg = Union[Literal["all"], Iterable[str]]
HashArg = Union[Literal["owasp", "edge"], Mapping[str, int]]
"""argon2id parameters for new secrets: a preset or {"m_cost", "t_cost", "p_cost"}."""
HeaderValue = Union[str, bytes]
HeadersArg = Union[Mapping[str, str], Mapping[bytes, bytes], Iterable[Tuple[HeaderValue, HeaderValue]], Any]
"""A dict, any mapping with items() (Starlette Headers, Django request.headers), or pairs."""
StoreArg = Union["MemoryStore", "SqliteStore", DocumentStore, None]
AdmissionArg = Union[str, "RedisAdmission", None]
ActorArg = Union[str, "KeyRecord", "Decision", None]
"""None (the keyring's operator), an operator name, a KeyRecord, or an allowed Decision."""

_T = TypeVar("_T")

class _Ready(Generic[_T]):
    """An already-finished awaitable (what __aenter__/__aexit__ return)."""

    def __await__(self) -> Generator[Any, None, _T]: ...

class KeyRecord:
    """A stored API key (no secret, only its argon2id hash). Immutable."""

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> KeyRecord: ...
    @staticmethod
    def from_json(data: str) -> KeyRecord: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def kind(self) -> Literal["api", "personal"]: ...
    @property
    def user(self) -> Optional[str]: ...
    @property
    def role(self) -> str: ...
    @property
    def scopes(self) -> FrozenSet[str]: ...
    @property
    def accounts(self) -> Accounts: ...
    @property
    def active(self) -> bool: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def expires_at(self) -> Optional[datetime]: ...
    @property
    def rotated_at(self) -> Optional[datetime]: ...
    @property
    def previous_secret_valid_until(self) -> Optional[datetime]: ...
    @property
    def secret_hash(self) -> str: ...
    @property
    def max_concurrent(self) -> Optional[int]: ...
    @property
    def metadata(self) -> Dict[str, str]: ...
    @property
    def version(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class UserRecord:
    """A user: their roles and data access cap their personal tokens."""

    def __init__(self, id: str, roles: Iterable[str], accounts: Optional[AccountsArg] = None) -> None: ...
    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> UserRecord: ...
    @staticmethod
    def from_json(data: str) -> UserRecord: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def roles(self) -> FrozenSet[str]: ...
    @property
    def accounts(self) -> Accounts: ...
    @property
    def version(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class IssuedKey:
    """A created or rotated key. Its secret is readable exactly once, as `token` or `secret`."""

    @property
    def client_id(self) -> str: ...
    @property
    def record(self) -> KeyRecord: ...
    @property
    def token(self) -> str:
        """The full token; raises CredentialError when the secret was already read."""
    @property
    def secret(self) -> str:
        """The secret key alone; raises CredentialError when the secret was already read."""
    @property
    def readable(self) -> bool: ...

class Lease:
    """One request in flight for a key; release it when the request ends."""

    @property
    def id(self) -> int: ...
    @property
    def key_id(self) -> str: ...
    @property
    def expires_at(self) -> Optional[datetime]:
        """None: a live lease never expires (released when the object goes away)."""
    @property
    def released(self) -> bool: ...
    def release(self) -> bool: ...
    def __enter__(self) -> Lease: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...
    def __aenter__(self) -> _Ready[Lease]: ...
    def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> _Ready[Literal[False]]: ...

class Decision:
    """Allow or deny, with status, code, client message, headers and audit reason."""

    @property
    def allowed(self) -> bool: ...
    @property
    def status(self) -> int: ...
    @property
    def code(self) -> Optional[str]: ...
    @property
    def message(self) -> str: ...
    @property
    def headers(self) -> Dict[str, str]: ...
    @property
    def key_id(self) -> Optional[str]: ...
    @property
    def matched_rules(self) -> Tuple[str, ...]: ...
    @property
    def reason(self) -> str: ...
    @property
    def key(self) -> Optional[KeyRecord]: ...
    @property
    def lease(self) -> Optional[Lease]: ...
    @property
    def needs_rehash(self) -> bool: ...
    def body_json(self) -> str: ...
    def header(self, name: str) -> Optional[str]: ...
    def release(self) -> bool: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def __bool__(self) -> bool: ...
    def __enter__(self) -> Decision: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]: ...
    def __aenter__(self) -> _Ready[Decision]: ...
    def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> _Ready[Literal[False]]: ...

class MemoryStore:
    """Thread-safe in-memory store."""

    def __init__(self) -> None: ...
    def insert_key(self, record: KeyRecord) -> None: ...
    def put_user(self, user: UserRecord) -> None: ...
    def get_key(self, id: str) -> Optional[KeyRecord]: ...
    def get_user(self, id: str) -> Optional[UserRecord]: ...

class SqliteStore:
    """A key store in one SQLite file."""

    def __init__(self, path: Union[str, os.PathLike[str]], *, create: bool = True) -> None: ...
    @staticmethod
    def in_memory() -> SqliteStore: ...
    @property
    def path(self) -> Optional[str]: ...
    def insert_key(self, record: KeyRecord) -> None: ...
    def put_user(self, user: UserRecord) -> None: ...
    def get_key(self, id: str) -> Optional[KeyRecord]: ...
    def get_user(self, id: str) -> Optional[UserRecord]: ...

class Keyring:
    """Key lifecycle over a store, guarded by an Engine's policy (or operator-only)."""

    def __init__(
        self,
        store: StoreArg = None,
        *,
        guard: Optional[Engine] = None,
        hash: Optional[HashArg] = None,
        prefix: Optional[str] = None,
        operator: str = "python",
        audit: Optional[Callable[[Dict[str, Any]], object]] = None,
    ) -> None: ...
    @property
    def store(self) -> Any: ...
    def create(
        self,
        name: str,
        *,
        role: str,
        kind: Literal["api", "personal"] = "api",
        user: Optional[str] = None,
        description: str = "",
        scopes: Optional[Iterable[str]] = None,
        accounts: Optional[AccountsArg] = None,
        expires_in: Optional[DurationLike] = None,
        max_concurrent: Optional[int] = None,
        metadata: Optional[Mapping[str, str]] = None,
        active: bool = True,
        actor: ActorArg = None,
        now: Optional[TimeLike] = None,
    ) -> IssuedKey: ...
    def get(self, id: str, *, actor: ActorArg = None, now: Optional[TimeLike] = None) -> KeyRecord: ...
    def list(
        self,
        *,
        user: Optional[str] = None,
        kind: Optional[Literal["api", "personal"]] = None,
        active: Optional[bool] = None,
        actor: ActorArg = None,
        now: Optional[TimeLike] = None,
    ) -> List[KeyRecord]: ...
    def rename(self, id: str, name: str, *, actor: ActorArg = None, now: Optional[TimeLike] = None) -> KeyRecord: ...
    def describe(
        self, id: str, description: str, *, actor: ActorArg = None, now: Optional[TimeLike] = None
    ) -> KeyRecord: ...
    def set_role(self, id: str, role: str, *, actor: ActorArg = None, now: Optional[TimeLike] = None) -> KeyRecord: ...
    def set_scopes(
        self, id: str, scopes: Iterable[str], *, actor: ActorArg = None, now: Optional[TimeLike] = None
    ) -> KeyRecord: ...
    def set_accounts(
        self, id: str, accounts: AccountsArg, *, actor: ActorArg = None, now: Optional[TimeLike] = None
    ) -> KeyRecord: ...
    def set_active(
        self, id: str, active: bool, *, actor: ActorArg = None, now: Optional[TimeLike] = None
    ) -> KeyRecord: ...
    def activate(self, id: str, *, actor: ActorArg = None, now: Optional[TimeLike] = None) -> KeyRecord: ...
    def deactivate(self, id: str, *, actor: ActorArg = None, now: Optional[TimeLike] = None) -> KeyRecord: ...
    def set_expiry(
        self, id: str, expires_at: Optional[TimeLike], *, actor: ActorArg = None, now: Optional[TimeLike] = None
    ) -> KeyRecord: ...
    def set_max_concurrent(
        self, id: str, max_concurrent: Optional[int], *, actor: ActorArg = None, now: Optional[TimeLike] = None
    ) -> KeyRecord: ...
    def set_metadata(
        self, id: str, metadata: Mapping[str, str], *, actor: ActorArg = None, now: Optional[TimeLike] = None
    ) -> KeyRecord: ...
    def rotate(
        self,
        id: str,
        *,
        grace: Optional[DurationLike] = None,
        actor: ActorArg = None,
        now: Optional[TimeLike] = None,
    ) -> IssuedKey: ...
    def delete(self, id: str, *, actor: ActorArg = None, now: Optional[TimeLike] = None) -> None: ...
    def put_user(
        self,
        user: Union[UserRecord, str],
        *,
        roles: Optional[Iterable[str]] = None,
        accounts: Optional[AccountsArg] = None,
        actor: ActorArg = None,
        now: Optional[TimeLike] = None,
    ) -> UserRecord: ...
    def get_user(self, id: str) -> Optional[UserRecord]: ...
    def list_users(self) -> List[UserRecord]: ...
    def remove_user(self, id: str, *, actor: ActorArg = None, now: Optional[TimeLike] = None) -> int: ...

class Engine:
    """A compiled policy with authentication, verified-secret cache and leases, over a store."""

    def __init__(
        self,
        policy: Union[str, os.PathLike[str], Mapping[str, Any], None] = None,
        *,
        store: StoreArg = None,
        admission: AdmissionArg = None,
    ) -> None: ...
    @staticmethod
    def from_file(
        path: Union[str, os.PathLike[str]], *, store: StoreArg = None, admission: AdmissionArg = None
    ) -> Engine: ...
    @staticmethod
    def from_toml(
        source: str, *, origin: str = "<string>", store: StoreArg = None, admission: AdmissionArg = None
    ) -> Engine: ...
    @staticmethod
    def from_dict(
        policy: Mapping[str, Any], origin: str = "<dict>", store: StoreArg = None, admission: AdmissionArg = None
    ) -> Engine: ...
    @property
    def admission(self) -> str:
        """Where budgets are counted: "local", "sqlite" (or "redis")."""
    @property
    def store(self) -> Any: ...
    @property
    def origin(self) -> str: ...
    def authorize(
        self,
        headers: HeadersArg,
        action: str,
        account: Optional[str] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
        ip: Optional[str] = None,
        attributes: Optional[Mapping[str, Any]] = None,
        now: Optional[TimeLike] = None,
    ) -> Decision: ...
    def decide(
        self,
        key: KeyRecord,
        action: str,
        account: Optional[str] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
        ip: Optional[str] = None,
        attributes: Optional[Mapping[str, Any]] = None,
        user: Optional[UserRecord] = None,
        now: Optional[TimeLike] = None,
    ) -> Decision: ...
    def not_found_body(self) -> str: ...
    def in_flight(self, key_id: str) -> int: ...
    def clear_cache(self) -> None: ...
    def keyring(
        self,
        *,
        hash: Optional[HashArg] = None,
        operator: str = "python",
        audit: Optional[Callable[[Dict[str, Any]], object]] = None,
    ) -> Keyring: ...


class RedisAdmission:
    """Count per-key budgets in Redis, shared by every server using it. ``fail``: "deny"
    (503 while Redis is unreachable, the default) or "local" (count in this process)."""

    def __init__(self, url: str, *, fail: str = "deny", timeout: float = 0.5) -> None: ...
    @property
    def fail(self) -> str: ...
