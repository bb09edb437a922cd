"""Check-in ingestion endpoints: FleetPatch's own reports, Android Management API devices, Headwind reports.

Each endpoint takes one report or a list of up to 1,000. One report answers with its result object
(201 created, 200 duplicate, 400 error); a list answers 200 with one result per item, in order, so
one bad item never loses the good ones (``{"results": [...], "created": n, "duplicates": n, "errors": n}``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from common.api.filters import EMPTY_VALUE_MESSAGE
from common.api.openapi import ErrorSerializer
from common.api.pagination import FleetPatchCursorPagination
from common.db_router import reads_from_replica
from devices.checkins.ingest import MAX_BATCH, ItemResult, ItemStatus, Submission, collector_paused
from devices.checkins.parsers import (
    CheckInReportSerializer,
    ParsedReport,
    is_pubsub_envelope,
    parse_amapi,
    parse_headwind,
    parse_native,
)
from devices.checkins.pubsub import PushOutcome, pubsub_message_ingest
from devices.checkins.services import checkins_ingest_retrying
from devices.models import CheckIn, Device
from fleet.api.permissions import client_has_scope
from fleet.api.pubsub_auth import PubSubPushAuthentication
from fleet.api.views import ApiViewMixin
from fleet.choices import Scope


# --- Schema serializers ----------------------------------------------------------------------------
class ItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text=_("Position of the report in the request (0 for a single report)."))
    status = serializers.ChoiceField(choices=["created", "duplicate", "error"])
    device_id = serializers.IntegerField(allow_null=True)
    enrolled = serializers.BooleanField(help_text=_("The device was unknown and this report enrolled it."))
    compliance_status = serializers.CharField(allow_null=True)
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        allow_null=True,
        help_text=_('Field name to reasons, e.g. {"imei": ["..."]}; null unless status is "error".'),
    )
    warnings = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        allow_null=True,
        help_text=_("Field name to what was dropped or doubted without refusing the report; null if nothing."),
    )


class BatchResultSerializer(serializers.Serializer):
    results = ItemResultSerializer(many=True)
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    errors = serializers.IntegerField()


class CheckInSerializer(serializers.ModelSerializer):
    device_id = serializers.IntegerField(read_only=True)
    build_id = serializers.IntegerField(read_only=True, allow_null=True)
    battery_level = serializers.IntegerField(source="battery_level_pct", read_only=True, allow_null=True)
    battery_health = serializers.IntegerField(source="battery_health_pct", read_only=True, allow_null=True)

    class Meta:
        model = CheckIn
        fields = [
            "id",
            "device_id",
            "reported_at",
            "received_at",
            "source",
            "build_number",
            "build_id",
            "android_version",
            "security_patch_level",
            "battery_level",
            "battery_health",
            "battery_cycle_count",
            "agent_version",
        ]
        read_only_fields = fields


# --- Shared ingestion ------------------------------------------------------------------------------
def _items(body: Any) -> tuple[list, bool]:
    """The reports of a body and whether it was a list; a list over the limit stores nothing."""
    if isinstance(body, list):
        # Too many items is invalid input, as the schema's maxItems says (a 413 is for a body over
        # API_MAX_BODY_BYTES, whatever it holds).
        if len(body) > MAX_BATCH:
            raise exceptions.ValidationError(
                {
                    "non_field_errors": [
                        gettext(
                            "A request holds at most %(limit)d reports; this one has %(count)d. Nothing was stored."
                        )
                        % {"limit": MAX_BATCH, "count": len(body)}
                    ]
                }
            )
        if not body:
            raise exceptions.ValidationError(
                {"non_field_errors": [gettext("Send one report, or a list of 1 to %(limit)d.") % {"limit": MAX_BATCH}]}
            )
        return body, True
    return [body], False


def _result(index: int, result: ItemResult) -> dict:
    return {
        "index": index,
        "status": result.status,
        "device_id": result.device_id,
        "enrolled": result.enrolled,
        "compliance_status": result.compliance_status,
        "errors": result.errors,
        "warnings": result.warnings,
    }


def ingest(request: Request, items: list, parse: Callable[[Any], ParsedReport], *, single: bool) -> Response:
    parsed = [parse(item) for item in items]
    submissions = [Submission(p.identity, p.report) for p in parsed if p.errors is None]
    outcomes = iter(
        # Retried when PostgreSQL aborts the batch to break a deadlock with a concurrent batch or sweep.
        checkins_ingest_retrying(
            organisation_id=request.auth.organisation_id,
            submissions=submissions,
            can_enrol=client_has_scope(request, Scope.ENROL),
        )
    )
    results = [
        _result(i, ItemResult(status=ItemStatus.ERROR, errors=p.errors) if p.errors is not None else next(outcomes))
        for i, p in enumerate(parsed)
    ]
    if single:
        code = {
            ItemStatus.CREATED: status.HTTP_201_CREATED,
            ItemStatus.DUPLICATE: status.HTTP_200_OK,
            ItemStatus.ERROR: status.HTTP_400_BAD_REQUEST,
        }[results[0]["status"]]
        return Response(results[0], status=code)
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "duplicate", "error")}
    return Response(
        {"results": results, "created": counts["created"], "duplicates": counts["duplicate"], "errors": counts["error"]}
    )


class PubSubAckSerializer(serializers.Serializer):
    """A Pub/Sub message acknowledged without a check-in: ignored, a redelivery, or rejected and recorded."""

    status = serializers.ChoiceField(choices=[PushOutcome.IGNORED, PushOutcome.REDELIVERED, PushOutcome.REJECTED])
    notification_type = serializers.CharField(help_text=_("The message's notificationType attribute."))
    message_id = serializers.CharField(help_text=_("The Pub/Sub message id."))
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        allow_null=True,
        help_text=_("Why a rejected message was not applied; null otherwise."),
    )
    rejected_message_id = serializers.IntegerField(
        allow_null=True, help_text=_("The rejected-messages record (GET /api/v1/rejected-messages/).")
    )


# A 200 is a batch's results, or the result of a single report already received (and, for AMAPI, an
# acknowledged notification without a Device): the shapes share no required field, so oneOf holds.
_INGEST_200 = PolymorphicProxySerializer(
    component_name="IngestResult",
    serializers=[BatchResultSerializer, ItemResultSerializer],
    resource_type_field_name=None,
)
_AMAPI_200 = PolymorphicProxySerializer(
    component_name="AmapiIngestResult",
    serializers=[BatchResultSerializer, ItemResultSerializer, PubSubAckSerializer],
    resource_type_field_name=None,
)
# A 400 is a single report's result with its errors, or a body that could not be read at all: malformed
# JSON ({"detail": ...}, the Error component every operation's 401 uses) or a body-level field error
# ({"non_field_errors": [...]}, {"message.data": [...]}).
_INGEST_400 = {
    "oneOf": [
        {"$ref": "#/components/schemas/ItemResult"},
        {"$ref": "#/components/schemas/Error"},
        {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    ]
}


# --- Request bodies, as the senders send them (only the fields FleetPatch reads; the rest is ignored) --
@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "integer"}]})
class HeadwindIdField(serializers.JSONField):
    """Headwind sends its device id as text or as a number, and both are read as the same id."""


class HeadwindDeviceInfoSerializer(serializers.Serializer):
    """Headwind MDM's DeviceInfo (com.hmdm.launcher.json.DeviceInfo), as its launcher posts it."""

    deviceId = HeadwindIdField(
        required=False,
        help_text=_("Headwind's id of the device: kept, and used to find it when its serial is a placeholder."),
    )
    number = HeadwindIdField(required=False, help_text=_("The same id, as Headwind's server names it."))
    serial = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=_('Serial number; a placeholder ("unknown"...) is ignored with a warning.'),
    )
    imei = serializers.CharField(
        required=False, allow_blank=True, help_text=_("An invalid IMEI is dropped with a warning.")
    )
    model = serializers.CharField(required=False, allow_blank=True, help_text=_("Used only to enrol a new device."))
    androidVersion = serializers.CharField(required=False, allow_blank=True)
    batteryLevel = serializers.IntegerField(
        required=False, help_text=_("0 to 100; a negative value means unknown, one over 100 is dropped with a warning.")
    )
    launcherVersion = serializers.CharField(required=False, allow_blank=True)
    timestamp = serializers.IntegerField(
        required=False, help_text=_("Epoch milliseconds (or ISO 8601 text); absent: dated when received.")
    )


