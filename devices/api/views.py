"""Devices (list, look up, enrol, reassign, retire), battery events, and the compliance read-outs."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from django.utils.decorators import method_decorator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.db_router import reads_from_replica
from devices import selectors, services
from devices.api.filters import BatteryEventFilterSet, DeviceFilterSet
from devices.api.serializers import (
    BatteryEventCreateSerializer,
    BatteryEventSerializer,
    ComplianceSummarySerializer,
    DeviceEnrolSerializer,
    DeviceSerializer,
    DeviceUpdateSerializer,
)
from devices.compliance.time_to_patch import time_to_patch
from devices.models import BatteryEvent, Device
from fleet.api.serializers import FleetSummarySerializer
from fleet.api.views import ApiViewMixin
from fleet.choices import Scope
from updates.api.serializers import BuildSummarySerializer, TimeToPatchQuerySerializer, TimeToPatchSerializer
from updates.models import DeviceModel, OSBuild

# Everything a device's representation links to, so a page is one query whatever its size.
DEVICE_SELECT_RELATED = ("model__manufacturer", "fleet", "current_build", "latest_build")


class DeviceViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """The client's organisation's devices. Another organisation's device is a 404, whatever the lookup."""

    serializer_class = DeviceSerializer
    filterset_class = DeviceFilterSet
    ordering_fields = ("id", "serial")
    required_scopes = {"create": Scope.ENROL, "partial_update": Scope.ENROL, "retire": Scope.ENROL}
    queryset = Device.objects.none()

    def get_queryset(self) -> QuerySet[Device]:
        return Device.objects.filter(organisation_id=self.organisation_id).select_related(*DEVICE_SELECT_RELATED)

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        if self.request is not None and self.request.auth is not None:
            context["organisation_id"] = self.organisation_id
        return context

    def _device_response(self, device: Device, code: int = status.HTTP_200_OK) -> Response:
        device = self.get_queryset().get(pk=device.pk)
        return Response(DeviceSerializer(device, context=self.get_serializer_context()).data, status=code)

    @extend_schema(request=DeviceEnrolSerializer, responses={201: DeviceSerializer})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Enrols a device (scope `enrol`). 400 if the serial or IMEI is already enrolled in your organisation."""
        serializer = DeviceEnrolSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        device = services.device_enrol(organisation=request.auth.organisation, **serializer.validated_data)
        return self._device_response(device, status.HTTP_201_CREATED)

    @extend_schema(request=DeviceUpdateSerializer, responses={200: DeviceSerializer})
    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Changes assignment fields only (scope `enrol`): fleet, asset_tag, assignee, channel, model."""
        device = self.get_object()
        serializer = DeviceUpdateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        device = services.device_update(device=device, **serializer.validated_data)
        return self._device_response(device)

    @extend_schema(request=None, responses={200: DeviceSerializer})
    @action(detail=True, methods=["post"])
    def retire(self, request: Request, pk: str | None = None) -> Response:
        """Retires a device (scope `enrol`): it keeps its history; retiring twice keeps the first date."""
        device = services.device_retire(device=self.get_object())
        return self._device_response(device)

    def _by(self, **lookup: str) -> Response:
        if any("\x00" in value for value in lookup.values()):
            raise Http404
        device = self.get_queryset().filter(**lookup).first()
        if device is None:
            raise Http404
        return Response(DeviceSerializer(device, context=self.get_serializer_context()).data)

    @extend_schema(responses={200: DeviceSerializer}, filters=False)
    @action(detail=False, url_path=r"by-serial/(?P<serial>[^/]+)", filterset_class=None, pagination_class=None)
    def by_serial(self, request: Request, serial: str) -> Response:
        """One device by its serial number (serials containing "/" are found with `?serial=` on the list)."""
        return self._by(serial=serial)

    @extend_schema(responses={200: DeviceSerializer}, filters=False)
    @action(detail=False, url_path=r"by-imei/(?P<imei>[0-9]{1,15})", filterset_class=None, pagination_class=None)
    def by_imei(self, request: Request, imei: str) -> Response:
        """One device by its IMEI."""
        return self._by(imei=imei)


class BatteryEventViewSet(ApiViewMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Battery replacements and health readings of the client's organisation's devices."""

    serializer_class = BatteryEventSerializer
    filterset_class = BatteryEventFilterSet
    ordering_fields = ("id", "occurred_at")
    required_scopes = {"create": Scope.REPORT}
    queryset = BatteryEvent.objects.none()

    def get_queryset(self) -> QuerySet[BatteryEvent]:
        return (
            BatteryEvent.objects.filter(device__organisation_id=self.organisation_id)
            .select_related("device")
            .order_by()
        )

    @extend_schema(request=BatteryEventCreateSerializer, responses={201: BatteryEventSerializer})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Records a replacement (resets the battery's age, health and cycles) or a health reading (scope `report`)."""
        serializer = BatteryEventCreateSerializer(data=request.data, context={"organisation_id": self.organisation_id})
        serializer.is_valid(raise_exception=True)
        event = services.battery_event_record(**serializer.validated_data)
        return Response(BatteryEventSerializer(event).data, status=status.HTTP_201_CREATED)


class ComplianceSummaryView(ApiViewMixin, APIView):
    """Counts of the organisation's active (not retired) devices, for the organisation and per fleet."""

    @extend_schema(responses={200: ComplianceSummarySerializer})
    @method_decorator(reads_from_replica)
    def get(self, request: Request) -> Response:
        summary = selectors.compliance_summary(organisation_id=self.organisation_id)
        result = [
            {"fleet": None if fleet is None else FleetSummarySerializer(fleet).data, **counts}
            for fleet, counts in summary.fleets
        ]
        organisation = summary.organisation
        return Response({"organisation": organisation, "fleets": result})


class TimeToPatchView(ApiViewMixin, APIView):
    """Per build of one model: how many of the organisation's devices installed it, and how fast."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "model",
                {"type": "string", "minLength": 1},
                required=True,
                description=_('Device model: id, slug or name ("Manufacturer Model").'),
            )
        ],
        responses={200: TimeToPatchSerializer(many=True)},
    )
    @method_decorator(reads_from_replica)
    def get(self, request: Request) -> Response:
        query = TimeToPatchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        value = query.validated_data["model"]
        if value.isdigit():
            found = list(DeviceModel.objects.filter(pk=int(value)).values_list("pk", flat=True))
        else:
            found = list(DeviceModel.objects.names().candidates(value))
        if len(found) != 1:
            message = (
                gettext("No device model matches %(value)s.")
                if not found
                else gettext("Several models match %(value)s: give the id.")
            )
            raise ValidationError({"model": [message % {"value": value}]})
        builds = list(
            OSBuild.objects.visible_to(self.organisation_id).filter(model_id=found[0]).order_by("-released_at", "-id")
        )
        stats = time_to_patch(build_ids=[b.pk for b in builds], organisation_id=self.organisation_id)
        return Response(
            [
                {
                    "build": BuildSummarySerializer(build).data,
                    "channel": build.channel,
                    "private": build.organisation_id is not None,
                    "installed_devices": stats[build.pk].installed_devices,
                    "median_days": stats[build.pk].median_days,
                    "p90_days": stats[build.pk].p90_days,
                }
                for build in builds
            ]
        )
