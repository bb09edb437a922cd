from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.api.fields import BoundedDateTimeField, RejectUnknownFieldsMixin, StrictCharField
from devices.choices import BatteryEventKind, BatteryStatus, ComplianceStatus
from devices.models import BatteryEvent, Device
from devices.validators import validate_imei, validate_serial
from fleet.api.serializers import FleetSummarySerializer
from fleet.models import Fleet
from updates.api.serializers import BuildSummarySerializer, DeviceModelSummarySerializer
from updates.choices import Channel
from updates.models import DeviceModel


class DeviceSerializer(serializers.ModelSerializer):
    """A device as the API shows it (needs DEVICE_SELECT_RELATED)."""

    # allow_null: the schema must say these links can be null (no model, fleet or known build yet).
    model = DeviceModelSummarySerializer(read_only=True, allow_null=True)
    fleet = FleetSummarySerializer(read_only=True, allow_null=True)
    current_build = BuildSummarySerializer(read_only=True, allow_null=True)
    target_build = BuildSummarySerializer(source="latest_build", read_only=True, allow_null=True)
    patch_age_days = serializers.SerializerMethodField(help_text=_("Days since its security patch level."))
    waived = serializers.BooleanField(source="is_waived", read_only=True)

    class Meta:
        model = Device
        fields = [
            "id",
            "serial",
            "imei",
            "asset_tag",
            "assignee",
            "channel",
            "model",
            "reported_model",
            "fleet",
            "enrolled_at",
            "retired_at",
            "management_state",
            "management_state_since",
            "current_build",
            "reported_build_number",
            "android_version",
            "security_patch_level",
            "patch_age_days",
            "last_check_in_at",
            "battery_level_pct",
            "battery_health_pct",
            "battery_cycle_count",
            "battery_installed_on",
            "battery_status",
            "compliance_status",
            "status_since",
            "behind_since",
            "target_build",
            "builds_behind",
            "waived",
            "identity_conflict",
            "identity_conflict_at",
        ]
        read_only_fields = fields

    def get_patch_age_days(self, device: Device) -> int | None:
        return device.patch_age_days()


def _is_id_or_text(data: Any) -> bool:
    # NUL is refused like DRF's CharField does: PostgreSQL cannot even compare text with it.
    if isinstance(data, str):
        return bool(data.strip()) and "\x00" not in data
    return isinstance(data, int) and not isinstance(data, bool)


class PercentFormatMessagesMixin:
    """Fills error messages written with ``%(name)s`` placeholders, the gettext convention FleetPatch's
    translations use: DRF's own ``fail()`` calls ``str.format``, which left "%(value)s" in the answer."""

    error_messages: dict[str, Any]

    def fail(self, key: str, **kwargs: Any) -> None:
        raise serializers.ValidationError(str(self.error_messages[key]) % kwargs, code=key)


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class FlexibleRelatedField(PercentFormatMessagesMixin, serializers.Field):
    """A related row given by id (a number) or by a natural key (a string): a fleet's slug, a model's name."""

    default_error_messages = {
        "does_not_exist": _("No %(what)s matches %(value)s."),
        "invalid": _("Give an id (a whole number) or a %(natural_key)s (text)."),
    }

    def __init__(self, *, what: str, key: str, **kwargs: Any) -> None:
        self.what = what
        self.key = key
        super().__init__(**kwargs)

    def lookup(self, value: int | str) -> Any:
        raise NotImplementedError

    def to_internal_value(self, data: Any) -> Any:
        if not _is_id_or_text(data):
            self.fail("invalid", natural_key=self.key)
        found = self.lookup(data)
        if found is None:
            self.fail("does_not_exist", what=self.what, value=repr(data))
        return found

    def to_representation(self, value: Any) -> Any:
        return value.pk


class FleetField(FlexibleRelatedField):
    """A fleet of the client's organisation, by id or slug; another organisation's fleet does not exist."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(what=_("fleet"), key=_("slug"), **kwargs)

    def lookup(self, value: int | str) -> Fleet | None:
        fleets = Fleet.objects.filter(organisation_id=self.context["organisation_id"])
        if isinstance(value, int):
            return fleets.filter(pk=value).first()
        # A slug may be all digits: "42" is the fleet with id 42, or else the fleet with slug "42".
        if value.isdigit() and len(value) <= 18:
            return fleets.filter(Q(pk=int(value)) | Q(slug=value)).order_by("pk").first()
        return fleets.filter(slug=value).first()


class DeviceModelField(FlexibleRelatedField):
    """A model by id, or by name as check-ins and imports name it ("Manufacturer Model", name, slug)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(what=_("device model"), key=_("name"), **kwargs)

    def lookup(self, value: int | str) -> DeviceModel | None:
        if isinstance(value, int):
            return DeviceModel.objects.select_related("manufacturer").filter(pk=value).first()
        # The catalogue's one rule for names; a name two makers share is ambiguous (None): give the id.
        return DeviceModel.objects.resolve(value)

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as error:
            if not isinstance(data, str):
                raise
            # An unknown name: the nearest ones the catalogue knows ("did you mean ...?").
            hint = DeviceModel.objects.names().did_you_mean(data)
            raise serializers.ValidationError([" ".join(filter(None, [*map(str, error.detail), hint]))]) from None


