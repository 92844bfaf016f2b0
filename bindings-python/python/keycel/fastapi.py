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
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Mapping, Optional, Union

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ._keycel import Decision, Engine

__all__ = ["KeycelHTTPException", "install", "require", "decision_response", "ENGINE_STATE"]

#: Attribute of ``app.state`` that holds the engine.
ENGINE_STATE = "keycel_engine"

AccountArg = Union[None, str, Callable[[Request], Optional[str]]]
AttributesArg = Optional[Callable[[Request], Optional[Mapping[str, Any]]]]


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


def install(app: Any, engine: Engine) -> None:
    """Stores the engine on ``app.state`` and registers the denial handler."""
    setattr(app.state, ENGINE_STATE, engine)
    app.add_exception_handler(KeycelHTTPException, _handler)


def _account(request: Request, account: AccountArg) -> Optional[str]:
    if account is None:
        return None
    if callable(account):
        return account(request)
    value = request.path_params.get(account)
    if value is None:
        value = request.query_params.get(account)
    return None if value is None else str(value)


def require(
    action: str,
    *,
    account: AccountArg = None,
    attributes: AttributesArg = None,
    engine: Optional[Engine] = None,
) -> Callable[[Request], AsyncIterator[Decision]]:
    """A dependency authorizing ``action`` (for the account named by a path/query parameter,
    or returned by a callable taking the request). Yields the allowed Decision: ``.key`` is
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

    return dependency
