"""Django integration: a middleware that holds each request's lease until the response is
closed, a view decorator, and Django REST Framework classes (:mod:`keycel.django.drf`).

    # settings.py
    KEYCEL_ENGINE = "myproject.auth.engine"     # dotted path to a keycel.Engine (or a factory)
    MIDDLEWARE = [..., "keycel.django.KeycelMiddleware"]

    # views.py
    from keycel.django import require

    @require("api.read", account="account_id")   # account: the URL kwarg of that name
    def data(request, account_id):
        return JsonResponse({"key_id": request.auth.key_id})   # request.auth: the Decision

The engine decides; a denial is answered with the decision's status, headers and JSON body
(``Decision.body_json()``), never a body built here. An allowed decision's lease is released
when the server closes the response (after the last byte of a streaming body), or at once
when the view raises. Configuration mistakes fail closed with ``ImproperlyConfigured`` (a
500): no ``KEYCEL_ENGINE``, the middleware missing, an account kwarg the route lacks.
"""

from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, TypeVar, Union, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.module_loading import import_string

from .._keycel import Decision, Engine

__all__ = [
    "KeycelDenied",
    "KeycelMiddleware",
    "authorize",
    "authorize_async",
    "decision_response",
    "get_engine",
    "not_found",
    "require",
]

#: Attribute of the HttpRequest holding ``{(action, account): Decision}`` for this request;
#: set by the middleware, whose presence it proves.
_DECIDED = "_keycel_decided"

AccountArg = Union[None, str, Callable[[HttpRequest, Dict[str, Any]], Optional[str]]]
_View = TypeVar("_View", bound=Callable[..., Any])


class KeycelDenied(Exception):
    """A denial raised where no response can be returned (DRF authentication and permission
    classes); :class:`KeycelMiddleware` answers it with the decision's status, headers, body."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"keycel denied the request ({decision.status})")
        self.decision = decision


_engine_cache: Dict[str, Engine] = {}


def get_engine() -> Engine:
    """The engine named by ``settings.KEYCEL_ENGINE`` (an Engine, or a factory returning one)."""
    path = getattr(settings, "KEYCEL_ENGINE", None)
    if not isinstance(path, str) or not path:
        raise ImproperlyConfigured("keycel: set KEYCEL_ENGINE to the dotted path of a keycel.Engine")
    engine = _engine_cache.get(path)
    if engine is None:
        try:
            found = import_string(path)
        except ImportError as e:
            raise ImproperlyConfigured(f"keycel: KEYCEL_ENGINE {path!r} cannot be imported: {e}") from e
        engine = found() if callable(found) and not isinstance(found, Engine) else found
        if not isinstance(engine, Engine):
            raise ImproperlyConfigured(f"keycel: KEYCEL_ENGINE {path!r} is not a keycel.Engine")
        _engine_cache[path] = engine
    return engine


def decision_response(decision: Decision) -> HttpResponse:
    """The answer to a denied decision: its status, headers and the JSON body from core."""
    response = HttpResponse(decision.body_json(), status=decision.status, content_type="application/json")
    for name, value in decision.headers.items():
        response[name] = value
    return response


def not_found(engine: Optional[Engine] = None) -> HttpResponse:
    """A 404 for a missing resource, byte-identical to an out-of-scope account's."""
    body = (engine or get_engine()).not_found_body()
    return HttpResponse(body, status=404, content_type="application/json")


def _decided(request: HttpRequest) -> Dict[Tuple[str, Optional[str]], Decision]:
    decided = getattr(request, _DECIDED, None)
    if decided is None:
        raise ImproperlyConfigured("keycel: add 'keycel.django.KeycelMiddleware' to MIDDLEWARE (it holds the leases)")
    return cast(Dict[Tuple[str, Optional[str]], Decision], decided)


