"""Observed builds: what an organisation's devices run that the catalogue lacks, promoted or revoked in one action."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.formats import date_format
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from devices.choices import ObservedBuildState
from devices.models import Device, ObservedBuild
from devices.services import observed_build_promote, observed_build_revoke
from fleet.scoping import OrganisationScopedAdmin, ScopedRelatedFieldListFilter, is_superuser

_FIELDS = (
    "organisation",
    "model",
    "build_number",
    "android_version",
    "security_patch_level",
    "first_seen_at",
    "last_seen_at",
    "device_count",
    "state",
    "promoted_build",
    "changed_at",
)


@admin.register(ObservedBuild)
class ObservedBuildAdmin(OrganisationScopedAdmin):
    list_display = (
        "build_number",
        "model",
        "organisation",
        "android_version",
        "security_patch_level",
        "first_seen_at",
        "last_seen_at",
        "device_count",
        "state",
    )
    list_filter = ("state", ("organisation", ScopedRelatedFieldListFilter), ("model", ScopedRelatedFieldListFilter))
    list_select_related = ("organisation", "model__manufacturer")
    search_fields = ("^build_number", "model__name")
    ordering = ("-last_seen_at", "-id")
    fields = _FIELDS
    readonly_fields = _FIELDS
    actions = ("promote_selected", "revoke_selected")

    # The ingest records them; promoting and revoking are the actions; deleting is an operator's clean-up.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)

    def save_model(self, request: HttpRequest, obj: ObservedBuild, form: forms.ModelForm, change: bool) -> None:
        """Every field is read-only: saving the page changes nothing (the actions do)."""

    def _confirm(self, request: HttpRequest, rows: list[ObservedBuild], **context: Any) -> TemplateResponse:
        return TemplateResponse(
            request,
            "admin/devices/observedbuild/confirm_action.html",
            {**self.admin_site.each_context(request), "opts": self.opts, "queryset": rows, **context},
        )

    def _running(self, observed: ObservedBuild) -> int:
        return Device.objects.filter(
            organisation_id=observed.organisation_id,
            model_id=observed.model_id,
            reported_build_number=observed.build_number,
            current_build__isnull=True,
            retired_at__isnull=True,
        ).count()

    def _selected(self, request: HttpRequest, queryset: models.QuerySet[ObservedBuild]) -> list[ObservedBuild]:
        rows = self.scope_queryset(request, queryset, manage=True).filter(state=ObservedBuildState.OBSERVED)
        return list(rows.select_related("organisation", "model__manufacturer").order_by("pk"))

    @admin.action(description=_("Promote to the catalogue (the organisation's private build)"), permissions=["change"])
    def promote_selected(
        self, request: HttpRequest, queryset: models.QuerySet[ObservedBuild]
    ) -> TemplateResponse | None:
        """Shows what each promotion creates and re-evaluates, then promotes."""
        rows = self._selected(request, queryset)
        if "confirm" not in request.POST:
            consequences = [
                gettext(
                    "%(build)s becomes a private build of %(model)s for %(organisation)s, released %(released)s, "
                    "patch level %(patch)s; its %(running)d devices are linked to it and the model's devices "
                    "re-evaluated."
                )
                % {
                    "build": row.build_number,
                    "model": row.model,
                    "organisation": row.organisation,
                    "released": date_format(row.first_seen_at, "SHORT_DATE_FORMAT"),
                    "patch": row.security_patch_level or gettext("none reported (cannot be promoted)"),
                    "running": self._running(row),
                }
                for row in rows
            ]
            return self._confirm(
                request,
                rows,
                title=gettext("Promote observed builds"),
                question=gettext("Add these builds to the catalogue?"),
                consequences=consequences or [gettext("None of the selected builds can be promoted by you.")],
                action="promote_selected",
                confirm_label=gettext("Yes, promote"),
            )
        promoted = 0
        for row in rows:
            try:
                observed_build_promote(observed=row)
            except ValidationError as error:
                self.message_user(request, f"{row.build_number}: {'; '.join(error.messages)}", messages.ERROR)
                continue
            promoted += 1
        if promoted:
            self.message_user(
                request,
                ngettext("%(count)d build promoted.", "%(count)d builds promoted.", promoted) % {"count": promoted},
                messages.SUCCESS,
            )
        return None

    @admin.action(description=_("Revoke: never a target"), permissions=["change"])
    def revoke_selected(
        self, request: HttpRequest, queryset: models.QuerySet[ObservedBuild]
    ) -> TemplateResponse | None:
        """Shows how many devices each revocation concerns, then revokes."""
        rows = self._selected(request, queryset)
        if "confirm" not in request.POST:
            consequences = [
                gettext(
                    "%(build)s of %(model)s is never a target again; its %(running)d devices are judged by their "
                    "patch level alone."
                )
                % {"build": row.build_number, "model": row.model, "running": self._running(row)}
                for row in rows
            ]
            return self._confirm(
                request,
                rows,
                title=gettext("Revoke observed builds"),
                question=gettext("Revoke these observed builds?"),
                consequences=consequences or [gettext("None of the selected builds can be revoked by you.")],
                action="revoke_selected",
                confirm_label=gettext("Yes, revoke"),
            )
        for row in rows:
            observed_build_revoke(observed=row)
        self.message_user(
            request,
            ngettext("%(count)d build revoked.", "%(count)d builds revoked.", len(rows)) % {"count": len(rows)},
            messages.SUCCESS,
        )
        return None