class AmapiHardwareInfoSerializer(serializers.Serializer):
    serialNumber = serializers.CharField(required=False, allow_blank=True)
    brand = serializers.CharField(required=False, allow_blank=True)
    manufacturer = serializers.CharField(required=False, allow_blank=True)
    model = serializers.CharField(required=False, allow_blank=True)


class AmapiSoftwareInfoSerializer(serializers.Serializer):
    androidVersion = serializers.CharField(required=False, allow_blank=True)
    androidBuildNumber = serializers.CharField(required=False, allow_blank=True)
    securityPatchLevel = serializers.CharField(required=False, allow_blank=True, help_text="YYYY-MM-DD")
    androidDevicePolicyVersionName = serializers.CharField(required=False, allow_blank=True)


class AmapiTelephonyInfoSerializer(serializers.Serializer):
    imei = serializers.CharField(required=False, allow_blank=True)


class AmapiNetworkInfoSerializer(serializers.Serializer):
    imei = serializers.CharField(required=False, allow_blank=True)
    telephonyInfos = AmapiTelephonyInfoSerializer(many=True, required=False)


class AmapiPowerManagementEventSerializer(serializers.Serializer):
    eventType = serializers.CharField(
        required=False, allow_blank=True, help_text=_("Only BATTERY_LEVEL_COLLECTED is read.")
    )
    createTime = serializers.DateTimeField(required=False)
    batteryLevel = serializers.FloatField(required=False)


