"""Example Django service protected by keycel: plain views with ``@require``, or the same
routes with Django REST Framework (``KEYCEL_EXAMPLE_VIEWS=drf``). One file: settings, views, URLs.

    KEYCEL_DB=keys.db gunicorn --chdir examples django_example:application        # WSGI
    KEYCEL_DB=keys.db uvicorn --app-dir examples django_example:asgi_application  # ASGI

Routes (the HTTP contract of tests/http_cases/):
    GET  /health                                   public
    GET  /v1/accounts/<account_id>/data            api.read on that account
    GET  /v1/accounts/<account_id>/missing         404, the same body as an out-of-scope account
    GET  /v1/accounts/<account_id>/stream?chunks=N&ms=M   streams N lines, M ms apart (lease held)
    GET  /v1/accounts/<account_id>/boom            the view raises (lease released, 500)
    POST /admin/accounts                           admin.account.create
    GET  /_inflight/<key_id>                       leases in flight (for the tests)

Environment: KEYCEL_DB (SQLite store; default an empty in-memory store), KEYCEL_POLICY,
KEYCEL_EXAMPLE_VIEWS (`django`, the default, or `drf`).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, AsyncIterator, Iterator

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="keycel-example-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
    MIDDLEWARE=["keycel.django.KeycelMiddleware"],
    KEYCEL_ENGINE=f"{__name__}.build_engine",
    REST_FRAMEWORK={"UNAUTHENTICATED_USER": None},
    DATABASES={},
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup()

from django.core.handlers.asgi import ASGIRequest  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

import keycel  # noqa: E402
from keycel.django import get_engine, not_found, require  # noqa: E402
from keycel.django.drf import HasScope, KeycelAuthentication, decision  # noqa: E402


def build_engine() -> keycel.Engine:
    db = os.environ.get("KEYCEL_DB")
    store: Any = keycel.SqliteStore(db) if db else keycel.MemoryStore()
    return keycel.Engine(os.environ.get("KEYCEL_POLICY"), store=store)


def lines(chunks: str | None, ms: str | None) -> Iterator[bytes]:
    for i in range(min(int(chunks or 3), 100)):
        if i:
            time.sleep(min(int(ms or 0), 5000) / 1000)
        yield f"chunk {i}\n".encode()


async def alines(chunks: str | None, ms: str | None) -> AsyncIterator[bytes]:
    for i in range(min(int(chunks or 3), 100)):
        if i:
            await asyncio.sleep(min(int(ms or 0), 5000) / 1000)
        yield f"chunk {i}\n".encode()


def streaming(request: HttpRequest) -> StreamingHttpResponse:
    # Under ASGI Django streams async iterators as they go (a sync one is read whole first).
    chunks, ms = request.GET.get("chunks"), request.GET.get("ms")
    content = alines(chunks, ms) if isinstance(request, ASGIRequest) else lines(chunks, ms)
    return StreamingHttpResponse(content, content_type="text/plain")


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def in_flight(request: HttpRequest, key_id: str) -> JsonResponse:
    return JsonResponse({"in_flight": get_engine().in_flight(key_id)})


# Plain Django views: the decorator authorizes, request.auth is the allowed Decision.
@require("api.read", account="account_id")
async def data(request: HttpRequest, account_id: str) -> JsonResponse:  # async views work too
    return JsonResponse({"account": account_id, "key_id": getattr(request, "auth").key_id})


@require("api.read", account="account_id")
def missing(request: HttpRequest, account_id: str) -> HttpResponse:
    return not_found()


@require("api.read", account="account_id")
def stream(request: HttpRequest, account_id: str) -> StreamingHttpResponse:
    return streaming(request)


@require("api.read", account="account_id")
def boom(request: HttpRequest, account_id: str) -> HttpResponse:
    raise RuntimeError("the handler failed")


@csrf_exempt
@require("admin.account.create")
def create_account(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"created": True, "key_id": getattr(request, "auth").key_id})


# The same routes with Django REST Framework.
class Read(APIView):
    authentication_classes = [KeycelAuthentication]
    permission_classes = [HasScope("api.read", account="account_id")]


class DrfData(Read):
    def get(self, request: Request, account_id: str) -> Response:
        return Response({"account": account_id, "key_id": decision(request).key_id})


class DrfMissing(Read):
    def get(self, request: Request, account_id: str) -> HttpResponse:
        return not_found()


class DrfStream(Read):
    def get(self, request: Request, account_id: str) -> StreamingHttpResponse:
        return streaming(request._request)


class DrfBoom(Read):
    def get(self, request: Request, account_id: str) -> Response:
        raise RuntimeError("the handler failed")


class DrfCreateAccount(APIView):
    authentication_classes = [KeycelAuthentication]
    permission_classes = [HasScope("admin.account.create")]

    def post(self, request: Request) -> Response:
        return Response({"created": True, "key_id": decision(request).key_id})


def routes(drf: bool) -> list[Any]:
    return [
        path("health", health),
        path("_inflight/<str:key_id>", in_flight),
        path("v1/accounts/<str:account_id>/data", DrfData.as_view() if drf else data),
        path("v1/accounts/<str:account_id>/missing", DrfMissing.as_view() if drf else missing),
        path("v1/accounts/<str:account_id>/stream", DrfStream.as_view() if drf else stream),
        path("v1/accounts/<str:account_id>/boom", DrfBoom.as_view() if drf else boom),
        path("admin/accounts", DrfCreateAccount.as_view() if drf else create_account),
    ]


urlpatterns = routes(os.environ.get("KEYCEL_EXAMPLE_VIEWS") == "drf")

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
asgi_application = get_asgi_application()
