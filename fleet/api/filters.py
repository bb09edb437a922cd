"""Filters of the fleets resource."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _

from common.api.filters import FilterSet
from fleet.models import Fleet


class FleetFilterSet(FilterSet):
    slug = django_filters.CharFilter(help_text=_("Exact slug."))
    name = django_filters.CharFilter(lookup_expr="icontains", help_text=_("Part of the name, any case."))

    class Meta:
        model = Fleet
        fields = ["slug", "name"]
