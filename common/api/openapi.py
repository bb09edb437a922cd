"""OpenAPI helpers: the error responses every operation can give, so clients see their shapes in the schema."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from common.api.fields import RejectUnknownFieldsMixin


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text=_("What went wrong, for a person to read."))


FIELD_ERRORS = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description=_(
        'Invalid input: a map of field name to a list of reasons, e.g. `{"imei": ["..."]}` (nested for list '
        'items), or `{"detail": "..."}` for malformed JSON.'
    ),
)


class FleetPatchAutoSchema(AutoSchema):
    """Adds the error responses every endpoint can give, so clients see their shapes in the schema, and says
    that no query parameter may be empty (``common.api.filters.FilterSet`` refuses ``?serial=`` with a 400)."""

    def _get_parameters(self) -> list[dict]:
        parameters = super()._get_parameters()
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if parameter["in"] != "query":
                continue
            if schema.get("type") == "string" and not ({"enum", "format", "pattern"} & set(schema)):
                schema.setdefault("minLength", 1)
        return parameters

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict:
        result = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, RejectUnknownFieldsMixin):
            result["additionalProperties"] = False
        return result

    def _map_serializer(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> dict:
        result = super()._map_serializer(serializer, direction, bypass_extensions)
        # Request alternatives that overlap (an object with optional fields only, and a Pub/Sub envelope the
        # same object could be) are anyOf: under oneOf, a body matching both would be invalid.
        if getattr(serializer, "alternatives_may_overlap", False) and "oneOf" in result:
            result["anyOf"] = result.pop("oneOf")
        return result

    def _unwrap_list_serializer(self, serializer: Any, direction: str) -> dict | None:
        # drf-spectacular drops a list's min_length/max_length inside a PolymorphicProxySerializer (the
        # ingestion bodies' "one report or a list"): without them, [] and 1,001 reports looked valid.
        result = super()._unwrap_list_serializer(serializer, direction)
        if result and isinstance(serializer, serializers.ListSerializer):
            if serializer.min_length is not None:
                result["minItems"] = serializer.min_length
            if serializer.max_length is not None:
                result["maxItems"] = serializer.max_length
        return result

    def _get_response_bodies(self, direction: str = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        writes = self.method not in ("GET", "HEAD", "OPTIONS")
        errors: dict[str, Any] = {
            "400": FIELD_ERRORS,
            "401": OpenApiResponse(
                ErrorSerializer, description=gettext("No token, or an invalid, revoked or expired one.")
            ),
            "403": OpenApiResponse(
                ErrorSerializer, description=gettext("The token lacks the scope this operation needs.")
            ),
            "404": OpenApiResponse(
                ErrorSerializer, description=gettext("Not found, or belongs to another organisation (never 403).")
            ),
            "429": OpenApiResponse(
                ErrorSerializer, description=gettext("Too many requests for this client (throttled).")
            ),
        }
        errors["503"] = OpenApiResponse(
            ErrorSerializer,
            description=gettext(
                "The database is unavailable for a moment (nothing was stored): retry after `Retry-After` seconds."
            ),
        )
        if writes:
            errors["413"] = OpenApiResponse(
                ErrorSerializer, description=gettext("The request body is over the size limit.")
            )
            errors["415"] = OpenApiResponse(
                ErrorSerializer, description=gettext("A body that is not JSON (Content-Type: application/json).")
            )
        for code, response in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses
