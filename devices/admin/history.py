"""The history FleetPatch keeps of each device (check-ins, status changes, battery events), waivers, and the
dashboard's aggregates: append-only records, scoped to the user's organisations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from devices.admin.devices import device_filtered
from devices.choices import BatteryEventKind
from devices.exports import CHECK_INS, STATUS_CHANGES, ExportAdminMixin
from devices.models import (
    BatteryEvent,
    CheckIn,
    ComplianceSnapshot,
    Device,
    DeviceSourceId,
    DeviceTally,
    StatusChange,
    Waiver,
)
from devices.services import (
    battery_event_record,
    battery_event_update,
    waiver_grant,
    waiver_revoke,
    waiver_update,
    waivers_delete,
)
from fleet.scoping import (
    LargeTableMixin,
    OrganisationScopedAdmin,
    RecordsAdmin,
    ScopedRelatedFieldListFilter,
    adopt_saved_instance,
    is_superuser,
)
from updates.models import OSBuild


class ReadOnlyHistoryAdmin(RecordsAdmin):
    """Append-only history: nobody adds or edits it here; only a superuser may delete (e.g. bad imports)."""

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        # Resolve the serial to ids first: "device_id IN (...)" follows the (device, time) index,
        # where a join filtered on the serial would scan the history.
        device_ids = list(
            self.admin_site._registry[Device]
            .scope_queryset(request, Device.objects.filter(serial__in={term, term.upper()}))
            .values_list("pk", flat=True)
        )
        return queryset.filter(self.search_condition(term, device_ids)), False

    def search_condition(self, term: str, device_ids: list[int]) -> Q:
        return Q(device_id__in=device_ids)


@admin.register(CheckIn)
class CheckInAdmin(ExportAdminMixin, LargeTableMixin, ReadOnlyHistoryAdmin):
    export_table = CHECK_INS
    organisation_path = "device__organisation"
    list_display = (
        "reported_at",
        "device",
        "source",
        "build_number",
        "android_version",
        "security_patch_level",
        "battery_level_pct",
        "battery_health_pct",
        "received_at",
    )
    list_select_related = ("device",)
    list_filter = ("source", ("device__fleet", ScopedRelatedFieldListFilter))
    search_fields = ("build_number", "device__serial")
    search_help_text = _("Exact build number or device serial number.")
    # Newest received first by primary key: the table has no index on reported_at alone.
    ordering = ("-id",)
    sortable_by = ()

    def get_ordering(self, request: HttpRequest) -> Sequence[str]:
        # One device's timeline follows the (device, reported_at, source) unique index.
        return ("-reported_at",) if device_filtered(request) else self.ordering

    def search_condition(self, term: str, device_ids: list[int]) -> Q:
        # A catalogue build number resolves to build ids, answered by the (build, reported_at) index;
        # only a number absent from the catalogue falls back to comparing the reported text.
        build_ids = list(OSBuild.objects.filter(build_number=term).values_list("pk", flat=True))
        if not build_ids and not device_ids:
            return Q(build_number=term)
        return Q(device_id__in=device_ids) | Q(build_id__in=build_ids)


@admin.register(StatusChange)
class StatusChangeAdmin(ExportAdminMixin, LargeTableMixin, ReadOnlyHistoryAdmin):
    export_table = STATUS_CHANGES
    # Denormalised on the row, so scoping needs no join to the device.
    organisation_path = "organisation"
    list_display = ("changed_at", "device", "organisation", "from_status", "to_status", "reason")
    list_select_related = ("device", "organisation")
    list_filter = ("to_status", "from_status", ("organisation", ScopedRelatedFieldListFilter))
    search_fields = ("device__serial",)
    search_help_text = _("Exact device serial number.")
    # The (organisation, changed_at) index serves an organisation's newest changes.
    ordering = ("-changed_at",)
    sortable_by = ()


@admin.register(DeviceSourceId)
class DeviceSourceIdAdmin(ReadOnlyHistoryAdmin):
    """The MDMs' ids of devices, written by check-ins (devices.checkins.identity); also on each device's page."""

    organisation_path = "organisation"
    list_display = ("external_id", "source", "device", "first_seen_at")
    list_select_related = ("device",)
    list_filter = ("source",)
    search_fields = ("external_id", "device__serial")
    search_help_text = _("Exact id in the MDM or device serial number.")
    ordering = ("-id",)
    sortable_by = ()

    def search_condition(self, term: str, device_ids: list[int]) -> Q:
        # (organisation, source, external_id) is unique: the user's organisations narrow it to an index range.
        return Q(device_id__in=device_ids) | Q(external_id=term)


class BatteryEventForm(forms.ModelForm):
    class Meta:
        model = BatteryEvent
        fields = ("device", "kind", "occurred_at", "part_serial", "health_pct", "reason", "performed_by")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("kind") == BatteryEventKind.REPLACEMENT and cleaned.get("health_pct") is not None:
            self.add_error("health_pct", gettext("Record the new battery's health as a separate reading."))
        return cleaned


@admin.register(BatteryEvent)
class BatteryEventAdmin(OrganisationScopedAdmin):
    organisation_path = "device__organisation"
    form = BatteryEventForm
    list_display = ("occurred_at", "device", "kind", "part_serial", "health_pct", "performed_by", "recorded_by")
    list_select_related = ("device", "recorded_by")
    list_filter = ("kind",)
    search_fields = ("device__serial", "part_serial")
    autocomplete_fields = ("device",)
    ordering = ("-occurred_at", "-id")

    def get_readonly_fields(self, request: HttpRequest, obj: BatteryEvent | None = None) -> tuple[str, ...]:
        # What happened to which device is history; a typo in the details may still be corrected.
        return (
            ("recorded_by", "created_at")
            if obj is None
            else ("device", "kind", "occurred_at", "recorded_by", "created_at")
        )

    def get_ordering(self, request: HttpRequest) -> Sequence[str]:
        return ("-occurred_at",) if device_filtered(request) else self.ordering

    def save_model(self, request: HttpRequest, obj: BatteryEvent, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        if change:
            changes = {field: getattr(obj, field) for field in form.changed_data}
            adopt_saved_instance(obj, battery_event_update(event=obj, **changes))
            return
        # A replacement resets the device's battery age, health and cycles; a reading updates its health.
        event = battery_event_record(
            device=obj.device,
            kind=obj.kind,
            occurred_at=obj.occurred_at,
            health_pct=obj.health_pct,
            part_serial=obj.part_serial,
            reason=obj.reason,
            performed_by=obj.performed_by,
            recorded_by=request.user,
        )
        adopt_saved_instance(obj, event)


@admin.register(Waiver)
class WaiverAdmin(OrganisationScopedAdmin):
    list_display = ("__str__", "organisation", "reason", "granted_by", "granted_at", "expires_at", "revoked_at")
    list_select_related = ("organisation", "device", "fleet", "granted_by")
    list_filter = (("organisation", ScopedRelatedFieldListFilter), ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("reason", "device__serial", "fleet__name")
    autocomplete_fields = ("organisation", "device", "fleet")
    ordering = ("-granted_at", "-id")
    actions = ("revoke_selected",)

    def get_fields(self, request: HttpRequest, obj: Waiver | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("organisation", "device", "fleet", "reason", "expires_at")
        return ("organisation", "device", "fleet", "reason", "granted_by", "granted_at", "expires_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Waiver | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # What a waiver covers and for how long decides alerts: changing it is a new waiver, and
        # ending it early is the revoke action (both keep the record).
        return ("organisation", "device", "fleet", "granted_by", "granted_at", "expires_at", "revoked_at")

    # Revoking keeps the record; deleting is for a superuser cleaning up a mistake.
    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)

    def save_model(self, request: HttpRequest, obj: Waiver, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        if change:
            adopt_saved_instance(obj, waiver_update(waiver=obj, reason=obj.reason))
            return
        waiver = waiver_grant(
            organisation=obj.organisation,
            reason=obj.reason,
            expires_at=obj.expires_at,
            device=obj.device,
            fleet=obj.fleet,
            granted_by=request.user,
        )
        adopt_saved_instance(obj, waiver)

    def delete_model(self, request: HttpRequest, obj: Waiver) -> None:
        self.delete_queryset(request, Waiver.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Waiver]) -> None:
        waivers_delete(waivers=queryset)

    @admin.action(description=_("Revoke selected waivers"), permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Waiver]) -> None:
        revoked = 0
        for waiver in self.scope_queryset(request, queryset, manage=True).filter(revoked_at__isnull=True):
            waiver_revoke(waiver=waiver)
            revoked += 1
        self.message_user(
            request,
            ngettext("%(count)d waiver revoked.", "%(count)d waivers revoked.", revoked) % {"count": revoked},
            messages.SUCCESS,
        )


@admin.register(ComplianceSnapshot)
class ComplianceSnapshotAdmin(RecordsAdmin):
    """The sweep's daily counts behind the dashboard's trend: read-only, kept for the record."""

    list_display = ("day", "organisation", "status", "count")
    list_filter = ("status", ("organisation", ScopedRelatedFieldListFilter))
    list_select_related = ("organisation",)
    date_hierarchy = "day"
    ordering = ("-day", "organisation_id", "status")


@admin.register(DeviceTally)
class DeviceTallyAdmin(ComplianceSnapshotAdmin):
    """The sweep's counts behind the dashboard: read-only, rewritten by every sweep."""

    list_display = ("organisation", "model", "compliance_status", "battery_status", "patch_bucket", "count")
    list_filter = ("compliance_status", "battery_status", ("organisation", ScopedRelatedFieldListFilter))
    list_select_related = ("organisation", "model")
    date_hierarchy = None
    ordering = ("organisation_id", "-count")
