"""Filters every list endpoint shares: ids bounded like database ids, moments in UTC, strict booleans, and
one FilterSet base that refuses an empty value (``?serial=``) instead of reading it as "no filter"."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django import forms
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

EMPTY_VALUE_MESSAGE = _("Give a value, or leave the parameter out to not filter on it.")


class _NoEmptyValuesForm(forms.Form):
    """A filter given an empty value is an error naming the parameter: a client that sends ``?fleet=`` has lost
    the value it meant to send, and silently listing everything would hide that (the schema says so too:
    text filters have ``minLength: 1``, the others a type or a format an empty value does not match)."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in self.fields:
            values = self.data.getlist(name) if hasattr(self.data, "getlist") else [self.data.get(name)]
            if name in self.data and any(value in ("", None) for value in values):
                self.add_error(name, forms.ValidationError(EMPTY_VALUE_MESSAGE, code="empty"))
        return cleaned


class FilterSet(django_filters.FilterSet):
    """The base of every API FilterSet (see ``_NoEmptyValuesForm``)."""

    def get_form_class(self) -> type[forms.Form]:
        form_class = super().get_form_class()
        return type(f"{form_class.__name__}NoEmpty", (_NoEmptyValuesForm, form_class), {})


# The bounds are in the schema too: a client (or a fuzzer) reading it must not expect "0" to be accepted.
@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 2**63 - 1})
class IdFilter(django_filters.NumberFilter):
    """An id: a whole number (django-filter's NumberFilter would take decimals, NaN and 1e400)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Bounded like a database id: a 40-digit number is a 400 here, not an overflow in the database driver.
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class _UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 moment, converted to UTC: ISO 8601 (and Python) allow offsets up to ±23:59, PostgreSQL
    only up to ±15:59 — "…T10:00-17:20" reached the query as it was and failed there (a 500)."""

    def to_python(self, value: Any) -> dt.datetime | None:
        moment = super().to_python(value)
        if moment is None or timezone.is_naive(moment):
            return moment
        try:
            return moment.astimezone(dt.UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcIsoDateTimeField


class _StrictNullBooleanField(forms.NullBooleanField):
    """``true``/``false`` (or 1/0, yes/no); anything else is an error instead of "no filter"."""

    widget = forms.TextInput  # NullBooleanSelect would turn "maybe" into None before validation
    true_values = frozenset({"true", "1", "yes", "on"})
    false_values = frozenset({"false", "0", "no", "off"})

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in self.true_values:
            return True
        if text in self.false_values:
            return False
        raise forms.ValidationError(gettext("Use true or false."), code="invalid")

    def validate(self, value: Any) -> None:
        return None


class BoolFilter(django_filters.BooleanFilter):
    field_class = _StrictNullBooleanField
