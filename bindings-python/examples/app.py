"""Example service protected by keycel (FastAPI dependency + ASGI middleware).

Run it (keys in a SQLite file, created with the keycel CLI or keycel.Keyring):

    KEYCEL_DB=keys.db uvicorn app:app --host 127.0.0.1 --port 8000

Routes:
    GET  /health                               public
    GET  /v1/accounts/{account_id}/data        api.read on that account (dependency)
    GET  /v1/accounts/{account_id}/slow?ms=N   api.read, holds its lease N ms (concurrency limit)
    POST /admin/accounts                       admin.account.create (Administration API)
    GET  /mw/accounts/{account_id}/data        api.read via KeycelMiddleware (plain Starlette app)
    GET  /v1/accounts/{account_id}/missing     404 with the same body as an out-of-scope account
    /manage/...                                the management API (keys, users, /openapi.json), FastAPI router
    /manage-asgi/...                           the same API as a plain ASGI app

Environment: KEYCEL_DB (SQLite store path; default: an empty in-memory store),
KEYCEL_POLICY (policy file; default: keycel's built-in default policy), KEYCEL_REDIS (a
redis:// URL: count per-key budgets in Redis, shared by every server; KEYCEL_REDIS_FAIL =
deny | local says what to do while it is unreachable).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Dict, MutableMapping, Optional

from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import keycel
from keycel.asgi import STATE_KEY, KeycelMiddleware
from keycel.fastapi import install, management_router, require
from keycel.management import asgi_app


def build_engine() -> keycel.Engine:
    db = os.environ.get("KEYCEL_DB")
    store: Any = keycel.SqliteStore(db) if db else keycel.MemoryStore()
    policy = os.environ.get("KEYCEL_POLICY")
    redis = os.environ.get("KEYCEL_REDIS")
    # With a SQLite file the budget is shared by this machine's workers automatically; with
    # Redis, by every server using it.
    admission: Any = keycel.RedisAdmission(redis, fail=os.environ.get("KEYCEL_REDIS_FAIL", "deny")) if redis else None
    return keycel.Engine(policy, store=store, admission=admission)


engine = build_engine()
app = FastAPI(title="keycel example")
install(app, engine)
# The management API, one line each (keys act through it under the policy's delegation rules).
app.include_router(management_router(engine), prefix="/manage")
app.mount("/manage-asgi", asgi_app(engine))


@app.get("/health")
def health() -> Dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/accounts/{account_id}/data")
def read_data(account_id: str, auth: keycel.Decision = Depends(require("api.read", account="account_id"))) -> Dict[str, Any]:
    key = auth.key
    return {"account": account_id, "key_id": auth.key_id, "key_name": key.name if key else None}


@app.get("/v1/accounts/{account_id}/slow")
async def slow(
    account_id: str, ms: int = 500, auth: keycel.Decision = Depends(require("api.read", account="account_id"))
) -> Dict[str, Any]:
    await asyncio.sleep(min(max(ms, 0), 10_000) / 1000)
    return {"account": account_id, "key_id": auth.key_id}


@app.post("/admin/accounts")
def create_account(auth: keycel.Decision = Depends(require("admin.account.create"))) -> Dict[str, Any]:
    return {"created": True, "by": auth.key_id}


@app.get("/v1/accounts/{account_id}/missing")
def missing(account_id: str, auth: keycel.Decision = Depends(require("api.read", account="account_id"))) -> Response:
    # A resource that does not exist answers exactly like an out-of-scope account.
    return Response(engine.not_found_body(), status_code=404, media_type="application/json")


async def mw_data(request: Request) -> JSONResponse:
    decision: keycel.Decision = getattr(request.state, STATE_KEY)
    return JSONResponse({"account": request.path_params["account_id"], "key_id": decision.key_id, "via": "middleware"})


def mw_account(scope: MutableMapping[str, Any]) -> Optional[str]:
    # The middleware runs before routing: take the account from the path below the mount.
    path = str(scope.get("path", ""))[len(str(scope.get("root_path", ""))) :]
    parts = path.strip("/").split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "accounts" else None


plain = Starlette(routes=[Route("/accounts/{account_id}/data", mw_data)])
app.mount("/mw", KeycelMiddleware(plain, engine, action="api.read", account=mw_account))
