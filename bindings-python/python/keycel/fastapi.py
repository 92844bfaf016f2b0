"""FastAPI integration: a dependency that authorizes the request and yields the Decision.

    from keycel.fastapi import install, require

    app = FastAPI()
    install(app, engine)

    @app.post("/admin/accounts/{account_id}")
    def create(account_id: str, auth: Decision = Depends(require("admin.account.create", account="account_id"))):
        return {"key": auth.key_id}

A denied request raises :class:`KeycelHTTPException`; the handler registered by
:func:`install` answers it with the decision's status, headers and the exact JSON body from
core (without ``install`` FastAPI's default handler still sends the status and headers). The
lease is held while the endpoint runs and released afterwards, also when it raises.
Authorization goes through :meth:`keycel.Engine.authorize_async`: argon2 and store I/O never
run on the event loop, and a full argon2 pool answers 503 with ``Retry-After`` at once.

``account=`` always means the account is checked; it never silently falls away:

* ``account="name"`` names a *path* parameter. A route that has no such parameter is a
  configuration error (:class:`KeycelConfigError`): raised by :func:`install` for routes that
  exist then, when the app starts (lifespan) for routes added later, and, should a request
  still reach such a route, by the dependency (a 500; the endpoint never runs).
* ``account=query_param("name")`` takes it from the query string; a request without it is
  answered 400 before any key is looked at.
* ``account=callable`` (taking the request) returns it; returning ``None`` answers 400.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Callable, Iterator, List, Mapping, Optional, Set, Tuple, Union

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from ._keycel import Decision, Engine, Keyring

__all__ = [
    "management_router",
    "KeycelHTTPException",
    "KeycelConfigError",
    "install",
    "require",
    "query_param",
    "check_routes",
    "decision_response",
    "ENGINE_STATE",
]

#: Attribute of ``app.state`` that holds the engine.
ENGINE_STATE = "keycel_engine"

AccountArg = Union[None, str, Callable[[Request], Optional[str]]]
AttributesArg = Optional[Callable[[Request], Optional[Mapping[str, Any]]]]


#: Attribute set on the dependencies :func:`require` makes: the path parameter they need.
_ACCOUNT_PARAM = "__keycel_account_path_param__"


class KeycelConfigError(RuntimeError):
    """A keycel dependency is bound to a route it cannot check (fail closed, never open)."""


class KeycelHTTPException(HTTPException):
    """A denied request; ``decision`` holds status, headers and body."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(status_code=decision.status, detail=decision.message, headers=decision.headers)
        self.decision = decision


def decision_response(decision: Decision) -> Response:
    """The HTTP answer to a denied decision (body from core, byte-identical everywhere)."""
    return Response(
        content=decision.body_json(),
        status_code=decision.status,
        headers=decision.headers,
        media_type="application/json",
    )


async def _handler(request: Request, exc: Exception) -> Response:
    if isinstance(exc, KeycelHTTPException):
        return decision_response(exc.decision)
    raise exc


def _dependency_calls(dependant: Any) -> Iterator[Any]:
    for sub in getattr(dependant, "dependencies", None) or []:
        call = getattr(sub, "call", None)
        if call is not None:
            yield call
        yield from _dependency_calls(sub)


def _route_checks(app: Any) -> Iterator[Tuple[str, Set[str], List[Any]]]:
    """(path, its path parameter names, the dependency callables) of every route, including
    the routes of included routers (FastAPI keeps those behind an ``_IncludedRouter`` entry)."""
    for route in getattr(app, "routes", None) or []:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            for ctx in contexts():
                original = getattr(ctx, "original_route", None)
                path = str(getattr(ctx, "path", None) or getattr(original, "path", ""))
                calls = [getattr(d, "dependency", None) for d in getattr(ctx, "dependencies", None) or []]
                for holder in (getattr(ctx, "dependant", None), getattr(original, "dependant", None)):
                    calls.extend(_dependency_calls(holder))
                yield path, set(compile_path(path)[2]), calls
        elif getattr(route, "dependant", None) is not None:
            path = str(getattr(route, "path", ""))
            yield path, set(compile_path(path)[2]), list(_dependency_calls(route.dependant))


def check_routes(app: Any) -> None:
    """Raises :class:`KeycelConfigError` when a route uses ``require(..., account="name")``
    (directly, in a sub-dependency or in router dependencies) without a path parameter
    ``name``. :func:`install` calls it at once and again when the app starts."""
    for path, params, calls in _route_checks(app):
        for call in calls:
            name = getattr(call, _ACCOUNT_PARAM, None)
            if name is not None and name not in params:
                raise KeycelConfigError(
                    f"keycel: require(..., account={name!r}) on route {path!r}: the route has no path "
                    f"parameter {name!r} (for a query parameter use account=query_param({name!r}))"
                )


