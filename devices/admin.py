"""Admin of devices and their history, scoped to the user's organisations and cheap on big tables.

Device, CheckIn and StatusChange grow with the fleet (a million devices, a check-in each per day):
their changelists never count the whole table (:class:`fleet.scoping.LargeTableMixin`), follow an
index in their default ordering, and search by exact identifiers that an index answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import models
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from devices.admin_imports import import_urls
from devices.choices import BatteryEventKind
from devices.dashboard import PATCH_AGE_BUCKETS
from devices.exports import CHECK_INS, DEVICES, STATUS_CHANGES, ExportAdminMixin
from devices.models import BatteryEvent, CheckIn, ComplianceSnapshot, Device, DeviceTally, StatusChange, Waiver
from devices.selectors import battery_health_trend, device_timeline
from devices.services import (
    battery_reading_record,
    battery_replace,
    devices_battery_replace,
    devices_retire,
    devices_waive,
    waiver_grant,
    waiver_revoke,
)
from fleet.scoping import (
    LargeTableMixin,
    OrganisationScopedAdmin,
    RecordsAdmin,
    ScopedRelatedFieldListFilter,
    adopt_saved_instance,
    is_superuser,
)
from updates import compliance
from updates.models import OSBuild

# How much history the device page shows; the rest is one click away, filtered by device.
RECENT_HISTORY = 20

_COMPLIANCE_FIELDS = (
    "compliance_status",
    "status_since",
    "behind_since",
    "latest_build",
    "builds_behind",
    "battery_status",
    "is_waived",
)
_REPORTED_FIELDS = (
    "current_build",
    "reported_build_number",
    "android_version",
    "security_patch_level",
    "last_check_in_at",
    "battery_level_pct",
    "battery_health_pct",
    "battery_cycle_count",
)
_HISTORY_FIELDS = ("recent_check_ins", "recent_battery_events", "recent_status_changes")


def _when(value: Any) -> str:
    if value is None:
        return "-"
    if hasattr(value, "tzinfo"):
        value = timezone.localtime(value)
    return formats.localize(value)


def _history_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, more_url: str, more_label: str
) -> SafeString:
    rows = list(rows)
    link = format_html('<p><a href="{}">{}</a></p>', more_url, more_label)
    if not rows:
        return format_html("<p>{}</p>{}", gettext("None yet."), link)
    head = format_html_join("", "<th>{}</th>", ((capfirst(header),) for header in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}", head, body, link)


def _changelist_of_device(model: type[models.Model], device: Device) -> str:
    opts = model._meta
    return f"{reverse(f'admin:{opts.app_label}_{opts.model_name}_changelist')}?device__id__exact={device.pk}"


def _device_filtered(request: HttpRequest) -> bool:
    return "device__id__exact" in request.GET


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


class BatteryReplacementForm(forms.Form):
    occurred_on = forms.DateField(label=_("replaced on"), widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(label=_("reason"), max_length=255, required=False)
    performed_by = forms.CharField(label=_("performed by"), max_length=200, required=False)

    def clean_occurred_on(self) -> dt.date:
        day = self.cleaned_data["occurred_on"]
        if day > timezone.now().date():
            raise forms.ValidationError(gettext("A replacement cannot be in the future."))
        return day

    def occurred_at(self) -> dt.datetime:
        return dt.datetime.combine(self.cleaned_data["occurred_on"], dt.time(12), tzinfo=dt.UTC)


class WaiverForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=255)
    expires_on = forms.DateField(label=_("expires on"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean_expires_on(self) -> dt.date:
        day = self.cleaned_data["expires_on"]
        if day <= timezone.now().date():
            raise forms.ValidationError(gettext("A waiver must expire after today."))
        return day

    def expires_at(self) -> dt.datetime:
        return dt.datetime.combine(self.cleaned_data["expires_on"], dt.time(), tzinfo=dt.UTC)


class PatchAgeFilter(admin.SimpleListFilter):
    """Security patch age buckets, as the dashboard shows them (days since the reported patch level)."""

    title = _("patch age")
    parameter_name = "patch_age"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        buckets = [(label, gettext("%(days)s days") % {"days": label}) for label, _lower, _upper in PATCH_AGE_BUCKETS]
        return [*buckets, ("unknown", gettext("unknown"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "unknown":
            return queryset.filter(security_patch_level__isnull=True)
        for label, lower, upper in PATCH_AGE_BUCKETS:
            if value == label:
                today = timezone.now().date()
                if upper is not None:
                    queryset = queryset.filter(security_patch_level__gte=today - dt.timedelta(days=upper))
                if lower is not None:
                    queryset = queryset.filter(security_patch_level__lt=today - dt.timedelta(days=lower))
                return queryset
        return queryset


class LastSeenFilter(admin.SimpleListFilter):
    """Time since the last check-in, in the buckets a manager asks about."""

    title = _("last seen")
    parameter_name = "last_seen"
    BUCKETS = (("1d", 0, 1), ("7d", 1, 7), ("30d", 7, 30), ("older", 30, None))

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("1d", gettext("in the last 24 hours")),
            ("7d", gettext("1 to 7 days ago")),
            ("30d", gettext("7 to 30 days ago")),
            ("older", gettext("more than 30 days ago")),
            ("never", gettext("never")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "never":
            return queryset.filter(last_check_in_at__isnull=True)
        now = timezone.now()
        for value, newer, older in self.BUCKETS:
            if self.value() == value:
                queryset = queryset.filter(last_check_in_at__lte=now - dt.timedelta(days=newer))
                if older is not None:
                    queryset = queryset.filter(last_check_in_at__gt=now - dt.timedelta(days=older))
                return queryset
        return queryset


class EndOfSupportFilter(admin.SimpleListFilter):
    """Whether the device's model still gets security updates, and for how long."""

    title = _("model end of support")
    parameter_name = "end_of_support"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("ended", gettext("ended")),
            ("6m", gettext("within 6 months")),
            ("12m", gettext("within 12 months")),
            ("later", gettext("later or not announced")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        today = timezone.now().date()
        value = self.value()
        if value == "ended":
            return queryset.filter(model__security_support_until__lt=today)
        if value in {"6m", "12m"}:
            horizon = today + dt.timedelta(days=183 if value == "6m" else 365)
            return queryset.filter(model__security_support_until__gte=today, model__security_support_until__lte=horizon)
        if value == "later":
            horizon = today + dt.timedelta(days=365)
            return queryset.filter(
                Q(model__security_support_until__gt=horizon) | Q(model__security_support_until__isnull=True)
            )
        return queryset


class BuildFilter(admin.SimpleListFilter):
    """Devices running one build number (``?build=<number>``; linked from the catalogue, no sidebar list:
    a catalogue has thousands of builds)."""

    title = _("build")
    parameter_name = "build"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value)] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(reported_build_number=self.value()) if self.value() else queryset


