"""Admin of the email digests: subscriptions (with a preview and a test send) and the record of deliveries,
scoped to the organisations a staff user is a member of."""

from __future__ import annotations

from typing import Any

from csp.decorators import csp
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from alerts import digests
from alerts.models import AlertSubscription, DigestDelivery, DigestMessage, Unsubscription
from alerts.services import digest_render, digest_send_test, digest_window_start, subscription_save
from fleet.models import Fleet
from fleet.scoping import OrganisationScopedAdmin, RecordsAdmin, ScopedRelatedFieldListFilter, is_superuser
from fleet.selectors import organisation_ids_for_request

PREVIEW_CSP = {
    "default-src": ["'none'"],
    "style-src": ["'unsafe-inline'"],
    "img-src": ["data:"],
    "base-uri": ["'none'"],
    "form-action": ["'none'"],
    "frame-ancestors": ["'none'"],
    "sandbox": True,
}


class AlertSubscriptionForm(forms.ModelForm):
    class Meta:
        model = AlertSubscription
        fields = (
            "organisation",
            "name",
            "is_active",
            "fleets",
            "language",
            "send_to_managers",
            "send_to_viewers",
            "extra_recipients",
            "unsubscribed",
            "frequency",
            "weekday",
            "cron",
            "send_at",
            "time_zone",
            "report_behind",
            "report_critical",
            "report_unsupported",
            "report_silent",
            "report_battery",
            "report_end_of_support",
            "report_waivers",
            "send_when_empty",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        organisation = cleaned.get("organisation")
        fleets = cleaned.get("fleets")
        if organisation is not None and fleets is not None:
            foreign = [fleet.name for fleet in fleets if fleet.organisation_id != organisation.pk]
            if foreign:
                message = gettext("These fleets belong to another organisation: %(fleets)s.")
                self.add_error("fleets", message % {"fleets": ", ".join(foreign)})
        return cleaned


class ReadOnlyInline(admin.TabularInline):
    """Rows FleetPatch writes itself, shown under their parent: nobody adds, changes or deletes them here."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        # Shown on its parent's page: whoever may view that row (its organisation's members) may read these.
        return self.admin_site._registry[self.parent_model].has_view_permission(request, obj)


class UnsubscriptionInline(ReadOnlyInline):
    model = Unsubscription
    fields = readonly_fields = ("address", "at", "via", "link_signed_at", "client_address", "user_agent")
    ordering = ("-at",)
    verbose_name_plural = _("unsubscriptions (the latest first)")


class DigestMessageInline(ReadOnlyInline):
    model = DigestMessage
    fields = readonly_fields = ("address", "status", "attempts", "claimed_at", "sent_at", "error")
    ordering = ("address",)


@admin.register(AlertSubscription)
class AlertSubscriptionAdmin(OrganisationScopedAdmin):
    form = AlertSubscriptionForm
    list_display = ("name", "organisation", "frequency", "send_at", "time_zone", "language", "is_active", "preview")
    list_filter = ("is_active", "frequency", ("organisation", ScopedRelatedFieldListFilter))
    list_select_related = ("organisation",)
    search_fields = ("name", "organisation__name")
    autocomplete_fields = ("organisation",)
    filter_horizontal = ("fleets",)
    readonly_fields = ("created_at", "last_sent_period")
    ordering = ("organisation__name", "name")
    actions = ("send_test_digest",)
    inlines = (UnsubscriptionInline,)

    def save_model(self, request: HttpRequest, obj: AlertSubscription, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        subscription_save(subscription=obj, fleets=form.cleaned_data.get("fleets"))

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool) -> None:
        # The fleets were set by subscription_save; only inline formsets (none today) remain.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    fieldsets = (
        (None, {"fields": ("organisation", "name", "is_active", "fleets", "language")}),
        (_("Recipients"), {"fields": ("send_to_managers", "send_to_viewers", "extra_recipients", "unsubscribed")}),
        (_("Schedule"), {"fields": ("frequency", "weekday", "cron", "send_at", "time_zone")}),
        (
            _("Content"),
            {
                "fields": (
                    "report_behind",
                    "report_critical",
                    "report_unsupported",
                    "report_silent",
                    "report_battery",
                    "report_end_of_support",
                    "report_waivers",
                    "send_when_empty",
                )
            },
        ),
        (_("History"), {"fields": ("created_at", "last_sent_period")}),
    )

    def formfield_for_manytomany(self, db_field: models.ManyToManyField, request: HttpRequest, **kwargs: Any):
        if db_field.name == "fleets" and not is_superuser(request):
            kwargs["queryset"] = Fleet.objects.filter(
                organisation__in=organisation_ids_for_request(request, manage=True)
            ).select_related("organisation")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_urls(self) -> list[URLPattern]:
        preview = path(
            "<int:object_id>/preview/",
            self.admin_site.admin_view(self.preview_view),
            name="alerts_alertsubscription_preview",
        )
        return [preview, *super().get_urls()]

    # Email HTML, shown from the admin's origin: sandboxed (a unique origin, no script, no form, no plugin), with
    # nothing to load but its inline styles and images, so whatever a digest carries cannot act as the admin.
    @csp(PREVIEW_CSP)
    def preview_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The HTML digest as it would be sent now, without sending anything. Its unsubscribe link is a neutral
        one that unsubscribes nobody: whoever may view the subscription must not get a recipient's link."""
        subscription = get_object_or_404(self.get_queryset(request).select_related("organisation"), pk=object_id)
        if not self.has_view_permission(request, subscription):
            raise PermissionDenied
        now = timezone.now()
        window_start, previous_counts = digest_window_start(subscription, subscription.latest_occurrence(now) or now)
        _, rendered = digest_render(
            subscription, window_start=window_start, window_end=now, previous_counts=previous_counts
        )
        with translation.override(subscription.language):
            nobody = gettext("(each recipient's address)")
        copy = rendered.personal(address=nobody, unsubscribe_url=digests.preview_unsubscribe_url())
        return HttpResponse(copy.html)

    @admin.display(description=_("preview"))
    def preview(self, obj: AlertSubscription) -> str:
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>',
            reverse("admin:alerts_alertsubscription_preview", args=[obj.pk]),
            gettext("Preview"),
        )

    @admin.action(description=_("Send a test digest now (to me)"), permissions=["view"])
    def send_test_digest(self, request: HttpRequest, queryset: models.QuerySet[AlertSubscription]) -> None:
        if not request.user.email:
            self.message_user(request, gettext("Your account has no email address."), messages.ERROR)
            return
        for subscription in queryset.select_related("organisation"):
            try:
                subject = digest_send_test(subscription=subscription, to=request.user.email)
            except Exception as exc:  # noqa: BLE001 - the admin reports any transport failure to the user
                self.message_user(
                    request,
                    gettext("%(name)s: not sent (%(error)s).") % {"name": subscription.name, "error": exc},
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    gettext("Test digest “%(subject)s” sent to %(address)s.")
                    % {"subject": subject, "address": request.user.email},
                    messages.SUCCESS,
                )


