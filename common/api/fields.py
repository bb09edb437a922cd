"""Serializer fields stricter than DRF's, so a request body means what the schema says it means."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """Text, and only text: DRF's CharField turns 123 into "123" and 1.5 into "1.5", so a serial sent as a
    number (its leading zeros already lost by the sender's JSON encoder) would be stored as another serial.
    The schema says ``type: string``; a number is a 400 naming the field."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class RejectUnknownFieldsMixin:
    """Unknown or read-only fields are an error, not silently ignored: a client trying to set
    ``compliance_status`` must learn that it cannot. The schema says so (``additionalProperties: false``,
    common.api.openapi)."""

    def validate(self, attrs: dict) -> dict:
        unknown = sorted(set(getattr(self, "initial_data", {}) or {}) - set(self.fields))  # type: ignore[attr-defined]
        if unknown:
            raise serializers.ValidationError({field: [gettext("This field cannot be set here.")] for field in unknown})
        return super().validate(attrs)  # type: ignore[misc]
