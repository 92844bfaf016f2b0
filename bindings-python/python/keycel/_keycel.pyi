"""Type stubs for the native module keycel._keycel (built from bindings-python/src)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from types import TracebackType
from typing import (
    Any,
    Awaitable,
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
    TypedDict,
    TypeVar,
    Union,
)

from .offload import Offload
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
StoreArg = Union["MemoryStore", "SqliteStore", "PostgresStore", DocumentStore, None]
AdmissionArg = Union[str, "RedisAdmission", None]
ActorArg = Union[str, "KeyRecord", "Decision", None]
"""None (the keyring's operator), an operator name, a KeyRecord, or an allowed Decision."""

class _RateLimitBase(TypedDict):
    limit: int
    per: DurationLike

class RateLimitSpec(_RateLimitBase, total=False):
    """`Keyring.create(rate_limit=...)`: `limit` requests per `per`, `burst` more at once."""

    burst: int

class RefillSpec(TypedDict):
    amount: int
    interval: DurationLike

class _CreditsBase(TypedDict):
    remaining: int

class CreditsSpec(_CreditsBase, total=False):
    """`Keyring.create(credits=...)`: credits granted now, refilled to `amount` every `interval`."""

    refill: Optional[RefillSpec]

_T = TypeVar("_T")

class _Ready(Generic[_T]):
    """An already-finished awaitable (what __aenter__/__aexit__ return)."""

    def __await__(self) -> Generator[Any, None, _T]: ...

class KeyRecord:
    """A stored API key (no secret, only its argon2id hash). Immutable."""

    @staticmethod
    def from_storage_dict(data: Mapping[str, Any]) -> KeyRecord: ...
    @staticmethod
    def from_storage_json(data: str) -> KeyRecord: ...
    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> KeyRecord:
        """Same as from_storage_dict."""
    @staticmethod
    def from_json(data: str) -> KeyRecord:
        """Same as from_storage_json."""
    def to_dict(self) -> Dict[str, Any]:
        """The public form: every field but the hashes."""
    def to_json(self) -> str:
        """The public form as JSON text."""
    def to_storage_dict(self) -> Dict[str, Any]:
        """The storage form, with the argon2id hashes: for stores only."""
    def to_storage_json(self) -> str:
        """The storage form as JSON text: for stores only."""
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

class RevealedKey(TypedDict):
    """Every form of an issued secret (``IssuedKey.reveal()``)."""

    client_id: str
    secret_key: str
    token: str
    authorization_basic: str
    authorization_bearer: str
    headers: Dict[str, str]

class IssuedKey:
    """A created or rotated key. Its secret is readable exactly once: `reveal()` (every form),
    `token` or `secret`."""

    def reveal(self) -> RevealedKey:
        """Every form at once; raises CredentialError when the secret was already read."""

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

class Pending:
    """argon2 still owed for a request (from Engine.authorize_step); finish() it off the event loop."""

    def finish(self, now: Optional[TimeLike] = None) -> Decision:
        """Runs argon2 (GIL released) and decides; 503 when the argon2 gate stays full."""
    def overloaded(self) -> Decision:
        """Core's 503 overloaded decision, for a host that sheds this request instead of hashing."""
    @property
    def client_id(self) -> str: ...
    @property
    def finished(self) -> bool: ...

class PreparedStep:
    """A first step for a worker thread (the store does I/O); from Engine.authorize_async."""

    def step(self) -> Union[Decision, Pending]: ...
    def overloaded(self) -> Decision: ...

class MemoryStore:
    """Thread-safe in-memory store."""

    def __init__(self) -> None: ...
    def insert_key(self, record: KeyRecord) -> None: ...
    def put_user(self, user: UserRecord) -> None: ...
    def get_key(self, id: str) -> Optional[KeyRecord]: ...
    def get_user(self, id: str) -> Optional[UserRecord]: ...

class SqliteStore:
    """A key store in one SQLite file (record cache invalidated by PRAGMA data_version)."""

    def __init__(self, path: Union[str, os.PathLike[str]], *, create: bool = True, cache: bool = True) -> None: ...
    @staticmethod
    def in_memory(*, cache: bool = True) -> SqliteStore: ...
    @property
    def path(self) -> Optional[str]: ...
    @property
    def cached(self) -> bool: ...
    def insert_key(self, record: KeyRecord) -> None: ...
    def put_user(self, user: UserRecord) -> None: ...
    def get_key(self, id: str) -> Optional[KeyRecord]: ...
    def get_user(self, id: str) -> Optional[UserRecord]: ...

class PostgresStore:
    """A key store in PostgreSQL (record cache kept current by LISTEN/NOTIFY)."""

    def __init__(self, dsn: str, *, cache: bool = True, heartbeat_ms: int = 100, bound_ms: int = 500) -> None: ...
    @property
    def database(self) -> str: ...
    @property
    def cache_live(self) -> bool: ...
    def wait_live(self, timeout: float) -> bool: ...
    def insert_key(self, record: KeyRecord) -> None: ...
    def put_user(self, user: UserRecord) -> None: ...
    def get_key(self, id: str) -> Optional[KeyRecord]: ...
    def get_user(self, id: str) -> Optional[UserRecord]: ...

def _store_conformance(factory: Callable[[], StoreArg]) -> List[str]: ...

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
        rate_limit: Optional[RateLimitSpec] = None,
        credits: Union[int, CreditsSpec, None] = None,
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
    def set_rate_limit(
        self,
        id: str,
        limit: Optional[int] = None,
        per: Optional[DurationLike] = None,
        burst: int = 0,
        *,
        actor: ActorArg = None,
        now: Optional[TimeLike] = None,
    ) -> KeyRecord: ...
    def set_credits(
        self,
        id: str,
        remaining: Optional[int] = None,
        *,
        refill_amount: Optional[int] = None,
        refill_interval: Optional[DurationLike] = None,
        actor: ActorArg = None,
        now: Optional[TimeLike] = None,
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
        rehash_on_use: bool = False,
    ) -> None: ...
    @staticmethod
    def from_file(
        path: Union[str, os.PathLike[str]], *, store: StoreArg = None, admission: AdmissionArg = None, rehash_on_use: bool = False
    ) -> Engine: ...
    @staticmethod
    def from_toml(
        source: str, *, origin: str = "<string>", store: StoreArg = None, admission: AdmissionArg = None, rehash_on_use: bool = False
    ) -> Engine: ...
    @staticmethod
    def from_dict(
        policy: Mapping[str, Any], origin: str = "<dict>", store: StoreArg = None, admission: AdmissionArg = None, *, rehash_on_use: bool = False
    ) -> Engine: ...
    @property
    def rehash_on_use(self) -> bool: ...
    def wait_for_rehashes(self) -> int:
        """Waits for the background hash upgrades started so far; returns how many."""
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
        client_ip: Optional[str] = None,
        cost: Optional[int] = None,
    ) -> Decision: ...
    def authorize_step(
        self,
        headers: HeadersArg,
        action: str,
        account: Optional[str] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
        ip: Optional[str] = None,
        attributes: Optional[Mapping[str, Any]] = None,
        now: Optional[TimeLike] = None,
        client_ip: Optional[str] = None,
        cost: Optional[int] = None,
    ) -> Union[Decision, Pending]:
        """Cached keys and cheap failures decide here; anything needing argon2 returns a Pending."""
    def screen(
        self, headers: HeadersArg, client_ip: Optional[str] = None, now: Optional[TimeLike] = None
    ) -> Optional[Decision]:
        """The 429 authorizing would answer a client over its failure budget (no lookup, no hash), else None."""
    def authorize_async(
        self,
        headers: HeadersArg,
        action: str,
        account: Optional[str] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
        ip: Optional[str] = None,
        attributes: Optional[Mapping[str, Any]] = None,
        now: Optional[TimeLike] = None,
        client_ip: Optional[str] = None,
        cost: Optional[int] = None,
    ) -> Awaitable[Decision]:
        """authorize for event loops: argon2 and store I/O run on bounded pools (503 when full)."""
    def configure_offload(
        self,
        *,
        hash_threads: Optional[int] = None,
        hash_queue: Optional[int] = None,
        io_threads: Optional[int] = None,
        io_queue: Optional[int] = None,
    ) -> Offload: ...
    @property
    def offload(self) -> Offload: ...
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
    def explain(
        self, key: KeyRecord, user: Optional[UserRecord] = None, now: Optional[TimeLike] = None
    ) -> Dict[str, Any]:
        """What the key can do now: key_id, kind, user, role, scopes (effective), accounts,
        expires_at, max_concurrent, active."""
    def roles(self) -> Dict[str, List[str]]:
        """Every role the policy defines and the scope patterns it grants."""
    def scopes(self) -> Dict[str, str]:
        """The scope catalogue: scope -> description."""
    def not_found_body(self) -> str: ...
    def in_flight(self, key_id: str) -> int: ...
    def usage(self, key_id: str, *, now: Optional[TimeLike] = None) -> Optional[int]:
        """Credits the key has left, as the engine's admission counts them; None: unmetered."""
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

#: Largest body the management API accepts (a larger one is answered 413).
MANAGEMENT_MAX_BODY_BYTES: int

def management_handle(
    engine: Engine,
    keyring: Keyring,
    method: str,
    path: str,
    headers: List[Tuple[str, str]],
    body: bytes,
    client_ip: Optional[str] = None,
    now: Optional[TimeLike] = None,
) -> Tuple[int, List[Tuple[str, str]], bytes]:
    """One management API request (see keycel.management): ``(status, headers, body)``.
    Blocking (argon2, store I/O); releases the GIL while core handles it."""

def management_openapi() -> str:
    """The management API's OpenAPI 3.1 document (JSON text)."""
