"""Scopes: each API view says which scope each HTTP method needs; the client's token must carry it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext
from rest_framework.permissions import SAFE_METHODS, BasePermission

from fleet.choices import Scope
from fleet.models import ApiClient

if TYPE_CHECKING:  # importing rest_framework.views here would be circular while settings load
    from rest_framework.request import Request
    from rest_framework.views import APIView


def required_scope(request: Request, view: APIView) -> str | None:
    """``view.required_scopes`` maps methods (or actions) to scopes; reads default to ``read``.

    None for a method the view does not offer: DRF then answers 405, rather than a scope error.
    """
    if not hasattr(view, request.method.lower()):
        return None
    scopes: dict[str, str] = getattr(view, "required_scopes", {})
    action = getattr(view, "action", None)
    if action == "metadata":
        # OPTIONS: DRF's metadata asks, with a copy of the request, what a POST or PUT would be allowed to
        # do; the scope is that of the action the copied method routes to.
        action = getattr(view, "action_map", {}).get(request.method.lower(), action)
    if action and action in scopes:
        return scopes[action]
    if request.method in scopes:
        return scopes[request.method]
    if request.method in SAFE_METHODS:
        return Scope.READ
    raise AssertionError(f"{type(view).__name__} declares no scope for {request.method}")


class HasScope(BasePermission):
    """Allows an ApiClient whose scopes include the one this request needs."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return False
        scope = required_scope(request, view)
        if scope is None:
            return True  # the view has no handler for this method: 405 follows
        if scope not in client.scopes:
            self.message = gettext("This token lacks the '%(scope)s' scope.") % {"scope": scope}
            return False
        return True


def client_has_scope(request: Request, scope: str) -> bool:
    client = request.auth
    return isinstance(client, ApiClient) and scope in client.scopes