@admin.register(DigestDelivery)
class DigestDeliveryAdmin(RecordsAdmin):
    """The record of every period: what was sent when, to whom, or why not. Written by the dispatcher only."""

    organisation_path = "subscription__organisation"
    list_display = ("subscription", "period", "status", "attempts", "sent_at", "subject", "error")
    list_filter = ("status",)
    list_select_related = ("subscription__organisation",)
    search_fields = ("subscription__name", "subject")
    ordering = ("-period",)
    show_full_result_count = False
    inlines = (DigestMessageInline,)

    # Read-only (RecordsAdmin): deleting a row would let its period be sent again, so only an operator may.


@admin.register(Unsubscription)
class UnsubscriptionAdmin(RecordsAdmin):
    """Every address that left a subscription: when, which way, from which link. Written by the unsubscribe
    service only (the page, a mail client's one-click, or the subscription's form)."""

    organisation_path = "subscription__organisation"
    list_display = ("address", "subscription", "at", "via", "link_signed_at", "client_address")
    list_filter = ("via",)
    list_select_related = ("subscription__organisation",)
    search_fields = ("address", "subscription__name")
    ordering = ("-at",)
    show_full_result_count = False


@admin.register(DigestMessage)
class DigestMessageAdmin(RecordsAdmin):
    """Every recipient's message of every period: claimed, sent, refused and retried, or failed, and why."""

    organisation_path = "delivery__subscription__organisation"
    list_display = ("address", "delivery", "status", "attempts", "sent_at", "error")
    list_filter = ("status",)
    list_select_related = ("delivery__subscription__organisation",)
    search_fields = ("address", "delivery__subscription__name")
    ordering = ("-delivery__period", "address")
    show_full_result_count = False
