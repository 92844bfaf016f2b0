"""ASGI middleware for any Starlette/ASGI app.

Each HTTP request and each WebSocket handshake is authorized by
:meth:`keycel.Engine.authorize_async` from its headers and client address (never argon2 or
store I/O on the event loop: a cached secret is decided inline, anything needing argon2 runs
on the engine's bounded pool, and a full pool answers 503 at once); a denial is answered
right here with the decision's status (400/401/403/404/429/503), headers and the JSON body from core
(``Decision.body_json()``, byte-identical across Rust, Python and WASM). A WebSocket denial
uses the server's ``websocket.http.response`` extension when it has one, else closes the
handshake with code 1008 (servers answer that with HTTP 403). A WebSocket connection holds
its lease until it ends. Other scopes (``lifespan``) pass through.
An allowed request reaches the app with the decision in ``scope["state"]["keycel"]``
(``request.state.keycel`` in Starlette/FastAPI: ``.key`` is the authenticated KeyRecord); its
lease is released when the app returns, also when it raises.
A key with a rate limit gets the IETF ``RateLimit-Policy`` / ``RateLimit`` headers on its
429 ``rate_limited`` and, by default (``rate_limit_headers=True``), on allowed HTTP responses
too. ``cost``: the request's cost in rate units and credits (an int or ``scope -> int``;
default 1).

    app = KeycelMiddleware(app, engine, action=lambda scope: "api.read",
                           account=lambda scope: scope["path_params"].get("account_id"))

:class:`ThrottleGuard` answers clients over their failed-authentication budget with core's
429 before the app (routing, a framework's request and dependency machinery) sees the
request: :func:`keycel.fastapi.install` adds it. Under a flood of forged tokens most answers
are these 429s, so what each one costs the event loop decides what every other request waits.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Dict, List, Mapping, MutableMapping, Optional, Tuple, Union

from ._keycel import Decision, Engine

__all__ = ["KeycelMiddleware", "ThrottleGuard", "STATE_KEY", "deny_response_parts"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ActionArg = Union[str, Callable[[Scope], Optional[str]]]
AccountArg = Union[None, str, Callable[[Scope], Optional[str]]]
AttributesArg = Optional[Callable[[Scope], Optional[Mapping[str, Any]]]]
CostArg = Union[None, int, Callable[[Scope], Optional[int]]]

#: Headers of an allowed decision sent on the response (the budget status).
BUDGET_HEADERS = ("ratelimit-policy", "ratelimit")

#: Key of the decision in ``scope["state"]`` (``request.state.keycel``).
STATE_KEY = "keycel"


def deny_response_parts(decision: Decision) -> Tuple[int, List[Tuple[bytes, bytes]], bytes]:
    """Status, raw headers and body of the answer to a denied request."""
    body = decision.body_json().encode("utf-8")
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in decision.headers.items()]
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    return decision.status, headers, body


class KeycelMiddleware:
    """Authorizes every HTTP request before the wrapped ASGI app sees it.

    ``action``: the action to authorize, or a callable ``scope -> action | None`` (``None``
    lets the request through unauthenticated, e.g. health checks). ``account``: a fixed
    account, a callable ``scope -> account | None``, or ``None``. ``attributes``: an optional
    callable giving request attributes for policies. Authorization never blocks the event
    loop (see :meth:`keycel.Engine.authorize_async`; size the pools with
    ``engine.configure_offload``). ``offload`` is accepted for compatibility and ignored:
    argon2 always runs off the loop.
    """

    def __init__(
        self,
        app: ASGIApp,
        engine: Engine,
        *,
        action: ActionArg,
        account: AccountArg = None,
        attributes: AttributesArg = None,
        offload: bool = True,
        cost: CostArg = None,
        rate_limit_headers: bool = True,
    ) -> None:
        self.app = app
        self.cost = cost
        self.rate_limit_headers = rate_limit_headers
        self.engine = engine
        self.action = action
        self.account = account
        self.attributes = attributes
        self.offload = offload

    def _resolve(self, scope: Scope) -> Tuple[Optional[str], Optional[str], Optional[Mapping[str, Any]]]:
        action = self.action(scope) if callable(self.action) else self.action
        account = self.account(scope) if callable(self.account) else self.account
        attributes = self.attributes(scope) if self.attributes is not None else None
        return action, account, attributes

    def _authorize(
        self, scope: Scope, action: str, account: Optional[str], attributes: Optional[Mapping[str, Any]]
    ) -> Awaitable[Decision]:
        client = scope.get("client")
        host = client[0] if client else None
        return self.engine.authorize_async(
            scope.get("headers", []),
            action,
            account=account,
            # A WebSocket handshake is a GET (RFC 6455); its ASGI scope has no method.
            method=scope.get("method", "GET"),
            path=scope.get("path"),
            ip=host,
            attributes=attributes,
            # The socket peer: core charges failed authentications to it (429 past its budget).
            client_ip=host,
            cost=self.cost(scope) if callable(self.cost) else self.cost,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        action, account, attributes = self._resolve(scope)
        if action is None:
            await self.app(scope, receive, send)
            return
        decision = await self._authorize(scope, action, account, attributes)
        if not decision.allowed:
            await _deny(scope, receive, send, decision)
            return
        state: Dict[str, Any] = scope.setdefault("state", {})
        state[STATE_KEY] = decision
        extra = _budget_headers(decision) if self.rate_limit_headers and scope["type"] == "http" else []
        async with decision:
            if not extra:
                await self.app(scope, receive, send)
                return

            async def send_with_budget(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = dict(message)
                    message["headers"] = list(message.get("headers", [])) + extra
                await send(message)

            await self.app(scope, receive, send_with_budget)


def _budget_headers(decision: Decision) -> List[Tuple[bytes, bytes]]:
    """``RateLimit-Policy`` / ``RateLimit`` of an allowed decision (empty for an unmetered key)."""
    return [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in decision.headers.items()
        if k.lower() in BUDGET_HEADERS
    ]


#: Default tarpit of :class:`ThrottleGuard`: a screened 429 is held up to this many seconds
#: (never past its Retry-After) ...
HOLD = 3.0
#: ... while fewer than this many are held; past it they are answered at once.
MAX_HELD = 256


class ThrottleGuard:
    """Answers a client over its failed-authentication budget with core's 429
    ``too_many_failures`` (``Retry-After``) before the wrapped ASGI app sees the request.

    For each HTTP request and WebSocket handshake it runs :meth:`keycel.Engine.screen` on the
    headers and the socket peer's address: no record lookup, no argon2, no charge, a few
    microseconds on the loop. Only requests presenting credentials the verified-secret cache
    does not know, from an address or for a client id whose budget is spent, are answered;
    the answer is the one authorizing would give (same status, headers and body), also on
    routes that do not authorize (a public route asked with a throttled client's
    credentials). Everything else passes untouched; other scopes (``lifespan``) too.
    """

    def __init__(self, app: ASGIApp, engine: Engine, *, hold: float = HOLD, max_held: int = MAX_HELD) -> None:
        """``hold`` (seconds; 0 answers at once): a bounded tarpit. A screened 429 is sent
        after ``min(hold, Retry-After)`` seconds while fewer than ``max_held`` are held; beyond
        that it is sent at once. A flooding client gets its answer no earlier than it could
        have succeeded anyway, and each connection it keeps busy costs one sleeping task
        instead of a request per millisecond; memory stays bounded by ``max_held``."""
        if hold < 0 or max_held < 0:
            raise ValueError("hold and max_held must not be negative")
        self.app = app
        self.engine = engine
        self.hold = hold
        self.max_held = max_held
        self.held = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            client = scope.get("client")
            decision = self.engine.screen(scope.get("headers", ()), client[0] if client else None)
            if decision is not None:
                if self.hold > 0 and self.held < self.max_held:
                    await self._held(decision)
                await _deny(scope, receive, send, decision)
                return
        await self.app(scope, receive, send)

    async def _held(self, decision: Decision) -> None:
        try:
            retry = float(decision.headers.get("Retry-After", "1"))
        except ValueError:
            retry = 1.0
        self.held += 1
        try:
            await asyncio.sleep(min(self.hold, retry))
        finally:
            self.held -= 1


async def _deny(scope: Scope, receive: Receive, send: Send, decision: Decision) -> None:
    status, headers, body = deny_response_parts(decision)
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
