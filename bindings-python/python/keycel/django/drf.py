"""Django REST Framework: an authentication class and a ``HasScope`` permission.

    from keycel.django.drf import HasScope, KeycelAuthentication

    class AccountData(APIView):
        authentication_classes = [KeycelAuthentication]
        permission_classes = [HasScope("api.read", account="account_id")]   # URL kwarg

        def get(self, request, account_id):
            return Response({"key_id": request.auth.key_id})   # request.auth: the Decision
                                                               # (typed: keycel.django.drf.decision(request))

``KeycelAuthentication`` authorizes the action of the view's ``HasScope`` (one per view) and
sets ``request.user`` to a :class:`KeycelUser` and ``request.auth`` to the allowed Decision;
``HasScope`` alone does the same without touching ``request.user``. A denial raises
:class:`keycel.django.KeycelDenied`, which DRF passes on and ``KeycelMiddleware`` answers with
the decision's status, headers and body (so the middleware is required: without it, every
request fails closed with a 500). Leases are held until the response closes.
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Type

from django.core.exceptions import ImproperlyConfigured
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from .._keycel import Decision, KeyRecord
from . import KeycelDenied, authorize

__all__ = ["HasScope", "KeycelAuthentication", "KeycelUser", "ScopePermission", "decision"]


class KeycelUser:
    """``request.user`` for a request authenticated by a keycel key."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.key: Optional[KeyRecord] = decision.key
        self.pk = self.id = self.username = decision.key_id

    def __str__(self) -> str:
        return str(self.key_id)

    @property
    def key_id(self) -> Optional[str]:
        return self.decision.key_id


class ScopePermission(BasePermission):
    """The base of the permission classes :func:`HasScope` makes."""

    action: str = ""
    account: Optional[str] = None

    def decide(self, request: Request, view: APIView) -> Decision:
        """The decision for this request (made once per request and action/account)."""
        if not self.action:
            raise ImproperlyConfigured("keycel: use HasScope(action), not ScopePermission itself")
        account: Optional[str] = None
        if self.account is not None:
            kwargs = getattr(view, "kwargs", {}) or {}
            if self.account not in kwargs:
                raise ImproperlyConfigured(
                    f"keycel: {type(view).__qualname__} takes the account from URL kwarg {self.account!r}, which its route lacks"
                )
            account = str(kwargs[self.account])
        decision = authorize(request._request, self.action, account=account)
        if not decision.allowed:
            raise KeycelDenied(decision)
        return decision

    def has_permission(self, request: Request, view: APIView) -> bool:
        request.auth = self.decide(request, view)
        return True


def HasScope(action: str, *, account: Optional[str] = None) -> Type[ScopePermission]:  # noqa: N802 - reads as a class
    """A permission class allowing the request when the engine allows ``action`` for its key
    (on the account in the URL kwarg ``account``): ``permission_classes = [HasScope("api.read")]``."""
    name = f"HasScope({action!r}{'' if account is None else f', account={account!r}'})"
    return type(name, (ScopePermission,), {"action": action, "account": account})


def decision(request: Request) -> Decision:
    """The allowed decision of a request that passed ``HasScope`` (``request.auth``, typed)."""
    auth = request.auth
    if not isinstance(auth, Decision):
        raise ImproperlyConfigured("keycel: no keycel decision on this request (the view lacks HasScope)")
    return auth


class KeycelAuthentication(BaseAuthentication):
    """Authenticates with the decision of the view's ``HasScope`` permission."""

    def authenticate(self, request: Request) -> Optional[Tuple[KeycelUser, Decision]]:
        view = (request.parser_context or {}).get("view")
        if view is None:
            return None
        scopes: List[ScopePermission] = [p for p in view.get_permissions() if isinstance(p, ScopePermission)]
        if not scopes:
            return None  # nothing for keycel to decide on this view (e.g. a public one)
        if len(scopes) > 1:
            raise ImproperlyConfigured(f"keycel: {type(view).__qualname__} has more than one HasScope permission")
        decision = scopes[0].decide(request, view)
        return KeycelUser(decision), decision

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="keycel"'