class AmapiDeviceSerializer(serializers.Serializer):
    """An Android Management API Device resource (enterprises.devices)."""

    name = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=_(
            "enterprises/{enterprise}/devices/{device}: kept as the device's id in the Android Management API."
        ),
    )
    lastStatusReportTime = serializers.DateTimeField(
        required=False, help_text=_("Dates the report (else lastPolicySyncTime).")
    )
    lastPolicySyncTime = serializers.DateTimeField(required=False)
    hardwareInfo = AmapiHardwareInfoSerializer(required=False)
    softwareInfo = AmapiSoftwareInfoSerializer(required=False)
    networkInfo = AmapiNetworkInfoSerializer(required=False)
    powerManagementEvents = AmapiPowerManagementEventSerializer(many=True, required=False)


class PubSubMessageSerializer(serializers.Serializer):
    data = serializers.CharField(help_text=_("The Device resource as base64-encoded JSON."))
    attributes = serializers.DictField(
        child=serializers.CharField(), required=False, help_text=_("notificationType among others.")
    )
    messageId = serializers.CharField(required=False)
    publishTime = serializers.DateTimeField(required=False)


class PubSubPushEnvelopeSerializer(serializers.Serializer):
    """What a Pub/Sub push subscription posts."""

    message = PubSubMessageSerializer()
    subscription = serializers.CharField(required=False)


def _one_or_list(component: str, report: type[serializers.Serializer], *more: Any) -> PolymorphicProxySerializer:
    # Every ingestion endpoint takes one report or a list of them (its items answered one by one, so an
    # item that is not an object is an error in the results, not a 400 for the whole list).
    return PolymorphicProxySerializer(
        component_name=component,
        serializers=[report, report(many=True, min_length=1, max_length=MAX_BATCH), *more],
        resource_type_field_name=None,
        many=False,
    )


_CHECKIN_REQUEST = _one_or_list("CheckInReportOrList", CheckInReportSerializer)
_AMAPI_REQUEST = _one_or_list("AmapiDeviceOrListOrPush", AmapiDeviceSerializer, PubSubPushEnvelopeSerializer)
_AMAPI_REQUEST.alternatives_may_overlap = True  # a push envelope is also a Device with unknown fields
_HEADWIND_REQUEST = _one_or_list("HeadwindDeviceInfoOrList", HeadwindDeviceInfoSerializer)


def _ingest_responses(ok: PolymorphicProxySerializer) -> dict:
    return {
        200: OpenApiResponse(
            ok,
            description=_(
                "A list was sent: one result per report, in order (some may be errors). "
                "A single report already received answers 200 with its ItemResult."
            ),
        ),
        201: OpenApiResponse(ItemResultSerializer, description=_("A single report, stored.")),
        400: OpenApiResponse(
            _INGEST_400,
            description=format_lazy(
                _("A single report with errors, an empty list, a list over {limit} reports, or an unreadable body."),
                limit=MAX_BATCH,
            ),
        ),
        405: OpenApiResponse(ErrorSerializer, description=_("A method other than the ones listed.")),
        413: OpenApiResponse(
            ErrorSerializer, description=_("A body over API_MAX_BODY_BYTES, whatever it holds; nothing was stored.")
        ),
        415: OpenApiResponse(
            ErrorSerializer, description=_("A body that is not JSON (Content-Type: application/json).")
        ),
    }


