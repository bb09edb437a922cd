"""What every API view shares (the client's organisation, the audit log of writes), and the fleets resource."""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponseBase
from django.utils.translation import gettext
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import viewsets
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.request import Request

from common.db_router import replica_reads
from fleet.api.filters import FleetFilterSet
from fleet.api.serializers import FleetSerializer
from fleet.models import ApiClient, Fleet

audit_log = logging.getLogger("fleetpatch.api.audit")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Describes ``fleet.api.authentication.BearerTokenAuthentication`` in the OpenAPI schema."""

    target_class = "fleet.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": gettext("An API client's token: `Authorization: Bearer <token>` (see create_api_client)."),
        }


def audit_write(request: Request, response: HttpResponseBase) -> None:
    """One line per API write: who (client id and token prefix, never the token), what, and the outcome."""
    if request.method in SAFE_METHODS:
        return
    # Read what authentication already found: touching request.auth would authenticate again.
    client = getattr(request, "_auth", None)
    if isinstance(client, ApiClient):
        who = f"client={client.pk} prefix={client.token_prefix} organisation={client.organisation_id}"
    else:
        who = "client=- prefix=-"
    audit_log.info("%s method=%s path=%s status=%s", who, request.method, request.path, response.status_code)


class ApiViewMixin:
    """Mixed into every API view: scoping helpers and the audit log of writes."""

    request: Request
    # Ids only in URLs: "/devices/abc/" is an unknown URL (JSON 404), never a lookup that cannot parse.
    lookup_value_regex = "[0-9]+"

    @property
    def organisation_id(self) -> int:
        return self.request.auth.organisation_id

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # DRF checks permissions before it finds the handler, and HasScope has no scope for a method the
        # view does not offer (DELETE, PUT): answer 405 first, as a view without that method would.
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)
        # Lists may be served by the read replica (common.db_router); authentication, above, stays on the
        # primary so a revoked token is refused at once.
        if getattr(self, "action", None) == "list":
            self._replica_reads = replica_reads()
            self._replica_reads.__enter__()

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        replica = self.__dict__.pop("_replica_reads", None)
        if replica is not None:
            replica.__exit__(None, None, None)
        response = super().finalize_response(request, response, *args, **kwargs)
        audit_write(request, response)
        return response


class FleetViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    """The client's organisation's fleets."""

    serializer_class = FleetSerializer
    filterset_class = FleetFilterSet
    ordering_fields = ("id", "slug")
    queryset = Fleet.objects.none()  # for the schema; get_queryset scopes every request

    def get_queryset(self) -> QuerySet[Fleet]:
        return Fleet.objects.filter(organisation_id=self.organisation_id).order_by()
