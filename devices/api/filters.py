from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from common.api.filters import BoolFilter, FilterSet, IdFilter, UtcDateTimeFilter
from devices.choices import BatteryEventKind, BatteryStatus, ComplianceStatus
from devices.models import BatteryEvent, Device
from updates.models import DeviceModel


class DeviceFilterSet(FilterSet):
    compliance_status = django_filters.MultipleChoiceFilter(
        choices=ComplianceStatus.choices, help_text=_("One or more statuses (repeat the parameter).")
    )
    model = django_filters.CharFilter(method="filter_model", help_text=_("Device model slug or name."))
    model_id = IdFilter(field_name="model_id", help_text=_("Device model id."))
    fleet = django_filters.CharFilter(field_name="fleet__slug", help_text=_("Fleet slug."))
    fleet_id = IdFilter(field_name="fleet_id", help_text=_("Fleet id."))
    current_build = django_filters.CharFilter(
        field_name="reported_build_number",
        help_text=_("Build number the device last reported (also when the catalogue does not know it)."),
    )
    patch_level_before = django_filters.DateFilter(
        field_name="security_patch_level", lookup_expr="lt", help_text=_("Security patch level older than this date.")
    )
    last_check_in_before = UtcDateTimeFilter(
        field_name="last_check_in_at", lookup_expr="lt", help_text=_("Last check-in before this moment.")
    )
    battery_status = django_filters.MultipleChoiceFilter(choices=BatteryStatus.choices)
    waived = BoolFilter(field_name="is_waived", help_text=_("Covered by an active waiver."))
    retired = BoolFilter(
        field_name="retired_at", lookup_expr="isnull", exclude=True, help_text=_("Retired devices (or not).")
    )
    serial = django_filters.CharFilter(help_text=_("Exact serial number."))
    imei = django_filters.CharFilter(help_text=_("Exact IMEI."))

    class Meta:
        model = Device
        fields = [
            "compliance_status",
            "model",
            "model_id",
            "fleet",
            "fleet_id",
            "current_build",
            "patch_level_before",
            "last_check_in_before",
            "battery_status",
            "waived",
            "retired",
            "serial",
            "imei",
        ]

    def filter_model(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # The catalogue's one rule for names; a name two makers share lists the devices of both.
        return queryset.filter(model_id__in=DeviceModel.objects.names().candidates(value))


class BatteryEventFilterSet(FilterSet):
    device_id = IdFilter(field_name="device_id", help_text=_("Device id."))
    serial = django_filters.CharFilter(field_name="device__serial", help_text=_("Device serial number."))
    kind = django_filters.ChoiceFilter(choices=BatteryEventKind.choices)
    occurred_after = UtcDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = UtcDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = BatteryEvent
        fields = ["device_id", "serial", "kind", "occurred_after", "occurred_before"]