_INGEST_RESPONSES = _ingest_responses(_INGEST_200)


# --- Views -----------------------------------------------------------------------------------------
class CheckInCursorPagination(FleetPatchCursorPagination):
    """A device's check-ins, newest first by default."""

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        if self.ordering_param not in request.query_params:
            return ("-reported_at", "-id")
        return super().get_ordering(request, queryset, view)


class CheckInsView(ApiViewMixin, GenericAPIView):
    """``POST``: report check-ins (scope ``report``; unknown devices are enrolled with scope ``enrol``).
    ``GET``: one device's check-ins, newest first (scope ``read``)."""

    required_scopes = {"POST": Scope.REPORT, "GET": Scope.READ}
    serializer_class = CheckInSerializer
    pagination_class = CheckInCursorPagination
    ordering_fields = ("reported_at", "id")

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular inspecting the view
            return CheckIn.objects.none()
        organisation_id = self.request.auth.organisation_id
        params = self.request.query_params
        lookups = {name: params[name] for name in ("device", "serial", "imei") if name in params}
        if empty := [name for name, value in lookups.items() if not value]:
            raise exceptions.ValidationError({name: [EMPTY_VALUE_MESSAGE] for name in empty})
        if not lookups:
            raise exceptions.ValidationError(
                {"device": [gettext("Say whose check-ins: ?device=<id>, ?serial=<serial> or ?imei=<imei>.")]}
            )
        devices = Device.objects.filter(organisation_id=organisation_id)
        if "device" in lookups:
            if not lookups["device"].isdigit():
                raise exceptions.ValidationError({"device": [gettext("A device id is a whole number.")]})
            devices = devices.filter(pk=int(lookups["device"]))
        if "serial" in lookups:
            devices = devices.filter(serial=lookups["serial"])
        if "imei" in lookups:
            devices = devices.filter(imei=lookups["imei"])
        device_id = devices.values_list("pk", flat=True).first()
        if device_id is None:
            # Another organisation's device is as absent as one that does not exist.
            raise exceptions.NotFound(gettext("No such device."))
        return CheckIn.objects.filter(device_id=device_id)

    @extend_schema(
        operation_id="checkins_list",
        parameters=[
            OpenApiParameter("device", {"type": "integer", "minimum": 1}, description=_("The device's id.")),
            OpenApiParameter("serial", OpenApiTypes.STR, description=_("The device's serial number.")),
            OpenApiParameter("imei", OpenApiTypes.STR, description=_("The device's IMEI.")),
        ],
        responses=CheckInSerializer(many=True),
    )
    @method_decorator(reads_from_replica)
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        operation_id="checkins_create",
        request=_CHECKIN_REQUEST,
        responses=_INGEST_RESPONSES,
        description=_(
            "One report object, or a JSON list of up to 1,000 of them. Idempotent on "
            "(device, reported_at, source). A report older than the device's last check-in is kept in "
            "history but does not change the device's state."
        ),
        examples=[
            OpenApiExample(
                "One report",
                request_only=True,
                value={
                    "serial": "R58N12ABCDE",
                    "imei": "356938035643809",
                    "model": "Samsung Galaxy XCover 7",
                    "reported_at": "2024-03-01T08:30:00Z",
                    "build_number": "UP1A.231005.007",
                    "android_version": "14",
                    "security_patch_level": "2024-02-01",
                    "battery_level": 81,
                    "battery_health": 92,
                    "battery_cycle_count": 212,
                    "agent_version": "3.2.1",
                },
            )
        ],
    )
    @collector_paused()
    def post(self, request: Request) -> Response:
        items, is_list = _items(request.data)
        return ingest(request, items, parse_native, single=not is_list)


class AmapiIngestView(ApiViewMixin, GenericAPIView):
    """Android Management API ``Device`` resources: one, a list, or a Pub/Sub push envelope."""

    required_scopes = {"POST": Scope.REPORT}
    serializer_class = ItemResultSerializer

    @extend_schema(
        operation_id="ingest_amapi",
        request=_AMAPI_REQUEST,
        responses=_ingest_responses(_AMAPI_200),
        description=_(
            "An Android Management API Device resource (enterprises.devices), a list of them, or a "
            'Pub/Sub push envelope {"message": {"data": "<base64 Device JSON>", "attributes": {...}, '
            '"messageId": "..."}, "subscription": "..."}, answered as the push endpoint answers it. '
            "Notifications that carry no Device (COMMAND, USAGE_LOGS, test) are acknowledged with 200 and ignored; "
            "a permanently invalid envelope is acknowledged and recorded in the rejected messages."
        ),
    )
    @collector_paused()
    def post(self, request: Request) -> Response:
        body = request.data
        if is_pubsub_envelope(body):
            return push_response(request, body)
        items, is_list = _items(body)
        return ingest(request, items, parse_amapi, single=not is_list)


