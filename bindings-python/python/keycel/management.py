"""The management HTTP API (key and user management over HTTP), defined once in core.

Every decision (routing, validation, authorization by the acting key's policy and the
delegation rules, idempotency, answer shapes) is made by keycel's core; this module only
converts ASGI requests to it and its answers back. Mount it with one line:

    from keycel.management import asgi_app
    app.mount("/manage", asgi_app(engine))             # any ASGI app (Starlette, FastAPI, ...)

    from keycel.fastapi import management_router
    app.include_router(management_router(engine), prefix="/manage")   # FastAPI

Endpoints (relative to the mount point): ``POST /keys``, ``GET /keys``, ``GET|PATCH|DELETE
/keys/{id}``, ``POST /keys/{id}/rotate``, ``GET /keys/{id}/explain``, ``PUT|GET|DELETE
/users/{id}``, ``GET /users``, ``GET /openapi.json``. The handler blocks (argon2, store I/O),
so it runs on a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, List, MutableMapping, Optional, Tuple

from ._keycel import MANAGEMENT_MAX_BODY_BYTES, Engine, Keyring, management_handle, management_openapi

__all__ = ["asgi_app", "handle", "handle_async", "openapi", "default_keyring", "MAX_BODY_BYTES", "Answer"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Largest request body accepted (a larger one is answered 413 by core).
MAX_BODY_BYTES: int = MANAGEMENT_MAX_BODY_BYTES

#: ``(status, headers, body)``.
Answer = Tuple[int, List[Tuple[str, str]], bytes]


def default_keyring(engine: Engine) -> Keyring:
    """A keyring over the engine's store, guarded by the engine (what hosts usually want)."""
    return engine.keyring()


def openapi() -> str:
    """The OpenAPI 3.1 document (JSON text), the same one ``GET /openapi.json`` answers."""
    return management_openapi()


def handle(
    engine: Engine,
    keyring: Keyring,
    method: str,
    path: str,
    headers: List[Tuple[str, str]],
    body: bytes,
    client_ip: Optional[str] = None,
) -> Answer:
    """One request, blocking: ``path`` is path and query relative to the mount point."""
    status, out_headers, out_body = management_handle(engine, keyring, method, path, headers, body, client_ip)
    return status, out_headers, out_body


async def handle_async(
    engine: Engine,
    keyring: Keyring,
    method: str,
    path: str,
    headers: List[Tuple[str, str]],
    body: bytes,
    client_ip: Optional[str] = None,
) -> Answer:
    """:func:`handle` on a worker thread (argon2 and store I/O stay off the event loop)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, handle, engine, keyring, method, path, headers, body, client_ip)


async def read_body(receive: Receive) -> bytes:
    """The request body, reading at most ``MAX_BODY_BYTES + 1`` bytes (core answers 413)."""
    chunks: List[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if size <= MAX_BODY_BYTES:
            keep = chunk[: MAX_BODY_BYTES + 1 - size]
            chunks.append(keep)
            size += len(keep)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def relative_path(scope: Scope) -> str:
    """Path and query relative to where the app is mounted."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    # Keep the path as sent (percent-encoded): core decodes the {id} segment itself.
    raw: Optional[bytes] = scope.get("raw_path")
    if raw is not None:
        raw_text = raw.decode("latin-1")
        if root and raw_text.startswith(root):
            raw_text = raw_text[len(root) :]
        path = raw_text
    query: bytes = scope.get("query_string", b"")
    if query:
        path = f"{path}?{query.decode('latin-1')}"
    return path or "/"


def asgi_app(engine: Engine, keyring: Optional[Keyring] = None) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A plain ASGI app serving the management API (mount it anywhere).

    ``keyring`` defaults to :func:`default_keyring` (the engine's store, guarded by the engine).
    """
    ring = keyring if keyring is not None else default_keyring(engine)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        client = scope.get("client")
        client_ip = client[0] if client else None
        status, out_headers, out_body = await handle_async(
            engine, ring, scope["method"], relative_path(scope), headers, body, client_ip
        )
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers]
        raw.append((b"content-length", str(len(out_body)).encode("ascii")))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": out_body})

    return app
