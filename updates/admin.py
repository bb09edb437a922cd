"""Admin of the software catalogue: global manufacturers and models, public and private OS builds."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from fleet.scoping import (
    CatalogueAdmin,
    OrganisationScopedAdmin,
    ScopedRelatedFieldListFilter,
    adopt_saved_instance,
    is_superuser,
)
from updates.models import BuildPin, DeviceModel, Manufacturer, OSBuild
from updates.services import build_pin, build_publish, build_revoke, build_unpin, enqueue_model_recompute


@admin.register(Manufacturer)
class ManufacturerAdmin(CatalogueAdmin):
    list_display = ("name", "slug")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("name",)


@admin.register(DeviceModel)
class DeviceModelAdmin(CatalogueAdmin):
    list_display = ("name", "manufacturer", "launched_on", "security_support_until", "os_support_until")
    list_filter = ("manufacturer",)
    list_select_related = ("manufacturer",)
    search_fields = ("name", "slug", "manufacturer__name")
    autocomplete_fields = ("manufacturer",)
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("manufacturer__name", "name")

    def save_model(self, request: HttpRequest, obj: DeviceModel, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # End of support moves devices to "unsupported" (or back): re-evaluate this model's devices.
        if change and {"security_support_until", "os_support_until"} & set(form.changed_data):
            enqueue_model_recompute(model_id=obj.pk, reason="support dates changed")


@admin.register(OSBuild)
class OSBuildAdmin(OrganisationScopedAdmin):
    public_without_organisation = True
    list_display = (
        "build_number",
        "model",
        "channel",
        "android_version",
        "security_patch_level",
        "released_at",
        "organisation",
        "is_revoked",
    )
    list_filter = (
        "channel",
        "is_revoked",
        ("model", ScopedRelatedFieldListFilter),
        ("organisation", ScopedRelatedFieldListFilter),
    )
    list_select_related = ("model__manufacturer", "organisation")
    # The catalogue holds thousands of builds, not millions: a prefix search is cheap enough.
    search_fields = ("^build_number", "model__name")
    autocomplete_fields = ("model", "organisation")
    readonly_fields = ("is_revoked", "revoked_at")
    ordering = ("-released_at", "-id")
    actions = ("revoke_selected",)

    def get_form(self, request: HttpRequest, obj: OSBuild | None = None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change, **kwargs)
        if not is_superuser(request) and "organisation" in form.base_fields:
            form.base_fields["organisation"].help_text = gettext(
                "Your organisation's private build. Public builds are published by the operators."
            )
        return form

    def save_model(self, request: HttpRequest, obj: OSBuild, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        if change:
            super().save_model(request, obj, form, change)
            for model_id in {obj.model_id, form.initial.get("model")} - {None}:
                enqueue_model_recompute(model_id=model_id, reason=f"build {obj.build_number} changed")
            return
        build = build_publish(
            model=obj.model,
            build_number=obj.build_number,
            security_patch_level=obj.security_patch_level,
            released_at=obj.released_at,
            android_version=obj.android_version,
            channel=obj.channel,
            organisation=obj.organisation,
        )
        if obj.notes:
            build.notes = obj.notes
            build.save(update_fields=["notes"])
        adopt_saved_instance(obj, build)

    @admin.action(description=_("Revoke selected builds"), permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: models.QuerySet[OSBuild]) -> None:
        writable = queryset if is_superuser(request) else self.scope_queryset(request, queryset, manage=True)
        if not is_superuser(request):
            writable = writable.filter(organisation__isnull=False)  # public builds are the operators'
        revoked = 0
        for build in writable.filter(is_revoked=False):
            build_revoke(build=build)
            revoked += 1
        self.message_user(
            request,
            ngettext("%(count)d build revoked.", "%(count)d builds revoked.", revoked) % {"count": revoked},
            messages.SUCCESS,
        )


@admin.register(BuildPin)
class BuildPinAdmin(OrganisationScopedAdmin):
    list_display = ("model", "build", "organisation", "pinned_at", "pinned_by", "note")
    list_select_related = ("model__manufacturer", "build", "organisation", "pinned_by")
    list_filter = (("organisation", ScopedRelatedFieldListFilter),)
    search_fields = ("build__build_number", "model__name", "note")
    autocomplete_fields = ("organisation", "build")
    ordering = ("organisation__name", "model__name")

    def get_fields(self, request: HttpRequest, obj: BuildPin | None = None) -> tuple[str, ...]:
        if obj is None:
            # The model follows from the build; pinning a model already pinned replaces its pin.
            return ("organisation", "build", "note")
        return ("organisation", "model", "build", "pinned_at", "pinned_by", "note")

    def get_readonly_fields(self, request: HttpRequest, obj: BuildPin | None = None) -> tuple[str, ...]:
        # Pinning another build is a new pin (it replaces this one), so its grace period restarts.
        return () if obj is None else ("organisation", "model", "build", "pinned_at", "pinned_by")

    def save_model(self, request: HttpRequest, obj: BuildPin, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        if change:
            super().save_model(request, obj, form, change)
            return
        pin = build_pin(organisation=obj.organisation, build=obj.build, pinned_by=request.user, note=obj.note)
        adopt_saved_instance(obj, pin)

    def delete_model(self, request: HttpRequest, obj: BuildPin) -> None:
        build_unpin(organisation=obj.organisation, model=obj.model)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[BuildPin]) -> None:
        for pin in queryset.select_related("organisation", "model"):
            build_unpin(organisation=pin.organisation, model=pin.model)