def install(app: Any, engine: Engine) -> None:
    """Stores the engine on ``app.state``, registers the denial handler, and checks every
    route's ``account=`` path parameter now and when the app starts (:func:`check_routes`)."""
    setattr(app.state, ENGINE_STATE, engine)
    app.add_exception_handler(KeycelHTTPException, _handler)
    check_routes(app)
    router = getattr(app, "router", None)
    inner = getattr(router, "lifespan_context", None)
    if router is not None and inner is not None and not getattr(inner, "__keycel_checked__", False):

        @contextlib.asynccontextmanager
        async def checked(app_: Any) -> AsyncIterator[Any]:
            check_routes(app)
            async with inner(app_) as state:
                yield state

        setattr(checked, "__keycel_checked__", True)
        router.lifespan_context = checked


def query_param(name: str) -> Callable[[Request], Optional[str]]:
    """``account=query_param("account")``: the account is the query parameter ``name``; a
    request without it is answered 400."""

    def from_query(request: Request) -> Optional[str]:
        return request.query_params.get(name)

    from_query.__qualname__ = f"query_param({name!r})"
    return from_query


def _account(request: Request, account: AccountArg) -> Optional[str]:
    if account is None:
        return None
    if callable(account):
        value = account(request)
        if value is None:
            raise HTTPException(status_code=400, detail="this request names no account")
        return str(value)
    if account not in request.path_params:
        raise KeycelConfigError(f"keycel: the route {request.url.path!r} has no path parameter {account!r}")
    return str(request.path_params[account])


def require(
    action: str,
    *,
    account: AccountArg = None,
    attributes: AttributesArg = None,
    engine: Optional[Engine] = None,
) -> Callable[[Request], AsyncIterator[Decision]]:
    """A dependency authorizing ``action`` (for the account named by a path parameter, a
    :func:`query_param`, or returned by a callable taking the request; see the module docs:
    the account check never silently falls away). Yields the allowed Decision: ``.key`` is
    the authenticated KeyRecord, ``.key_id`` its id."""

    async def dependency(request: Request) -> AsyncIterator[Decision]:
        eng = engine if engine is not None else getattr(request.app.state, ENGINE_STATE, None)
        if eng is None:
            raise RuntimeError("keycel: call keycel.fastapi.install(app, engine) or pass engine= to require()")
        client = request.client
        decision = await eng.authorize_async(
            request.headers,
            action,
            account=_account(request, account),
            method=request.method,
            path=request.url.path,
            ip=client.host if client else None,
            attributes=attributes(request) if attributes is not None else None,
            # The socket peer: core charges failed authentications to it (429 past its budget).
            client_ip=client.host if client else None,
        )
        if not decision.allowed:
            raise KeycelHTTPException(decision)
        async with decision:
            yield decision

    if isinstance(account, str):
        setattr(dependency, _ACCOUNT_PARAM, account)
    return dependency


_CATCH_ALL = "/{path:path}"


def management_router(engine: Engine, keyring: Optional[Keyring] = None) -> Any:
    """The management HTTP API as a FastAPI ``APIRouter`` (see :mod:`keycel.management`):

        app.include_router(management_router(engine), prefix="/manage")

    Every request is handed to core unchanged (path relative to the prefix, headers, body);
    core authenticates the acting key, decides and answers. ``keyring`` defaults to a keyring
    over the engine's store guarded by the engine. Not listed in FastAPI's own OpenAPI: the
    API's document is served at ``{prefix}/openapi.json``.
    """
    from fastapi import APIRouter

    from .management import MAX_BODY_BYTES, default_keyring, handle_async

    ring = keyring if keyring is not None else default_keyring(engine)
    router = APIRouter()

    async def management(request: Request) -> Response:
        # The prefix is what precedes the catch-all parameter (and its "/"); the rest is sent
        # to core as received (still percent-encoded: core decodes the {id} segment).
        full: str = request.scope["path"]
        param: str = request.path_params.get("path", "")
        prefix_len = max(len(full) - len(param) - 1, 0)
        raw: bytes = request.scope.get("raw_path") or full.encode("utf-8")
        path = raw.decode("latin-1")[prefix_len:]
        query = request.scope.get("query_string", b"")
        if query:
            path = f"{path}?{query.decode('latin-1')}"
        body = b""
        async for chunk in request.stream():
            if len(body) <= MAX_BODY_BYTES:
                body += chunk[: MAX_BODY_BYTES + 1 - len(body)]
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope.get("headers", [])]
        client = request.client.host if request.client else None
        status, out_headers, out_body = await handle_async(engine, ring, request.method, path or "/", headers, body, client)
        response = Response(content=out_body, status_code=status)
        for k, v in out_headers:
            response.headers[k] = v
        return response

    router.add_api_route(
        _CATCH_ALL,
        management,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    return router
