"""Flask integration: an extension holding the engine and a ``@require`` view decorator.

    from keycel.flask import Keycel, require

    app = Flask(__name__)
    Keycel(app, engine)                          # or Keycel().init_app(app, engine)

    @app.get("/v1/accounts/<account_id>/data")
    @require("api.read", account="account_id")   # account: the URL variable of that name
    def data(account_id):
        return {"key_id": g.keycel.key_id}       # g.keycel: the allowed Decision

The engine decides; a denial is answered with the decision's status, headers and JSON body
(``Decision.body_json()``). An allowed decision's lease is released when the WSGI server
closes the response (after the last byte of a streaming body), or at once when the view
raises. Configuration mistakes fail closed (a 500): no extension on the app, an account
variable the route lacks.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Optional, TypeVar, Union, cast

from flask import Flask, Response, current_app, g, request

from ._keycel import Decision, Engine

__all__ = ["Keycel", "KeycelConfigError", "current_decision", "decision_response", "not_found", "require"]

#: Key of the extension in ``app.extensions``.
EXTENSION = "keycel"

AccountArg = Union[None, str, Callable[[Dict[str, Any]], Optional[str]]]
_View = TypeVar("_View", bound=Callable[..., Any])


class KeycelConfigError(RuntimeError):
    """A configuration mistake; the request fails closed (500)."""


class Keycel:
    """The Flask extension: holds the engine for ``@require``."""

    def __init__(self, app: Optional[Flask] = None, engine: Optional[Engine] = None) -> None:
        self.engine = engine
        if app is not None:
            self.init_app(app, engine)

    def init_app(self, app: Flask, engine: Optional[Engine] = None) -> None:
        engine = engine or self.engine or app.config.get("KEYCEL_ENGINE")
        if not isinstance(engine, Engine):
            raise KeycelConfigError("keycel: pass a keycel.Engine to Keycel(app, engine) or set app.config['KEYCEL_ENGINE']")
        self.engine = engine
        app.extensions[EXTENSION] = self


def _engine() -> Engine:
    ext = current_app.extensions.get(EXTENSION)
    if not isinstance(ext, Keycel) or ext.engine is None:
        raise KeycelConfigError("keycel: @require on an app without the Keycel extension (Keycel(app, engine))")
    return ext.engine


def decision_response(decision: Decision) -> Response:
    """The answer to a denied decision: its status, headers and the JSON body from core."""
    return Response(decision.body_json(), status=decision.status, headers=decision.headers, mimetype="application/json")


def not_found(engine: Optional[Engine] = None) -> Response:
    """A 404 for a missing resource, byte-identical to an out-of-scope account's."""
    return Response((engine or _engine()).not_found_body(), status=404, mimetype="application/json")


def current_decision() -> Decision:
    """The allowed decision of the current request (inside a ``@require`` view)."""
    decision = g.get("keycel")
    if not isinstance(decision, Decision):
        raise KeycelConfigError("keycel: no decision on this request (the view lacks @require)")
    return decision


def _account(kwargs: Dict[str, Any], account: AccountArg, view: str) -> Optional[str]:
    if account is None:
        return None
    if callable(account):
        return account(kwargs)
    if account not in kwargs:
        raise KeycelConfigError(f"keycel: view {view} takes the account from URL variable {account!r}, which its route lacks")
    return str(kwargs[account])


def require(action: str, *, account: AccountArg = None) -> Callable[[_View], _View]:
    """View decorator: authorizes ``action`` (on the account in URL variable ``account``, or
    returned by a callable taking the view's kwargs); the decision is ``g.keycel``."""

    def decorate(view: _View) -> _View:
        name = getattr(view, "__qualname__", repr(view))

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            engine = _engine()
            decision = engine.authorize(
                request.headers,
                action,
                account=_account(kwargs, account, name),
                method=request.method,
                path=request.path,
                ip=request.remote_addr,
            )
            if not decision.allowed:
                return decision_response(decision)
            g.keycel = decision
            try:
                response = current_app.make_response(view(*args, **kwargs))
            except BaseException:
                decision.release()
                raise
            response.call_on_close(decision.release)
            return response

        return cast(_View, wrapper)

    return decorate
