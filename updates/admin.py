"""Admin of the software catalogue: global manufacturers and models, public and private OS builds."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from common.forms import EdgeFormMixin
from fleet.models import Organisation
from fleet.scoping import (
    CatalogueAdmin,
    EdgeInlineMixin,
    OrganisationScopedAdmin,
    ScopedRelatedFieldListFilter,
    adopt_saved_instance,
    is_superuser,
)
from fleet.selectors import organisation_ids_for_request
from updates.models import BuildPin, DeviceModel, Manufacturer, ManufacturerAlias, ModelAlias, OSBuild
from updates.selectors import model_active_devices
from updates.services import (
    build_pin,
    build_pin_update,
    build_publish,
    build_revoke,
    build_unpin,
    build_update,
    manufacturer_alias_add,
    manufacturer_alias_remove,
    manufacturer_alias_update,
    manufacturer_save,
    model_alias_add,
    model_alias_remove,
    model_alias_update,
    model_save,
)


class CatalogueInline(EdgeInlineMixin, admin.TabularInline):
    """Names in the shared catalogue: every member may read them, only superusers write them."""

    extra = 1
    fields = ("name",)

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request) or bool(organisation_ids_for_request(request))

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)


class ManufacturerAliasInline(CatalogueInline):
    model = ManufacturerAlias
    verbose_name = _("other spelling")
    verbose_name_plural = _("other spellings (as MDMs report the manufacturer)")


class ModelAliasInline(CatalogueInline):
    model = ModelAlias
    verbose_name = _("other name")
    verbose_name_plural = _("other names (model codes, codenames, marketing names)")


@admin.register(Manufacturer)
class ManufacturerAdmin(CatalogueAdmin):
    list_display = ("name", "slug")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("name",)
    inlines = (ManufacturerAliasInline,)

    def save_model(self, request: HttpRequest, obj: Manufacturer, form: forms.ModelForm, change: bool) -> None:
        manufacturer_save(manufacturer=obj, changed=form.changed_data if change else ())

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        # Through the services: a new spelling links the devices that reported it.
        formset.save(commit=False)
        for alias in formset.deleted_objects:
            manufacturer_alias_remove(alias=alias)
        for alias, _fields in formset.changed_objects:
            manufacturer_alias_update(alias=alias, name=alias.name)
        for alias in formset.new_objects:
            manufacturer_alias_add(manufacturer=form.instance, name=alias.name)


@admin.register(DeviceModel)
class DeviceModelAdmin(CatalogueAdmin):
    list_display = ("name", "manufacturer", "launched_on", "security_support_until", "os_support_until")
    list_filter = ("manufacturer",)
    list_select_related = ("manufacturer",)
    search_fields = ("name", "slug", "manufacturer__name")
    autocomplete_fields = ("manufacturer",)
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("manufacturer__name", "name")
    inlines = (ModelAliasInline,)

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        # Through the services: a new name links the devices that reported it, and re-evaluates them.
        formset.save(commit=False)
        for alias in formset.deleted_objects:
            model_alias_remove(alias=alias)
        for alias, _fields in formset.changed_objects:
            model_alias_update(alias=alias, name=alias.name)
        for alias in formset.new_objects:
            model_alias_add(model=form.instance, name=alias.name)

    def save_model(self, request: HttpRequest, obj: DeviceModel, form: forms.ModelForm, change: bool) -> None:
        # End of support moves devices to "unsupported" (or back): the service re-evaluates them.
        model_save(model=obj, changed=form.changed_data if change else ())


@admin.register(ModelAlias)
class ModelAliasAdmin(CatalogueAdmin):
    """Every model's other names in one list, to find which model a code means."""

    list_display = ("name", "model")
    list_select_related = ("model__manufacturer",)
    search_fields = ("name", "model__name", "model__manufacturer__name")
    autocomplete_fields = ("model",)
    ordering = ("name",)
    show_full_result_count = False

    def save_model(self, request: HttpRequest, obj: ModelAlias, form: forms.ModelForm, change: bool) -> None:
        if change:
            model_alias_update(alias=obj, name=obj.name)
        else:
            model_alias_add(model=obj.model, name=obj.name)

    def delete_model(self, request: HttpRequest, obj: ModelAlias) -> None:
        model_alias_remove(alias=obj)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        for alias in queryset:
            model_alias_remove(alias=alias)


