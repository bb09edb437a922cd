"""Serializer fields for what comes from outside: text and dates as FleetPatch stores them (issue #15).

Every serializer that validates input declares its text with :class:`TextField` and its dates with
:class:`BoundedDateField` / :class:`BoundedDateTimeField` (``tests/common/api/test_fields.py`` reads them
all): a control character is a field error, and so is a date outside :mod:`common.dates`' range.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
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