class DeviceEnrolSerializer(serializers.Serializer):
    serial = StrictCharField(max_length=64, validators=[validate_serial])
    imei = StrictCharField(max_length=15, required=False, allow_null=True, allow_blank=True, validators=[validate_imei])
    asset_tag = StrictCharField(max_length=64, required=False, allow_blank=True, default="")
    assignee = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    model = DeviceModelField(
        required=False, allow_null=True, help_text=_('Device model: id, slug or "Manufacturer Model" name.')
    )
    fleet = FleetField(required=False, allow_null=True, help_text=_("Fleet of your organisation: id or slug."))
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.STABLE)


class DeviceUpdateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """``PATCH /devices/{id}/``: assignment fields only; compliance and reported state are read-only."""

    fleet = FleetField(required=False, allow_null=True, help_text=_("Fleet of your organisation: id or slug."))
    asset_tag = StrictCharField(max_length=64, required=False, allow_blank=True)
    assignee = StrictCharField(max_length=200, required=False, allow_blank=True)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    model = DeviceModelField(
        required=False,
        help_text=_(
            'Device model: id, or any name the catalogue knows it by ("Manufacturer Model", name, slug, alias).'
        ),
    )


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class DeviceRefField(PercentFormatMessagesMixin, serializers.Field):
    """A device of the client's organisation by id (a number) or serial (text)."""

    default_error_messages = {
        "does_not_exist": _("No device of your organisation matches %(value)s."),
        "invalid": _("Give the device id (a whole number) or its serial number (text)."),
    }

    def to_internal_value(self, data: Any) -> Device:
        if not _is_id_or_text(data):
            self.fail("invalid")
        devices = Device.objects.filter(organisation_id=self.context["organisation_id"])
        device = devices.filter(pk=data).first() if isinstance(data, int) else devices.filter(serial=data).first()
        if device is None:
            self.fail("does_not_exist", value=repr(data))
        return device

    def to_representation(self, value: Device) -> int:
        return value.pk


class BatteryEventSerializer(serializers.ModelSerializer):
    device = serializers.SerializerMethodField()

    class Meta:
        model = BatteryEvent
        fields = ["id", "device", "kind", "occurred_at", "part_serial", "health_pct", "reason", "performed_by"]

    def get_device(self, event: BatteryEvent) -> dict[str, Any]:
        return {"id": event.device_id, "serial": event.device.serial}


class BatteryEventCreateSerializer(serializers.Serializer):
    device = DeviceRefField(help_text=_("Device id, or its serial number."))
    kind = serializers.ChoiceField(choices=BatteryEventKind.choices, default=BatteryEventKind.REPLACEMENT)
    occurred_at = BoundedDateTimeField()
    part_serial = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    health_pct = serializers.IntegerField(min_value=0, max_value=100, required=False, allow_null=True)
    reason = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    performed_by = StrictCharField(max_length=200, required=False, allow_blank=True, default="")

    def validate_occurred_at(self, value: dt.datetime) -> dt.datetime:
        if value > timezone.now() + dt.timedelta(minutes=5):
            raise serializers.ValidationError(gettext("A battery event cannot be in the future."))
        return value

    def validate(self, attrs: dict) -> dict:
        if attrs.get("kind") == BatteryEventKind.REPLACEMENT and attrs.get("health_pct") is not None:
            raise serializers.ValidationError(
                {"health_pct": [gettext("A replacement carries no reading; send a reading.")]}
            )
        return attrs


class CountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField(), help_text=", ".join(ComplianceStatus.values))
    by_battery_status = serializers.DictField(
        child=serializers.IntegerField(), help_text=", ".join(BatteryStatus.values)
    )
    waived = serializers.IntegerField()


class FleetCountsSerializer(CountsSerializer):
    fleet = FleetSummarySerializer(allow_null=True, help_text=_("Null: devices in no fleet."))


class ComplianceSummarySerializer(serializers.Serializer):
    organisation = CountsSerializer()
    fleets = FleetCountsSerializer(many=True)
