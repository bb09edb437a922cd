from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from fleet.models import Fleet


class FleetFilterSet(django_filters.FilterSet):
    slug = django_filters.CharFilter(help_text=_("Exact slug."))
    name = django_filters.CharFilter(lookup_expr="icontains", help_text=_("Part of the name, any case."))

    class Meta:
        model = Fleet
        fields = ["slug", "name"]


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(django_filters.NumberFilter):
    """An id: a whole number (django-filter's NumberFilter would take decimals, NaN and 1e400)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Bounded like a database id: a 40-digit number is a 400 here, not an overflow in the database driver.
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


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
