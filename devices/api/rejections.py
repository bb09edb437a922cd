"""The rejected messages: pushed messages FleetPatch acknowledged without applying them (scope ``read``)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from rest_framework import mixins, serializers, viewsets

from common.api.filters import FilterSet, UtcDateTimeFilter
from devices.choices import RejectionKind
from devices.models import RejectedMessage
from fleet.api.views import ApiViewMixin


class RejectedMessageSerializer(serializers.ModelSerializer):
    api_client_id = serializers.IntegerField(read_only=True, allow_null=True)
    reason = serializers.ChoiceField(source="kind", choices=RejectionKind.choices, read_only=True)
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        read_only=True,
        help_text=_('Field name to reasons, e.g. {"networkInfo.imei": ["..."]}.'),
    )
    raw = serializers.JSONField(read_only=True, allow_null=True, help_text=_("Bounded in size, secrets removed."))

    class Meta:
        model = RejectedMessage
        fields = [
            "id",
            "received_at",
            "source",
            "notification_type",
            "message_id",
            "reason",
            "errors",
            "api_client_id",
            "raw",
        ]
        read_only_fields = fields


class RejectedMessageFilterSet(FilterSet):
    reason = django_filters.ChoiceFilter(field_name="kind", choices=RejectionKind.choices)
    notification_type = django_filters.CharFilter(help_text=_("Exact notification type, e.g. STATUS_REPORT."))
    message_id = django_filters.CharFilter(help_text=_("Exact Pub/Sub message id."))
    received_after = UtcDateTimeFilter(field_name="received_at", lookup_expr="gte")
    received_before = UtcDateTimeFilter(field_name="received_at", lookup_expr="lt")

    class Meta:
        model = RejectedMessage
        fields = ["reason", "notification_type", "message_id", "received_after", "received_before"]


class RejectedMessageViewSet(ApiViewMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The client's organisation's rejected messages (`?ordering=-received_at`: newest first)."""

    serializer_class = RejectedMessageSerializer
    filterset_class = RejectedMessageFilterSet
    ordering_fields = ("id", "received_at")
    queryset = RejectedMessage.objects.none()

    def get_queryset(self) -> QuerySet[RejectedMessage]:
        return RejectedMessage.objects.filter(organisation_id=self.organisation_id).order_by()
