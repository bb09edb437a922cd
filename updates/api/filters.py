from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from common.api.filters import BoolFilter, FilterSet, IdFilter, UtcDateTimeFilter
from updates.choices import Channel
from updates.models import DeviceModel, OSBuild


class DeviceModelFilterSet(FilterSet):
    manufacturer = django_filters.CharFilter(field_name="manufacturer__slug", help_text=_("Manufacturer slug."))
    slug = django_filters.CharFilter(help_text=_("Model slug."))
    name = django_filters.CharFilter(lookup_expr="icontains", help_text=_("Part of the name, any case."))
    security_support_until_before = django_filters.DateFilter(
        field_name="security_support_until", lookup_expr="lt", help_text=_("Security support ends before this date.")
    )

    class Meta:
        model = DeviceModel
        fields = ["manufacturer", "slug", "name", "security_support_until_before"]


class BuildFilterSet(FilterSet):
    model = django_filters.CharFilter(method="filter_model", help_text=_("Device model slug or name."))
    model_id = IdFilter(field_name="model_id", help_text=_("Device model id."))
    build_number = django_filters.CharFilter(help_text=_("Exact build number."))
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    private = BoolFilter(
        field_name="organisation", lookup_expr="isnull", exclude=True, help_text=_("Only your private builds.")
    )
    revoked = BoolFilter(field_name="is_revoked", help_text=_("Revoked builds."))
    released_after = UtcDateTimeFilter(
        field_name="released_at", lookup_expr="gt", help_text=_("Released after this moment.")
    )

    class Meta:
        model = OSBuild
        fields = ["model", "model_id", "build_number", "channel", "private", "revoked", "released_after"]

    def filter_model(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # The catalogue's one rule for names; a name two makers share lists the devices of both.
        return queryset.filter(model_id__in=DeviceModel.objects.names().candidates(value))
