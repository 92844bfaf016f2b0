"""Example Flask service protected by keycel (extension + ``@require``).

    KEYCEL_DB=keys.db gunicorn --chdir examples --threads 8 flask_example:app

Routes: the HTTP contract of tests/http_cases/ (see django_example.py for the list).
Environment: KEYCEL_DB (SQLite store; default an empty in-memory store), KEYCEL_POLICY.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Iterator

from flask import Flask, Response, request

import keycel
from keycel.flask import Keycel, current_decision, not_found, require

db = os.environ.get("KEYCEL_DB")
engine = keycel.Engine(os.environ.get("KEYCEL_POLICY"), store=keycel.SqliteStore(db) if db else keycel.MemoryStore())
app = Flask(__name__)
Keycel(app, engine)


@app.get("/health")
def health() -> Dict[str, str]:
    return {"status": "ok"}


@app.get("/_inflight/<key_id>")
def in_flight(key_id: str) -> Dict[str, int]:
    return {"in_flight": engine.in_flight(key_id)}


@app.get("/v1/accounts/<account_id>/data")
@require("api.read", account="account_id")
def data(account_id: str) -> Dict[str, Any]:
    return {"account": account_id, "key_id": current_decision().key_id}


@app.get("/v1/accounts/<account_id>/missing")
@require("api.read", account="account_id")
def missing(account_id: str) -> Response:
    return not_found()


@app.get("/v1/accounts/<account_id>/stream")
@require("api.read", account="account_id")
def stream(account_id: str) -> Response:
    chunks = min(int(request.args.get("chunks", 3)), 100)
    ms = min(int(request.args.get("ms", 0)), 5000)

    def lines() -> Iterator[bytes]:
        for i in range(chunks):
            if i:
                time.sleep(ms / 1000)
            yield f"chunk {i}\n".encode()

    return Response(lines(), mimetype="text/plain")


@app.get("/v1/accounts/<account_id>/boom")
@require("api.read", account="account_id")
def boom(account_id: str) -> Response:
    raise RuntimeError("the handler failed")


@app.post("/admin/accounts")
@require("admin.account.create")
def create_account() -> Dict[str, Any]:
    return {"created": True, "key_id": current_decision().key_id}
