"""The catalogue: device models (read; add aliases) and OS builds (read; publish and revoke private builds)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.api.views import ApiViewMixin
from fleet.choices import Scope
from updates.api.filters import BuildFilterSet, DeviceModelFilterSet
from updates.api.serializers import AliasSerializer, BuildPublishSerializer, BuildSerializer, DeviceModelSerializer
from updates.models import DeviceModel, OSBuild
from updates.services import build_publish, build_revoke, manufacturer_alias_add, model_alias_add


class DeviceModelViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    """The global catalogue of device models. Clients cannot add models (superusers and imports do); with scope
    `catalogue` they add the names their MDM reports models and manufacturers by."""

    serializer_class = DeviceModelSerializer
    filterset_class = DeviceModelFilterSet
    ordering_fields = ("id",)
    required_scopes = {"aliases": Scope.CATALOGUE, "manufacturer_aliases": Scope.CATALOGUE}
    queryset = (
        DeviceModel.objects.select_related("manufacturer")
        .prefetch_related("aliases", "manufacturer__aliases")
        .order_by()
    )

    def _add_alias(self, request: Request, add: object) -> Response:
        serializer = AliasSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = self.get_object()
        try:
            add(model, serializer.validated_data["name"])
        except ValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return Response(
            DeviceModelSerializer(self.get_queryset().get(pk=model.pk)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=AliasSerializer, responses={201: DeviceModelSerializer})
    @action(detail=True, methods=["post"])
    def aliases(self, request: Request, pk: str | None = None) -> Response:
        """Adds a name of this model (scope `catalogue`): a model code, a codename, a marketing name. Devices
        that reported it get the model and are re-evaluated. Aliases are shared by every organisation;
        removing one is the operators' job (admin)."""
        return self._add_alias(request, lambda model, name: model_alias_add(model=model, name=name))

    @extend_schema(request=AliasSerializer, responses={201: DeviceModelSerializer})
    @action(detail=True, methods=["post"], url_path="manufacturer-aliases")
    def manufacturer_aliases(self, request: Request, pk: str | None = None) -> Response:
        """Adds a spelling of this model's manufacturer (scope `catalogue`), e.g. "Zebra" for "Zebra
        Technologies". Devices that reported a model under it get their model and are re-evaluated."""
        return self._add_alias(
            request, lambda model, name: manufacturer_alias_add(manufacturer=model.manufacturer, name=name)
        )


class BuildViewSet(ApiViewMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """OS builds: the public catalogue plus the client's organisation's private (in-house) builds."""

    serializer_class = BuildSerializer
    filterset_class = BuildFilterSet
    ordering_fields = ("id", "released_at")
    required_scopes = {"create": Scope.CATALOGUE, "revoke": Scope.CATALOGUE}
    queryset = OSBuild.objects.none()

    def get_queryset(self) -> QuerySet[OSBuild]:
        return OSBuild.objects.visible_to(self.organisation_id).select_related("model__manufacturer").order_by()

    @extend_schema(request=BuildPublishSerializer, responses={201: BuildSerializer})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Publishes a private build of your organisation (scope `catalogue`); devices are re-evaluated."""
        serializer = BuildPublishSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        build = build_publish(
            organisation=request.auth.organisation,
            model=data["model"],
            build_number=data["build_number"],
            android_version=data["android_version"],
            security_patch_level=data["security_patch_level"],
            released_at=data.get("released_at") or timezone.now(),
            channel=data["channel"],
        )
        build = self.get_queryset().get(pk=build.pk)
        return Response(BuildSerializer(build).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: BuildSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revokes one of your organisation's private builds (scope `catalogue`); public builds are 404."""
        build = get_object_or_404(
            OSBuild.objects.select_related("model__manufacturer"), pk=pk, organisation_id=self.organisation_id
        )
        build = build_revoke(build=build)
        return Response(BuildSerializer(build).data)
