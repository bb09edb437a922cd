"""The device pages of the admin: the list with its filters and bulk actions, the device page, its timeline."""

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

from common.forms import EdgeFormMixin
from devices.admin.filters import BuildFilter, EndOfSupportFilter, LastSeenFilter, PatchAgeFilter
from devices.admin.imports import import_urls
from devices.compliance import engine as compliance
from devices.exports import DEVICES, ExportAdminMixin
from devices.models import BatteryEvent, CheckIn, Device, StatusChange
from devices.selectors import battery_health_trend, device_timeline
from devices.services import (
    ADMIN_FIELDS,
    device_enrol,
    device_update,
    devices_battery_replace,
    devices_retire,
    devices_waive,
)
from fleet.scoping import (
    LargeTableMixin,
    OrganisationScopedAdmin,
    ScopedRelatedFieldListFilter,
    adopt_saved_instance,
    is_superuser,
)

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
    "reported_model",
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
# A contradiction a report brought (devices.checkins.identity): the text may be cleared once resolved.
_IDENTITY_FIELDS = ("identity_conflict", "identity_conflict_at", "mdm_ids")


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


def device_filtered(request: HttpRequest) -> bool:
    return "device__id__exact" in request.GET


class BatteryReplacementForm(EdgeFormMixin, forms.Form):
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


class WaiverForm(EdgeFormMixin, forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=255)
    expires_on = forms.DateField(label=_("expires on"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean_expires_on(self) -> dt.date:
        day = self.cleaned_data["expires_on"]
        if day <= timezone.now().date():
            raise forms.ValidationError(gettext("A waiver must expire after today."))
        return day

    def expires_at(self) -> dt.datetime:
        return dt.datetime.combine(self.cleaned_data["expires_on"], dt.time(), tzinfo=dt.UTC)


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
    # The management state is what the MDM says (Android Management API LOST, DISABLED): shown, never edited.
    readonly_fields = (
        *_COMPLIANCE_FIELDS,
        *_REPORTED_FIELDS,
        *_HISTORY_FIELDS,
        "management_state",
        "management_state_since",
        "identity_conflict_at",
        "mdm_ids",
    )
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
                    "management_state",
                    "management_state_since",
                    "battery_installed_on",
                )
            },
        ),
        (_("Identity"), {"fields": _IDENTITY_FIELDS}),
        (_("Compliance (computed by FleetPatch)"), {"fields": _COMPLIANCE_FIELDS}),
        (_("Last report"), {"fields": _REPORTED_FIELDS}),
        (_("History"), {"fields": _HISTORY_FIELDS}),
    )

    @admin.display(description=_("ids in MDMs"))
    def mdm_ids(self, obj: Device) -> str:
        """The MDMs' own ids of the device (Headwind deviceId, AMAPI name), by which reports find it."""
        ids = [
            f"{source}: {external_id}" for source, external_id in obj.source_ids.values_list("source", "external_id")
        ]
        return ", ".join(ids) or "-"

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
        self.check_may_write(request, obj)
        edited = {field: getattr(obj, field) for field in form.changed_data if field in ADMIN_FIELDS}
        if not change:
            device = device_enrol(
                organisation=obj.organisation,
                serial=obj.serial,
                imei=obj.imei,
                asset_tag=obj.asset_tag,
                assignee=obj.assignee,
                model=obj.model,
                fleet=obj.fleet,
                channel=obj.channel,
            )
            edited = {field: getattr(obj, field) for field in ("enrolled_at", "retired_at", "battery_installed_on")}
            adopt_saved_instance(obj, device)
        # Model, channel, fleet (its policy), dates: the service re-evaluates the device when they move it.
        device = device_update(device=obj, allowed=ADMIN_FIELDS, reason="edited in the admin", **edited)
        adopt_saved_instance(obj, device)

    @admin.display(description=_("recent check-ins"))
    def recent_check_ins(self, obj: Device) -> SafeString:
        # (device, reported_at, source) is unique, so its index serves "newest of this device".
        # Not the raw payload: it is not shown, and is up to RAW_MAX_BYTES a row.
        check_ins = obj.check_ins.defer("raw").order_by("-reported_at")[:RECENT_HISTORY]
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
