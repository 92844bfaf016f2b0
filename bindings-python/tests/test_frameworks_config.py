"""Configuration mistakes in the Django, DRF and Flask integrations fail closed: the request
gets a 500 (or set-up raises), the view is never reached. In process (Django's test client,
Flask's); the HTTP behaviour itself is tested in real servers by test_frameworks.py."""

from __future__ import annotations

from typing import Any, List

import django
import pytest
from django.conf import settings

import keycel
from helpers import CHEAP, DEFAULT_POLICY

ENGINE = keycel.Engine(DEFAULT_POLICY, store=keycel.MemoryStore())
TOKEN = ENGINE.keyring(hash=CHEAP).create("cfg", role="reader", accounts="all").token
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
        MIDDLEWARE=["keycel.django.KeycelMiddleware"],
        KEYCEL_ENGINE=f"{__name__}.ENGINE",
        REST_FRAMEWORK={"UNAUTHENTICATED_USER": None},
        DATABASES={},
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import Client, RequestFactory, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from keycel.django import KeycelMiddleware, require  # noqa: E402
from keycel.django.drf import HasScope, KeycelAuthentication  # noqa: E402

reached: List[str] = []


@require("api.read", account="account_id")
def wrong_kwarg(request: HttpRequest, account: str) -> HttpResponse:
    reached.append("wrong_kwarg")
    return HttpResponse("reached")


@require("api.read", account="account")
def right(request: HttpRequest, account: str) -> HttpResponse:
    reached.append("right")
    return HttpResponse("reached")


class DrfWrongKwarg(APIView):
    authentication_classes = [KeycelAuthentication]
    permission_classes = [HasScope("api.read", account="account_id")]

    def get(self, request: Request, account: str) -> Response:
        reached.append("drf")
        return Response({"reached": True})


urlpatterns = [
    path("wrong/<str:account>", wrong_kwarg),
    path("right/<str:account>", right),
    path("drf/<str:account>", DrfWrongKwarg.as_view()),
]


@pytest.fixture(autouse=True)
def _clear() -> None:
    reached.clear()


def test_django_account_kwarg_the_route_lacks_fails_closed() -> None:
    r = Client(raise_request_exception=False).get("/wrong/acc_1", **AUTH)  # type: ignore[arg-type]
    assert r.status_code == 500 and reached == []
    ok = Client().get("/right/acc_1", **AUTH)  # type: ignore[arg-type]
    assert ok.status_code == 200 and reached == ["right"]
    assert ENGINE.in_flight(ok.wsgi_request.auth.key_id) == 0  # type: ignore[attr-defined]


def test_drf_account_kwarg_the_route_lacks_fails_closed() -> None:
    r = Client(raise_request_exception=False).get("/drf/acc_1", **AUTH)  # type: ignore[arg-type]
    assert r.status_code == 500 and reached == []


def test_django_view_without_the_middleware_fails_closed() -> None:
    request = RequestFactory().get("/right/acc_1", **AUTH)  # type: ignore[arg-type]
    with pytest.raises(ImproperlyConfigured, match="KeycelMiddleware"):
        right(request, account="acc_1")
    assert reached == []


def test_django_missing_or_wrong_engine_setting_fails_at_start_up() -> None:
    def get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    with override_settings(KEYCEL_ENGINE=None), pytest.raises(ImproperlyConfigured, match="KEYCEL_ENGINE"):
        KeycelMiddleware(get_response)
    with override_settings(KEYCEL_ENGINE="no.such.module.engine"), pytest.raises(ImproperlyConfigured, match="cannot be imported"):
        KeycelMiddleware(get_response)
    with override_settings(KEYCEL_ENGINE=f"{__name__}.TOKEN"), pytest.raises(ImproperlyConfigured, match="not a keycel.Engine"):
        KeycelMiddleware(get_response)


def _flask_app(with_extension: bool) -> Any:
    from flask import Flask

    from keycel.flask import Keycel
    from keycel.flask import require as frequire

    app = Flask("cfg")
    if with_extension:
        Keycel(app, ENGINE)

    @app.get("/wrong/<account>")
    @frequire("api.read", account="account_id")
    def wrong(account: str) -> str:
        reached.append("flask")
        return "reached"

    @app.get("/right/<account>")
    @frequire("api.read", account="account")
    def ok(account: str) -> str:
        reached.append("flask-right")
        return "reached"

    return app


def test_flask_account_variable_the_route_lacks_fails_closed() -> None:
    client = _flask_app(True).test_client()
    assert client.get("/wrong/acc_1", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 500
    assert reached == []
    assert client.get("/right/acc_1", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_flask_view_without_the_extension_fails_closed() -> None:
    client = _flask_app(False).test_client()
    assert client.get("/right/acc_1", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 500
    assert reached == []


def test_flask_extension_without_an_engine_fails_at_start_up() -> None:
    from flask import Flask

    from keycel.flask import Keycel, KeycelConfigError

    with pytest.raises(KeycelConfigError):
        Keycel(Flask("x"))
