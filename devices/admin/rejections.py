"""The rejected messages: what Pub/Sub pushed that FleetPatch acknowledged without applying, read-only."""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from devices.admin.compliance import SuperuserRecordsAdmin
from devices.models import PubSubMessage, RejectedMessage
from fleet.scoping import LargeTableMixin, RecordsAdmin, ScopedRelatedFieldListFilter


@admin.register(RejectedMessage)
class RejectedMessageAdmin(LargeTableMixin, RecordsAdmin):
    organisation_path = "organisation"
    list_display = ("received_at", "organisation", "notification_type", "kind", "message_id", "error_summary")
    list_select_related = ("organisation",)
    list_filter = (
        "kind",
        "notification_type",
        ("received_at", admin.DateFieldListFilter),
        ("organisation", ScopedRelatedFieldListFilter),
    )
    search_fields = ("message_id",)
    search_help_text = _("Exact Pub/Sub message id.")
    # The (organisation, received_at) index serves an organisation's newest rejections.
    ordering = ("-received_at",)
    sortable_by = ()
    fields = (
        "organisation",
        "api_client",
        "source",
        "notification_type",
        "message_id",
        "kind",
        "received_at",
        "error_list",
        "payload",
    )
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[RejectedMessage], search_term: str
    ) -> tuple[QuerySet[RejectedMessage], bool]:
        # An exact id follows no index but the organisation's; a substring search would scan the table.
        term = search_term.strip()
        return (queryset.filter(message_id=term), False) if term else (queryset, False)

    @admin.display(description=_("errors"))
    def error_summary(self, obj: RejectedMessage) -> str:
        return "; ".join(f"{field}: {' '.join(map(str, reasons))}" for field, reasons in (obj.errors or {}).items())[
            :200
        ]

    @admin.display(description=_("errors"))
    def error_list(self, obj: RejectedMessage) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.errors, indent=2, ensure_ascii=False))

    @admin.display(description=_("raw payload"))
    def payload(self, obj: RejectedMessage) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.raw, indent=2, ensure_ascii=False, default=str))


@admin.register(PubSubMessage)
class PubSubMessageAdmin(LargeTableMixin, SuperuserRecordsAdmin):
    """The Pub/Sub message ids already received (a redelivery stores nothing): for operators tracing a message."""

    list_display = ("received_at", "organisation", "message_id")
    list_select_related = ("organisation",)
    search_fields = ("message_id",)
    search_help_text = _("Exact Pub/Sub message id.")
    ordering = ("-received_at",)
    sortable_by = ()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[PubSubMessage], search_term: str
    ) -> tuple[QuerySet[PubSubMessage], bool]:
        term = search_term.strip()
        return (queryset.filter(message_id=term), False) if term else (queryset, False)