@admin.register(Device)
class DeviceAdmin(ExportAdminMixin, LargeTableMixin, OrganisationScopedAdmin):
    export_table = DEVICES
    list_display = (
        "serial",
        "organisation",
        "fleet",
        "model",
        "compliance_status",
        "battery_status",
        "current_build",
        "last_check_in_at",
    )
    list_select_related = ("organisation", "fleet", "model__manufacturer", "current_build")
    list_filter = (
        "compliance_status",
        "battery_status",
        PatchAgeFilter,
        LastSeenFilter,
        EndOfSupportFilter,
        BuildFilter,
        "is_waived",
        "channel",
        ("fleet", ScopedRelatedFieldListFilter),
        ("model", ScopedRelatedFieldListFilter),
        ("organisation", ScopedRelatedFieldListFilter),
    )
    # The unique (organisation, serial) index: a page is an index range scan, never a sort of the table.
    # By id, not by "organisation", which would sort on the organisation's name through a join.
    ordering = ("organisation_id", "serial")
    # Columns whose ordering an index (or, within one organisation, a short sort) can serve.
    sortable_by = ("serial", "compliance_status", "last_check_in_at")
    # Used only to enable the search box and autocomplete; get_search_results() does the searching.
    search_fields = ("serial", "imei", "asset_tag", "assignee")
    search_help_text = _("Exact serial number, IMEI or asset tag; otherwise part of the assignee's name.")
    autocomplete_fields = ("organisation", "fleet", "model")
    readonly_fields = (*_COMPLIANCE_FIELDS, *_REPORTED_FIELDS, *_HISTORY_FIELDS)
    actions = (
        "export_csv",
        "export_xlsx",
        "record_battery_replacement",
        "grant_waiver",
        "recompute_compliance",
        "retire",
    )
    change_list_template = "admin/devices/device/change_list.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "organisation",
                    "fleet",
                    "serial",
                    "imei",
                    "asset_tag",
                    "assignee",
                    "model",
                    "channel",
                    "enrolled_at",
                    "retired_at",
                    "battery_installed_on",
                )
            },
        ),
        (_("Compliance (computed by FleetPatch)"), {"fields": _COMPLIANCE_FIELDS}),
        (_("Last report"), {"fields": _REPORTED_FIELDS}),
        (_("History"), {"fields": _HISTORY_FIELDS}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Device | None = None) -> Any:
        # A device being added has no compliance, report or history yet.
        return self.fieldsets if obj is not None else self.fieldsets[:1]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Device], search_term: str
    ) -> tuple[QuerySet[Device], bool]:
        """Exact identifiers first, then the assignee.

        ``=serial`` and ``^asset_tag`` would be ``UPPER(col) = UPPER(...)`` / ``UPPER(col) LIKE``,
        which no plain index answers on PostgreSQL; exact comparisons use the (organisation,
        serial), IMEI and asset tag indexes. The assignee has no index, and one unindexed branch in
        the OR would make the database scan for every search, so it is only searched (a scan of
        the user's organisations) when no device has the term as an identifier.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        identifiers = Q(serial__in={term, term.upper()}) | Q(asset_tag=term)
        digits = term.replace(" ", "").replace("-", "")
        if digits.isdigit():
            identifiers |= Q(imei=digits)
        matches = queryset.filter(identifiers)
        if matches.exists():
            return matches, False
        return queryset.filter(assignee__icontains=term), False

    def get_urls(self) -> list:
        urls = super().get_urls()
        timeline = path(
            "<path:object_id>/timeline/",
            self.admin_site.admin_view(self.timeline_view),
            name="devices_device_timeline",
        )
        # Imports (upload, preview, confirm, result) before the catch-all "<path:object_id>/" URLs.
        return [*import_urls(self), timeline, *urls]

    def _action_form(
        self,
        request: HttpRequest,
        queryset: QuerySet[Device],
        form: forms.Form,
        *,
        action: str,
        title: str,
        submit: str,
    ) -> TemplateResponse:
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        return TemplateResponse(
            request,
            "admin/devices/device/action_form.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "form": form,
                "action": action,
                "submit_label": submit,
                "selected": selected,
                "select_across": request.POST.get("select_across") == "1",
                "count": queryset.count(),
            },
        )

    def _writable_selection(self, request: HttpRequest, queryset: QuerySet[Device]) -> QuerySet[Device]:
        # A manager of A who is only a viewer of B acts on A's devices of the selection only.
        return queryset if is_superuser(request) else self.scope_queryset(request, queryset, manage=True)

    @admin.action(description=_("Record a battery replacement"), permissions=["change"])
    def record_battery_replacement(self, request: HttpRequest, queryset: QuerySet[Device]) -> TemplateResponse | None:
        form = BatteryReplacementForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_form(
                request,
                queryset,
                form,
                action="record_battery_replacement",
                title=gettext("Record a battery replacement"),
                submit=gettext("Record"),
            )
        count = devices_battery_replace(
            devices=self._writable_selection(request, queryset),
            occurred_at=form.occurred_at(),
            reason=form.cleaned_data["reason"],
            performed_by=form.cleaned_data["performed_by"],
            recorded_by=request.user,
        )
        self.message_user(
            request,
            ngettext(
                "Battery replacement recorded for %(count)d device.",
                "Battery replacement recorded for %(count)d devices.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
        return None

    @admin.action(description=_("Grant a waiver"), permissions=["change"])
    def grant_waiver(self, request: HttpRequest, queryset: QuerySet[Device]) -> TemplateResponse | None:
        form = WaiverForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_form(
                request, queryset, form, action="grant_waiver", title=gettext("Grant a waiver"), submit=gettext("Grant")
            )
        count = devices_waive(
            devices=self._writable_selection(request, queryset),
            reason=form.cleaned_data["reason"],
            expires_at=form.expires_at(),
            granted_by=request.user,
        )
        self.message_user(
            request,
            ngettext("Waiver granted to %(count)d device.", "Waiver granted to %(count)d devices.", count)
            % {"count": count},
            messages.SUCCESS,
        )
        return None

    @admin.action(description=_("Recompute compliance now"), permissions=["change"])
    def recompute_compliance(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        result = compliance.recompute(devices=self._writable_selection(request, queryset), reason="admin action")
        self.message_user(
            request,
            gettext("%(updated)d devices updated, %(transitions)d changed status.")
            % {"updated": result.updated, "transitions": result.transitions_total},
            messages.SUCCESS,
        )

    @admin.action(description=_("Retire selected devices"), permissions=["change"])
    def retire(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        count = devices_retire(devices=self._writable_selection(request, queryset))
        self.message_user(
            request,
            ngettext("%(count)d device retired.", "%(count)d devices retired.", count) % {"count": count},
            messages.SUCCESS,
        )

    def timeline_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The device's whole history on one page, newest first, ``?before=`` for older pages."""
        device = self.get_object(request, object_id)
        if device is None or not self.has_view_permission(request, device):
            raise Http404(gettext("No device with this id."))
        try:
            before = parse_datetime(request.GET.get("before", ""))
        except ValueError:  # well-formed but impossible, e.g. February 30th
            before = None
        page = device_timeline(device=device, before=before)
        trend = battery_health_trend(device=device)
        today = timezone.now().date()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Timeline of %(device)s") % {"device": device},
            "device": device,
            "page": page,
            "older_url": f"?{urlencode({'before': page.older_than.isoformat()})}" if page.older_than else "",
            "patch_age_days": device.patch_age_days(today),
            "days_behind": (today - device.behind_since).days if device.behind_since else None,
            "battery_points": " ".join(
                f"{i * 300 / max(len(trend) - 1, 1):.1f},{60 - health * 0.6:.1f}"
                for i, (_at, health) in enumerate(trend)
            ),
            "battery_trend": trend,
        }
        return TemplateResponse(request, "admin/devices/device/timeline.html", context)

    def save_model(self, request: HttpRequest, obj: Device, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Model, channel or fleet (its policy) can move the status: recompute this device now.
        compliance.recompute(device_ids=[obj.pk], reason="edited in the admin")

    @admin.display(description=_("recent check-ins"))
    def recent_check_ins(self, obj: Device) -> SafeString:
        # (device, reported_at, source) is unique, so its index serves "newest of this device".
        check_ins = obj.check_ins.order_by("-reported_at")[:RECENT_HISTORY]
        return _history_table(
            [
                gettext("reported at"),
                gettext("source"),
                gettext("build number"),
                gettext("security patch level"),
                gettext("battery level (%)"),
                gettext("battery health (%)"),
            ],
            (
                (
                    _when(c.reported_at),
                    c.get_source_display(),
                    c.build_number or "-",
                    _when(c.security_patch_level),
                    "-" if c.battery_level_pct is None else c.battery_level_pct,
                    "-" if c.battery_health_pct is None else c.battery_health_pct,
                )
                for c in check_ins
            ),
            more_url=_changelist_of_device(CheckIn, obj),
            more_label=gettext("All check-ins of this device"),
        )

    @admin.display(description=_("recent battery events"))
    def recent_battery_events(self, obj: Device) -> SafeString:
        events = obj.battery_events.order_by("-occurred_at")[:RECENT_HISTORY]
        return _history_table(
            [gettext("when"), gettext("kind"), gettext("part serial number"), gettext("health (%)"), gettext("reason")],
            (
                (
                    _when(e.occurred_at),
                    e.get_kind_display(),
                    e.part_serial or "-",
                    "-" if e.health_pct is None else e.health_pct,
                    e.reason or "-",
                )
                for e in events
            ),
            more_url=_changelist_of_device(BatteryEvent, obj),
            more_label=gettext("All battery events of this device"),
        )

    @admin.display(description=_("recent status changes"))
    def recent_status_changes(self, obj: Device) -> SafeString:
        changes = obj.status_changes.order_by("-changed_at")[:RECENT_HISTORY]
        return _history_table(
            [gettext("changed at"), gettext("from"), gettext("to"), gettext("reason")],
            (
                (_when(s.changed_at), s.get_from_status_display(), s.get_to_status_display(), s.reason or "-")
                for s in changes
            ),
            more_url=_changelist_of_device(StatusChange, obj),
            more_label=gettext("All status changes of this device"),
        )


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
        return ("-reported_at",) if _device_filtered(request) else self.ordering

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
        return ("-occurred_at",) if _device_filtered(request) else self.ordering

    def save_model(self, request: HttpRequest, obj: BatteryEvent, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        if change:
            super().save_model(request, obj, form, change)
            return
        if obj.kind == BatteryEventKind.READING:
            # A reading updates the device's battery health (and so its battery status): the service does it.
            event = battery_reading_record(
                device=obj.device,
                occurred_at=obj.occurred_at,
                health_pct=obj.health_pct,
                part_serial=obj.part_serial,
                reason=obj.reason,
                performed_by=obj.performed_by,
                recorded_by=request.user,
            )
            adopt_saved_instance(obj, event)
            return
        # A replacement resets the device's battery age, health and cycles: the service does all of it.
        event = battery_replace(
            device=obj.device,
            occurred_at=obj.occurred_at,
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
            super().save_model(request, obj, form, change)
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
        covered = list(queryset.values_list("device_id", "fleet_id"))
        super().delete_queryset(request, queryset)
        # The devices these covered may no longer be waived.
        device_ids = [device_id for device_id, _fleet in covered if device_id]
        if device_ids:
            compliance.recompute(device_ids=device_ids, reason="waiver deleted")
        for fleet_id in sorted({fleet_id for _device, fleet_id in covered if fleet_id}):
            compliance.recompute(fleet_id=fleet_id, reason="waiver deleted")

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
