"""FastAPI dependency and ASGI middleware in process (the real-server test is test_server.py)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import keycel
from keycel.asgi import KeycelMiddleware
from keycel.fastapi import KeycelHTTPException, install, require
from helpers import CHEAP, DEFAULT_POLICY


@pytest.fixture
def setup() -> Dict[str, Any]:
    engine = keycel.Engine(DEFAULT_POLICY)
    kr = engine.keyring(hash=CHEAP)
    reader = kr.create("reader", role="reader", accounts=["acc_1"])
    admin = kr.create("admin", role="admin")
    return {"engine": engine, "reader": reader.client_id, "reader_token": reader.token,
            "admin": admin.client_id, "admin_token": admin.token}


def fastapi_app(engine: keycel.Engine) -> FastAPI:
    app = FastAPI()
    install(app, engine)

    @app.get("/v1/accounts/{account_id}")
    def read(account_id: str, auth: keycel.Decision = Depends(require("api.read", account="account_id"))) -> Dict[str, Any]:
        assert auth.key is not None and auth.lease is not None
        return {"key": auth.key_id, "name": auth.key.name, "in_flight": engine.in_flight(auth.key_id or "")}

    @app.get("/boom/{account_id}")
    def boom(account_id: str, auth: keycel.Decision = Depends(require("api.read", account=lambda r: r.path_params["account_id"]))) -> None:
        raise RuntimeError("handler failed")

    @app.post("/admin/accounts")
    def create(auth: keycel.Decision = Depends(require("admin.account.create"))) -> Dict[str, Optional[str]]:
        return {"by": auth.key_id}

    return app


def test_fastapi_dependency_allows_and_hands_over_the_key(setup: Dict[str, Any]) -> None:
    client = TestClient(fastapi_app(setup["engine"]))
    r = client.get("/v1/accounts/acc_1", headers={"Authorization": f"Bearer {setup['reader_token']}"})
    assert r.status_code == 200 and r.json() == {"key": setup["reader"], "name": "reader", "in_flight": 1}
    assert setup["engine"].in_flight(setup["reader"]) == 0


def test_fastapi_denials_have_core_bodies_and_headers(setup: Dict[str, Any]) -> None:
    engine = setup["engine"]
    client = TestClient(fastapi_app(engine))
    r = client.get("/v1/accounts/acc_1")
    assert r.status_code == 401 and "www-authenticate" in r.headers
    assert r.content == engine.authorize({}, "api.read").body_json().encode()
    r = client.get("/v1/accounts/acc_2", headers={"Authorization": f"Bearer {setup['reader_token']}"})
    assert r.status_code == 404 and r.content == engine.not_found_body().encode()
    r = client.post("/admin/accounts", headers={"Authorization": f"Bearer {setup['reader_token']}"})
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    r = client.post("/admin/accounts", headers={"Authorization": f"Bearer {setup['admin_token']}"})
    assert r.status_code == 200 and r.json() == {"by": setup["admin"]}


def test_fastapi_releases_the_lease_when_the_handler_raises(setup: Dict[str, Any]) -> None:
    client = TestClient(fastapi_app(setup["engine"]), raise_server_exceptions=False)
    r = client.get("/boom/acc_1", headers={"Authorization": f"Bearer {setup['reader_token']}"})
    assert r.status_code == 500
    assert setup["engine"].in_flight(setup["reader"]) == 0


def test_fastapi_429_with_retry_after(setup: Dict[str, Any]) -> None:
    engine = setup["engine"]
    h = {"Authorization": f"Bearer {setup['reader_token']}"}
    held = [engine.authorize(h, "api.read") for _ in range(5)]
    client = TestClient(fastapi_app(engine))
    r = client.get("/v1/accounts/acc_1", headers=h)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    for d in held:
        d.release()
    assert client.get("/v1/accounts/acc_1", headers=h).status_code == 200


def test_require_without_install_is_a_clear_error(setup: Dict[str, Any]) -> None:
    app = FastAPI()

    @app.get("/x")
    def x(auth: keycel.Decision = Depends(require("api.read"))) -> None:
        return None

    with pytest.raises(RuntimeError, match="install"):
        TestClient(app).get("/x")


def test_keycel_http_exception_carries_the_decision(setup: Dict[str, Any]) -> None:
    d = setup["engine"].authorize({}, "api.read")
    e = KeycelHTTPException(d)
    assert e.status_code == 401 and e.decision is d and e.headers == d.headers


def plain_app(engine: keycel.Engine) -> Any:
    async def data(request: Request) -> JSONResponse:
        d: keycel.Decision = request.state.keycel
        return JSONResponse({"key": d.key_id, "in_flight": engine.in_flight(d.key_id or "")})

    async def fail(request: Request) -> PlainTextResponse:
        raise ValueError("nope")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/data/{account}", data), Route("/fail/{account}", fail), Route("/health", health)])

    def action(scope: Dict[str, Any]) -> Optional[str]:
        return None if scope["path"] == "/health" else "api.read"

    def account(scope: Dict[str, Any]) -> Optional[str]:
        parts = scope["path"].strip("/").split("/")
        return parts[1] if len(parts) > 1 else None

    return KeycelMiddleware(app, engine, action=action, account=account)


@pytest.mark.parametrize("offload", [False, True])
def test_middleware(setup: Dict[str, Any], offload: bool) -> None:
    engine = setup["engine"]
    app = plain_app(engine)
    app.offload = offload
    client = TestClient(app, raise_server_exceptions=False)
    h = {"Authorization": f"Bearer {setup['reader_token']}"}
    assert client.get("/health").text == "ok"
    r = client.get("/data/acc_1", headers=h)
    assert r.status_code == 200 and r.json() == {"key": setup["reader"], "in_flight": 1}
    r = client.get("/data/acc_2", headers=h)
    assert r.status_code == 404 and r.content == engine.not_found_body().encode()
    r = client.get("/data/acc_1")
    assert r.status_code == 401 and r.headers["content-type"] == "application/json"
    assert client.get("/fail/acc_1", headers=h).status_code == 500
    assert engine.in_flight(setup["reader"]) == 0


def test_middleware_authorizes_websocket_handshakes(setup: Dict[str, Any]) -> None:
    """A WebSocket is not a way around the middleware: it is authorized like a GET, a denial
    never reaches the app, and an allowed connection holds its lease while open."""
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    engine = setup["engine"]
    reached: List[str] = []

    async def ws(websocket: WebSocket) -> None:
        reached.append(websocket.url.path)
        await websocket.accept()
        d: keycel.Decision = websocket.state.keycel
        await websocket.send_json({"key": d.key_id, "in_flight": engine.in_flight(d.key_id or "")})
        await websocket.close()

    app = KeycelMiddleware(
        Starlette(routes=[WebSocketRoute("/ws/{account}", ws)]),
        engine,
        action="api.read",
        account=lambda scope: scope["path"].rsplit("/", 1)[-1],
    )
    client = TestClient(app)
    h = {"Authorization": f"Bearer {setup['reader_token']}"}
    with client.websocket_connect("/ws/acc_1", headers=h) as conn:
        assert conn.receive_json() == {"key": setup["reader"], "in_flight": 1}
    assert engine.in_flight(setup["reader"]) == 0
    from starlette.testclient import WebSocketDenialResponse

    # With the server's denial-response extension: the decision's status and core's body.
    for path, headers, status in (("/ws/acc_1", {}, 401), ("/ws/acc_2", h, 404)):
        with pytest.raises(WebSocketDenialResponse) as denied:
            with client.websocket_connect(path, headers=headers):
                pass
        assert denied.value.status_code == status
        assert denied.value.content == engine.authorize(headers, "api.read", account=path[-5:]).body_json().encode()

    # Without it: the handshake is closed with 1008 (policy violation).
    async def no_extensions(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await app(dict(scope, extensions={}), receive, send)

    with pytest.raises(WebSocketDisconnect) as closed:
        with TestClient(no_extensions).websocket_connect("/ws/acc_1"):
            pass
    assert closed.value.code == 1008
    assert reached == ["/ws/acc_1"], "denied handshakes never reach the app"