@admin.register(ManufacturerAlias)
class ManufacturerAliasAdmin(CatalogueAdmin):
    """Every manufacturer's other spellings in one list."""

    list_display = ("name", "manufacturer")
    list_select_related = ("manufacturer",)
    search_fields = ("name", "manufacturer__name")
    autocomplete_fields = ("manufacturer",)
    ordering = ("name",)

    def save_model(self, request: HttpRequest, obj: ManufacturerAlias, form: forms.ModelForm, change: bool) -> None:
        if change:
            manufacturer_alias_update(alias=obj, name=obj.name)
        else:
            manufacturer_alias_add(manufacturer=obj.manufacturer, name=obj.name)

    def delete_model(self, request: HttpRequest, obj: ManufacturerAlias) -> None:
        manufacturer_alias_remove(alias=obj)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        for alias in queryset:
            manufacturer_alias_remove(alias=alias)


class PublishBuildForm(forms.ModelForm):
    """The add form of a build: publishing first says what it changes, and asks to confirm."""

    confirm_publication = forms.BooleanField(
        label=_("Publish, with the consequences shown above"),
        required=False,
        help_text=_("Left unticked, saving only shows what publishing this build would change."),
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        model, released_at = cleaned.get("model"), cleaned.get("released_at")
        if self.errors or model is None or released_at is None or cleaned.get("confirm_publication"):
            return cleaned
        devices = model_active_devices(model, organisation=cleaned.get("organisation"))
        older = devices.filter(current_build__released_at__lt=released_at).count()
        raise forms.ValidationError(
            gettext(
                "Publishing %(build)s for %(model)s re-evaluates its %(devices)d devices: %(older)d run an older "
                "build and will have this one to install (update pending, then behind after the grace period). "
                "Tick the confirmation box and save again to publish."
            )
            % {"build": cleaned.get("build_number"), "model": model, "devices": devices.count(), "older": older}
        )


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
    actions = ("revoke_selected", "pin_selected")

    def get_form(self, request: HttpRequest, obj: OSBuild | None = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = PublishBuildForm
        form = super().get_form(request, obj, change, **kwargs)
        if not is_superuser(request) and "organisation" in form.base_fields:
            form.base_fields["organisation"].help_text = gettext(
                "Your organisation's private build. Public builds are published by the operators."
            )
        return form

    def save_model(self, request: HttpRequest, obj: OSBuild, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        if change:
            changes = {
                obj._meta.get_field(field).attname: getattr(obj, obj._meta.get_field(field).attname)
                for field in form.changed_data
            }
            build_update(build=obj, previous_model_id=form.initial.get("model"), **changes)
            return
        build = build_publish(
            model=obj.model,
            build_number=obj.build_number,
            security_patch_level=obj.security_patch_level,
            released_at=obj.released_at,
            android_version=obj.android_version,
            channel=obj.channel,
            organisation=obj.organisation,
            notes=obj.notes,
        )
        adopt_saved_instance(obj, build)

    def _writable(self, request: HttpRequest, queryset: models.QuerySet[OSBuild]) -> models.QuerySet[OSBuild]:
        if is_superuser(request):
            return queryset
        # Public builds are the operators'; members write their organisations' private builds.
        return self.scope_queryset(request, queryset, manage=True).filter(organisation__isnull=False)

    def _confirm(self, request: HttpRequest, queryset, **context: Any) -> TemplateResponse:
        return TemplateResponse(
            request,
            "admin/updates/confirm_action.html",
            {**self.admin_site.each_context(request), "opts": self.opts, "queryset": queryset, **context},
        )

    @admin.action(description=_("Revoke selected builds"), permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: models.QuerySet[OSBuild]) -> TemplateResponse | None:
        """Shows what revoking changes (devices running each build, devices re-evaluated), then revokes."""
        builds = list(self._writable(request, queryset).filter(is_revoked=False).select_related("model"))
        if "confirm" not in request.POST:
            consequences = [
                gettext(
                    "This revokes build %(build)s of %(model)s: %(running)d devices run it and must move off it; "
                    "%(evaluated)d devices of the model will be re-evaluated."
                )
                % {
                    "build": build.build_number,
                    "model": build.model,
                    "running": build.model.devices.filter(current_build=build).count(),
                    "evaluated": model_active_devices(build.model).count(),
                }
                for build in builds
            ]
            return self._confirm(
                request,
                builds,
                title=gettext("Revoke builds"),
                question=gettext("Revoke these builds? A revoked build is never a target again."),
                consequences=consequences or [gettext("None of the selected builds can be revoked by you.")],
                action="revoke_selected",
                confirm_label=gettext("Yes, revoke"),
            )
        for build in builds:
            build_revoke(build=build)
        self.message_user(
            request,
            ngettext("%(count)d build revoked.", "%(count)d builds revoked.", len(builds)) % {"count": len(builds)},
            messages.SUCCESS,
        )
        return None

    @admin.action(description=_("Pin the selected build for an organisation"), permissions=["view"])
    def pin_selected(self, request: HttpRequest, queryset: models.QuerySet[OSBuild]) -> TemplateResponse | None:
        """Shows how many of the organisation's devices the pin retargets, then pins (one build)."""
        if queryset.count() != 1:
            self.message_user(request, gettext("Select exactly one build to pin."), messages.WARNING)
            return None
        build = queryset.select_related("model").get()
        organisations = Organisation.objects.order_by("name")
        if not is_superuser(request):
            organisations = organisations.filter(pk__in=organisation_ids_for_request(request, manage=True))
        form = PinForm(request.POST if "confirm" in request.POST else None, organisations=organisations)
        if "confirm" in request.POST and form.is_valid():
            organisation = form.cleaned_data["organisation"]
            try:
                build_pin(
                    organisation=organisation, build=build, pinned_by=request.user, note=form.cleaned_data["note"]
                )
            except ValidationError as error:
                self.message_user(request, "; ".join(error.messages), messages.ERROR)
                return None
            self.message_user(
                request,
                gettext("%(build)s is now the target of %(organisation)s's %(model)s devices.")
                % {"build": build.build_number, "organisation": organisation, "model": build.model},
                messages.SUCCESS,
            )
            return None
        devices = model_active_devices(build.model)
        consequences = [
            gettext(
                "%(organisation)s: %(devices)d devices of %(model)s will be measured against %(build)s; %(on)d run it."
            )
            % {
                "organisation": organisation,
                "devices": devices.filter(organisation=organisation).count(),
                "model": build.model,
                "build": build.build_number,
                "on": devices.filter(organisation=organisation, current_build=build).count(),
            }
            for organisation in organisations[:20]
        ]
        return self._confirm(
            request,
            [build],
            title=gettext("Pin a build"),
            question=gettext("Pin %(build)s as the target build of %(model)s?")
            % {"build": build.build_number, "model": build.model},
            consequences=consequences,
            form=form,
            action="pin_selected",
            confirm_label=gettext("Yes, pin"),
        )


class PinForm(EdgeFormMixin, forms.Form):
    organisation = forms.ModelChoiceField(queryset=Organisation.objects.none(), label=_("organisation"))
    note = forms.CharField(label=_("note"), required=False, max_length=255)

    def __init__(self, *args: Any, organisations: models.QuerySet[Organisation], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organisation"].queryset = organisations


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
            build_pin_update(pin=obj, note=obj.note)
            return
        pin = build_pin(organisation=obj.organisation, build=obj.build, pinned_by=request.user, note=obj.note)
        adopt_saved_instance(obj, pin)

    def delete_model(self, request: HttpRequest, obj: BuildPin) -> None:
        build_unpin(organisation=obj.organisation, model=obj.model)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[BuildPin]) -> None:
        for pin in queryset.select_related("organisation", "model"):
            build_unpin(organisation=pin.organisation, model=pin.model)
