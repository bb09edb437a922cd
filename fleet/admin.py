"""Admin of tenants and people, scoped to the organisations a staff user is a member of."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from fleet.choices import Scope
from fleet.models import ApiClient, CompliancePolicy, Fleet, Membership, Organisation
from fleet.scoping import OrganisationScopedAdmin, ScopedRelatedFieldListFilter, adopt_saved_instance, is_superuser
from fleet.selectors import organisation_ids_for_request
from fleet.services import (
    api_client_create,
    api_client_push_enable,
    api_client_push_secret_revoke,
    api_client_revoke,
    api_client_update,
    fleet_save,
    fleets_delete,
    membership_save,
    memberships_delete,
    organisation_save,
    policy_delete,
    policy_save,
)


def _devices_link(query: str, label: str) -> str:
    return format_html('<a href="{}?{}">{}</a>', reverse("admin:devices_device_changelist"), query, label)


admin.site.site_header = _("FleetPatch")
admin.site.site_title = _("FleetPatch")
admin.site.index_title = _("Fleet compliance")


@admin.register(Organisation)
class OrganisationAdmin(OrganisationScopedAdmin):
    organisation_path = "pk"
    list_display = ("name", "slug", "created_at", "devices")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at",)
    ordering = ("name",)

    # Creating and deleting tenants is the operator's job, not a member's.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)

    def save_model(self, request: HttpRequest, obj: Organisation, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        organisation_save(organisation=obj)

    @admin.display(description=_("devices"))
    def devices(self, obj: Organisation) -> str:
        return _devices_link(f"organisation__id__exact={obj.pk}", gettext("Devices"))


@admin.register(Fleet)
class FleetAdmin(OrganisationScopedAdmin):
    list_display = ("name", "organisation", "slug", "devices")
    list_filter = (("organisation", ScopedRelatedFieldListFilter),)
    list_select_related = ("organisation",)
    search_fields = ("name", "slug")
    autocomplete_fields = ("organisation",)
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("organisation__name", "name")

    def save_model(self, request: HttpRequest, obj: Fleet, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        fleet_save(fleet=obj)

    def delete_model(self, request: HttpRequest, obj: Fleet) -> None:
        fleets_delete(fleets=Fleet.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[Fleet]) -> None:
        fleets_delete(fleets=queryset)

    @admin.display(description=_("devices"))
    def devices(self, obj: Fleet) -> str:
        # A link rather than a count: counting every fleet's devices on each page load scans them all.
        return _devices_link(f"fleet__id__exact={obj.pk}", gettext("Devices"))


@admin.register(Membership)
class MembershipAdmin(OrganisationScopedAdmin):
    list_display = ("user", "organisation", "role")
    list_filter = ("role", ("organisation", ScopedRelatedFieldListFilter))
    list_select_related = ("user", "organisation")
    search_fields = ("user__username", "user__email", "organisation__name")
    autocomplete_fields = ("organisation",)
    ordering = ("organisation__name", "user__username")

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        if db_field.name == "user" and not is_superuser(request):
            # A manager may give roles to their organisations' members but may not browse every
            # account of the installation; accounts themselves are created by a superuser.
            kwargs["queryset"] = (
                get_user_model()
                ._default_manager.filter(
                    memberships__organisation__in=organisation_ids_for_request(request, manage=True)
                )
                .distinct()
                .order_by("username")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Membership, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        membership_save(membership=obj)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        memberships_delete(memberships=Membership.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[Membership]) -> None:
        memberships_delete(memberships=queryset)


@admin.register(CompliancePolicy)
class CompliancePolicyAdmin(OrganisationScopedAdmin):
    list_display = (
        "__str__",
        "organisation",
        "fleet",
        "grace_days",
        "max_patch_age_days",
        "max_silence_days",
        "battery_max_age_days",
        "battery_min_health_pct",
        "eos_warning_days",
        "use_observed_builds",
        "observed_build_min_devices",
    )
    list_filter = (("organisation", ScopedRelatedFieldListFilter),)
    list_select_related = ("organisation", "fleet")
    search_fields = ("organisation__name", "fleet__name")
    autocomplete_fields = ("organisation", "fleet")
    ordering = ("organisation__name", "fleet__name")

    # Thresholds move statuses: the services re-evaluate the organisation's devices once committed.
    def save_model(self, request: HttpRequest, obj: CompliancePolicy, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        policy_save(policy=obj)

    def delete_model(self, request: HttpRequest, obj: CompliancePolicy) -> None:
        policy_delete(policies=CompliancePolicy.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        policy_delete(policies=queryset)


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=Scope.choices, widget=forms.CheckboxSelectMultiple, required=True
    )

    pubsub_push = forms.BooleanField(
        label=_("Pub/Sub push secret"),
        required=False,
        help_text=_("Give the client a Google Pub/Sub push endpoint whose URL carries a secret (shown once)."),
    )

    class Meta:
        model = ApiClient
        fields = ("organisation", "name", "scopes", "expires_at", "push_service_account", "push_audience")

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and "expires_at" in self.changed_data and expires_at <= timezone.now():
            raise ValidationError(gettext("An API client cannot expire in the past."))
        return expires_at


@admin.register(ApiClient)
class ApiClientAdmin(OrganisationScopedAdmin):
    form = ApiClientForm
    list_display = (
        "name",
        "organisation",
        "token_prefix",
        "scope_list",
        "is_active",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = (("organisation", ScopedRelatedFieldListFilter), ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("organisation",)
    search_fields = ("name", "token_prefix")
    autocomplete_fields = ("organisation",)
    ordering = ("organisation__name", "name")
    actions = ("revoke_selected", "rotate_push_secret", "revoke_push_secret")

    def get_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> tuple[str, ...]:
        if obj is None:
            return (
                "organisation",
                "name",
                "scopes",
                "expires_at",
                "pubsub_push",
                "push_service_account",
                "push_audience",
            )
        # The token itself is never stored; its prefix is what identifies it in logs.
        return (
            "organisation",
            "name",
            "token_prefix",
            "scopes",
            "expires_at",
            "created_at",
            "last_used_at",
            "revoked_at",
            "push_endpoint",
            "push_secret",
            "push_service_account",
            "push_audience",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # A token belongs to one organisation for life; revocation goes through the action.
        return (
            "organisation",
            "token_prefix",
            "created_at",
            "last_used_at",
            "revoked_at",
            "push_endpoint",
            "push_secret",
        )

    def save_model(self, request: HttpRequest, obj: ApiClient, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        if change:
            api_client_update(api_client=obj, **{field: getattr(obj, field) for field in form.changed_data})
            return
        with transaction.atomic():
            client, token = api_client_create(
                organisation=obj.organisation, name=obj.name, scopes=obj.scopes, expires_at=obj.expires_at
            )
            secret = None
            if form.cleaned_data.get("pubsub_push") or obj.push_service_account:
                client, secret = api_client_push_enable(
                    api_client=client,
                    service_account=obj.push_service_account,
                    audience=obj.push_audience,
                    with_secret=bool(form.cleaned_data.get("pubsub_push")),
                )
        adopt_saved_instance(obj, client)
        if client.push_id:
            self._show_push_endpoint(request, client, secret)
        messages.success(
            request,
            format_html(
                gettext(
                    "The token of {name} is <code>{token}</code>. Copy it now: it is shown only this once, "
                    "FleetPatch keeps only its hash."
                ),
                name=client.name,
                token=token,
            ),
        )

    @admin.action(description=_("Revoke selected API clients"), permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: models.QuerySet[ApiClient]) -> None:
        # The changelist shows what the user may view; revoke only what they manage.
        revoked = api_client_revoke(api_clients=self.scope_queryset(request, queryset, manage=True))
        self.message_user(
            request,
            ngettext("%(count)d API client revoked.", "%(count)d API clients revoked.", revoked) % {"count": revoked},
            messages.SUCCESS,
        )

    def _show_push_endpoint(self, request: HttpRequest, client: ApiClient, secret: str | None) -> None:
        if secret:
            text = gettext(
                "The Pub/Sub push endpoint of {name} is <code>{url}</code>. Copy it now: its secret is shown only "
                "this once, FleetPatch keeps only its hash."
            )
            url = client.push_url(secret)
        else:
            text = gettext(
                "The Pub/Sub push endpoint of {name} is <code>{url}</code>, for OIDC tokens of {account} "
                "(audience {audience})."
            )
            url = client.push_url()
        messages.success(
            request,
            format_html(
                text,
                name=client.name,
                url=url,
                account=client.push_service_account,
                audience=client.push_token_audience,
            ),
        )

    @admin.action(description=_("Give selected API clients a new Pub/Sub push secret"), permissions=["change"])
    def rotate_push_secret(self, request: HttpRequest, queryset: models.QuerySet[ApiClient]) -> None:
        # One new secret per client, each shown once; the previous secret stops working at once.
        for client in self.scope_queryset(request, queryset, manage=True).filter(revoked_at__isnull=True):
            client, secret = api_client_push_enable(api_client=client)
            self._show_push_endpoint(request, client, secret)

    @admin.action(description=_("Revoke the Pub/Sub push secrets of selected API clients"), permissions=["change"])
    def revoke_push_secret(self, request: HttpRequest, queryset: models.QuerySet[ApiClient]) -> None:
        revoked = api_client_push_secret_revoke(api_clients=self.scope_queryset(request, queryset, manage=True))
        self.message_user(
            request,
            ngettext("%(count)d push secret revoked.", "%(count)d push secrets revoked.", revoked) % {"count": revoked},
            messages.SUCCESS,
        )

    @admin.display(description=_("Pub/Sub push endpoint"))
    def push_endpoint(self, obj: ApiClient) -> str:
        return obj.push_url() or gettext("Not enabled (action: give a new Pub/Sub push secret).")

    @admin.display(description=_("push secret"))
    def push_secret(self, obj: ApiClient) -> str:
        # The secret itself is never stored: only whether there is one.
        return gettext("set (shown only when it was made)") if obj.push_secret_hash else gettext("none")

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description=_("active"), boolean=True)
    def is_active(self, obj: ApiClient) -> bool:
        return obj.is_active_at(timezone.now())