def _peer(request: HttpRequest) -> Dict[str, Any]:
    """What the engine learns of the request besides its headers: method, path and the socket
    peer (core charges failed authentications to it: 429 past its budget)."""
    ip = request.META.get("REMOTE_ADDR") or None
    return {"method": request.method, "path": request.path, "ip": ip, "client_ip": ip}


def authorize(request: HttpRequest, action: str, *, account: Optional[str] = None) -> Decision:
    """Authorizes ``action`` (on ``account``) for this request, once per request and pair:
    an allowed decision's lease is held until the response closes."""
    decided = _decided(request)
    decision = decided.get((action, account))
    if decision is None:
        decision = get_engine().authorize(request.headers, action, account=account, **_peer(request))
        decided[(action, account)] = decision
    return decision


async def authorize_async(request: HttpRequest, action: str, *, account: Optional[str] = None) -> Decision:
    """:func:`authorize` for async views, through :meth:`keycel.Engine.authorize_async`:
    argon2 and store I/O never run on the event loop, and a full argon2 pool answers core's
    503 at once."""
    decided = _decided(request)
    decision = decided.get((action, account))
    if decision is None:
        decision = await get_engine().authorize_async(request.headers, action, account=account, **_peer(request))
        decided[(action, account)] = decision
    return decision


def _account(request: HttpRequest, kwargs: Dict[str, Any], account: AccountArg, view: str) -> Optional[str]:
    if account is None:
        return None
    if callable(account):
        return account(request, kwargs)
    if account not in kwargs:
        raise ImproperlyConfigured(f"keycel: view {view} takes the account from URL kwarg {account!r}, which its route lacks")
    return str(kwargs[account])


def require(action: str, *, account: AccountArg = None) -> Callable[[_View], _View]:
    """View decorator: authorizes ``action`` (on the account in URL kwarg ``account``, or
    returned by a callable ``(request, kwargs) -> str | None``); the view sees the allowed
    decision as ``request.auth``. Works on sync and async views."""

    def decorate(view: _View) -> _View:
        name = getattr(view, "__qualname__", repr(view))
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                decision = await authorize_async(request, action, account=_account(request, kwargs, account, name))
                if not decision.allowed:
                    return decision_response(decision)
                setattr(request, "auth", decision)
                return await view(request, *args, **kwargs)

            return cast(_View, async_view)

        @functools.wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            decision = authorize(request, action, account=_account(request, kwargs, account, name))
            if not decision.allowed:
                return decision_response(decision)
            setattr(request, "auth", decision)
            return view(request, *args, **kwargs)

        return cast(_View, sync_view)

    return decorate


def _hold(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """Releases the request's leases when the server closes the response (after the last byte)."""
    # Django calls each of the response's resource closers from ``close()`` (WSGI servers
    # call it after the last byte; the ASGI handler after sending), as FileResponse does.
    closers: List[Callable[[], object]] = getattr(response, "_resource_closers")
    for decision in getattr(request, _DECIDED, {}).values():
        if decision.allowed:
            closers.append(decision.release)
    return response


def _release(request: HttpRequest) -> None:
    for decision in getattr(request, _DECIDED, {}).values():
        decision.release()


class KeycelMiddleware:
    """Holds the leases of the request's decisions for the response's whole life and answers
    :class:`KeycelDenied` with the decision. Sync and async (WSGI and ASGI)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        get_engine()  # a missing or broken KEYCEL_ENGINE fails at start-up, not per request
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        setattr(request, _DECIDED, {})
        try:
            response = self.get_response(request)
        except BaseException:
            _release(request)
            raise
        return _hold(request, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        setattr(request, _DECIDED, {})
        try:
            response = await cast(Callable[[HttpRequest], Awaitable[HttpResponseBase]], self.get_response)(request)
        except BaseException:  # also a cancelled task (client gone before the response)
            _release(request)
            raise
        return _hold(request, response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> Optional[HttpResponse]:
        if isinstance(exception, KeycelDenied):
            return decision_response(exception.decision)
        return None
