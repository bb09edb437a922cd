"""Observed builds over the API: read (scope `read`), promote to the catalogue or revoke (scope `catalogue`)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from common.api.filters import FilterSet, IdFilter
from devices.choices import ObservedBuildState
from devices.models import ObservedBuild
from devices.services import observed_build_promote, observed_build_revoke
from fleet.api.views import ApiViewMixin
from fleet.choices import Scope
from updates.api.serializers import BuildSummarySerializer, DeviceModelSummarySerializer


class ObservedBuildSerializer(serializers.ModelSerializer):
    model = DeviceModelSummarySerializer(read_only=True)
    promoted_build = BuildSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = ObservedBuild
        fields = [
            "id",
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
        ]
        read_only_fields = fields


class ObservedBuildFilterSet(FilterSet):
    state = django_filters.MultipleChoiceFilter(
        choices=ObservedBuildState.choices, help_text=_("One or more states (repeat the parameter).")
    )
    model_id = IdFilter(field_name="model_id", help_text=_("Device model id."))
    build_number = django_filters.CharFilter(help_text=_("Exact build number."))

    class Meta:
        model = ObservedBuild
        fields = ["state", "model_id", "build_number"]


class ObservedBuildViewSet(ApiViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Builds your organisation's devices report that the catalogue lacks. Another organisation's are a 404."""

    serializer_class = ObservedBuildSerializer
    filterset_class = ObservedBuildFilterSet
    ordering_fields = ("id", "last_seen_at")
    required_scopes = {"promote": Scope.CATALOGUE, "revoke": Scope.CATALOGUE}
    queryset = ObservedBuild.objects.none()

    def get_queryset(self) -> QuerySet[ObservedBuild]:
        return (
            ObservedBuild.objects.filter(organisation_id=self.organisation_id)
            .select_related("model__manufacturer", "promoted_build")
            .order_by()
        )

    def _answer(self, observed: ObservedBuild) -> Response:
        return Response(ObservedBuildSerializer(self.get_queryset().get(pk=observed.pk)).data)

    @extend_schema(request=None, responses={200: ObservedBuildSerializer})
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str | None = None) -> Response:
        """Adds the build to the catalogue as your organisation's private build (scope `catalogue`), released when
        first seen, with the patch level its devices report. 400 if it is not `observed` or has no patch level."""
        return self._answer(observed_build_promote(observed=self.get_object()))

    @extend_schema(request=None, responses={200: ObservedBuildSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revokes the build (scope `catalogue`): never a target again. 400 for a promoted build."""
        return self._answer(observed_build_revoke(observed=self.get_object()))
