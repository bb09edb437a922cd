"""Serializer fields for what comes from outside: text and dates as FleetPatch stores them (issue #15).

Every serializer that validates input declares its text with :class:`TextField` (FleetPatch's own formats:
:class:`StrictCharField`, which also refuses numbers) and its dates with :class:`BoundedDateField` /
:class:`BoundedDateTimeField` (``tests/common/api/test_fields.py`` reads them all): a control character is a
field error, and so is a date outside :mod:`common.dates`' range. Stricter than DRF's, so that a request body
means what the schema says it means.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from common.dates import validate_date_range
from common.text import clean_text


class TextField(serializers.CharField):
    """DRF's CharField (surrounding spaces trimmed, NUL refused), with FleetPatch's one text rule
    (:func:`common.text.clean_text`): returns become newlines; other control characters, noncharacters
    and lone surrogates are a field error naming the character and its position."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            return clean_text(value)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages, code="forbidden_character") from None


class StrictCharField(TextField):
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


class BoundedDateField(serializers.DateField):
    """A date within :mod:`common.dates`' range (2000-01-01 to 2099-12-31); fields narrow it further."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(validate_date_range)


class BoundedDateTimeField(serializers.DateTimeField):
    """A date and time within :mod:`common.dates`' range; fields narrow it further (not in the future)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(validate_date_range)


class AwareDateTimeField(BoundedDateTimeField):
    """An ISO 8601 datetime that must carry its UTC offset: a naive time is ambiguous across a fleet."""

    default_error_messages = {"naive": _("Give the UTC offset (e.g. 2024-01-05T10:00:00Z or +01:00).")}

    def to_internal_value(self, value: Any) -> dt.datetime:
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value)
            except ValueError:
                parsed = None
            if parsed is not None and timezone.is_naive(parsed):
                self.fail("naive")
        return super().to_internal_value(value)