def push_response(request: Request, envelope: dict) -> Response:
    """A Pub/Sub push answered 2xx whatever became of it, except when the database is unavailable (503)."""
    result = pubsub_message_ingest(
        organisation_id=request.auth.organisation_id,
        api_client_id=request.auth.pk,
        envelope=envelope,
        can_enrol=client_has_scope(request, Scope.ENROL),
    )
    if result.item is not None:
        code = status.HTTP_201_CREATED if result.item.status == ItemStatus.CREATED else status.HTTP_200_OK
        return Response(_result(0, result.item), status=code)
    return Response(
        {
            "status": result.status,
            "notification_type": result.notification_type,
            "message_id": result.message_id,
            "errors": result.errors,
            "rejected_message_id": result.rejected_message_id,
        }
    )


_PUSH_DESCRIPTION = _(
    "Every message is acknowledged (2xx) unless a retry can help: a notification without a Device (COMMAND, "
    "USAGE_LOGS, ENTERPRISE_UPGRADE, test, any other type) is ignored, a redelivered messageId stores nothing, "
    "a permanently invalid message is recorded in the rejected messages (GET /api/v1/rejected-messages/). "
    "Only a database outage answers 503, which Pub/Sub retries."
)


class AmapiPushView(ApiViewMixin, GenericAPIView):
    """An API client's own Google Pub/Sub push endpoint, which Pub/Sub calls as it is: authenticated by the
    push secret in the URL or by Google's OIDC token (``fleet.api.pubsub_auth``), never by a FleetPatch token."""

    authentication_classes = [PubSubPushAuthentication]
    required_scopes = {"POST": Scope.REPORT}
    serializer_class = ItemResultSerializer

    @extend_schema(
        operation_id="ingest_amapi_push",
        request=PubSubPushEnvelopeSerializer,
        responses={
            200: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="AmapiPushResult",
                    serializers=[ItemResultSerializer, PubSubAckSerializer],
                    resource_type_field_name=None,
                ),
                description=_("Acknowledged: a check-in already received, or a message ignored or rejected."),
            ),
            201: OpenApiResponse(ItemResultSerializer, description=_("The message's Device, stored as a check-in.")),
            400: OpenApiResponse(_INGEST_400, description=_("The body is not a Pub/Sub push envelope.")),
        },
        description=format_lazy(
            "{}{}",
            _(
                "A Google Pub/Sub push of Android Management API notifications, "
                '{"message": {"data": "<base64 Device JSON>", "attributes": {"notificationType": "..."}, '
                '"messageId": "...", "publishTime": "..."}, "subscription": "..."}. '
            ),
            _PUSH_DESCRIPTION,
        ),
    )
    @collector_paused()
    def post(self, request: Request, push_id: str) -> Response:
        if not is_pubsub_envelope(request.data):
            raise exceptions.ValidationError(
                {"message": [gettext('A Pub/Sub push is a JSON object {"message": {...}, "subscription": "..."}.')]}
            )
        return push_response(request, request.data)


class HeadwindIngestView(ApiViewMixin, GenericAPIView):
    """Headwind MDM device info reports: one or a list."""

    required_scopes = {"POST": Scope.REPORT}
    serializer_class = ItemResultSerializer

    @extend_schema(
        operation_id="ingest_headwind",
        request=_HEADWIND_REQUEST,
        responses=_INGEST_RESPONSES,
        description=_(
            "Headwind MDM's device info (serial, imei, model, androidVersion, batteryLevel, "
            "launcherVersion...; optional timestamp in epoch milliseconds or ISO 8601, else the time it was "
            "received). It carries no build number: the device keeps its last known build."
        ),
    )
    @collector_paused()
    def post(self, request: Request) -> Response:
        items, is_list = _items(request.data)
        received_at = timezone.now()
        return ingest(request, items, lambda item: parse_headwind(item, received_at=received_at), single=not is_list)
