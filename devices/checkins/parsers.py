"""Check-in reports as MDMs send them (FleetPatch's own format, Android Management API, Headwind MDM),
parsed into :class:`devices.checkins.parsers.Report` plus the device's identity, with per-field errors.

Every format is first mapped onto the native field names, then validated by one serializer, so the
rules (an IMEI's check digit, a patch level not in the future...) are the same whatever the source.
Errors on a foreign format name the field as that format spells it (``softwareInfo.securityPatchLevel``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.settings import api_settings

from common.api.fields import AwareDateTimeField, BoundedDateField, StrictCharField
from common.api.parsers import loads_storable_json
from common.dates import EARLIEST_DATE, EARLIEST_PATCH_LEVEL, out_of_range
from common.text import forbidden_character
from devices.checkins.audit import bounded_raw
from devices.choices import CheckInSource
from devices.validators import is_placeholder_id, is_placeholder_serial, luhn_is_valid, validate_imei
from updates.validators import validate_patch_level_not_in_future

# A report may say it was taken a little after the server's clock: device clocks drift.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)

NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY


@dataclasses.dataclass(frozen=True)
class Report:
    """One validated check-in report, whatever format it arrived in."""

    reported_at: dt.datetime
    source: str = CheckInSource.API
    build_number: str = ""
    android_version: str = ""
    security_patch_level: dt.date | None = None
    battery_level_pct: int | None = None
    battery_health_pct: int | None = None
    battery_cycle_count: int | None = None
    agent_version: str = ""
    raw: dict | None = None
    # What the MDM says of the device (AMAPI "state"): "deleted", "lost", "disabled", "active"; "" says nothing.
    management_state: str = ""
    # What validation dropped or doubted without refusing the report (field, as the sender spells it ->
    # reasons: a junk secondary IMEI, a placeholder serial...). Answered in the item's ``warnings``; the
    # payload itself, dropped values included, stays in ``raw``.
    warnings: dict[str, list[str]] | None = None


@dataclasses.dataclass(frozen=True)
class DeviceIdentity:
    """How a report names its device, and what it says of its model (used only to enrol it).

    ``serial`` is empty when the report gave none or a placeholder (``devices.validators``); ``source_id``
    is the MDM's own id of the device in ``source`` (Headwind ``deviceId``, AMAPI ``name``), kept per source
    as a ``DeviceSourceId``. Devices are matched by serial, then IMEI, then source id.
    """

    serial: str = ""
    imei: str | None = None
    # Candidate model names, best first ("Crosscall Core-Z5", "Core-Z5"); resolved case-insensitively.
    model_names: tuple[str, ...] = ()
    source: str = ""
    source_id: str = ""


@dataclasses.dataclass(frozen=True)
class ParsedReport:
    """One item of a request: either a valid report with its device identity, or its field errors."""

    identity: DeviceIdentity | None = None
    report: Report | None = None
    errors: dict[str, list[str]] | None = None

    @property
    def warnings(self) -> dict[str, list[str]] | None:
        return self.report.warnings if self.report is not None else None


class PayloadError(Exception):
    """The request body as a whole cannot be read (bad base64, not JSON, wrong shape)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class CheckInReportSerializer(serializers.Serializer):
    """A check-in report in FleetPatch's own format (``POST /api/v1/checkins/``)."""

    serial = StrictCharField(max_length=64, required=False, allow_blank=True, default="")
    imei = StrictCharField(required=False, allow_null=True, allow_blank=True, default=None)
    model = StrictCharField(
        max_length=300, required=False, allow_blank=True, default="", help_text=_("Used only to enrol a new device.")
    )
    reported_at = AwareDateTimeField()
    build_number = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    android_version = StrictCharField(max_length=20, required=False, allow_blank=True, default="")
    security_patch_level = BoundedDateField(required=False, allow_null=True, default=None)
    battery_level = serializers.IntegerField(min_value=0, max_value=100, required=False, allow_null=True, default=None)
    battery_health = serializers.IntegerField(min_value=0, max_value=100, required=False, allow_null=True, default=None)
    battery_cycle_count = serializers.IntegerField(
        min_value=0, max_value=2_147_483_647, required=False, allow_null=True, default=None
    )
    agent_version = StrictCharField(max_length=50, required=False, allow_blank=True, default="")

    def validate_imei(self, value: str | None) -> str | None:
        if not value:
            return None
        try:
            validate_imei(value)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from None
        return value

    def validate_reported_at(self, value: dt.datetime) -> dt.datetime:
        if value > timezone.now() + FUTURE_TOLERANCE:
            raise serializers.ValidationError(
                gettext("A report cannot be dated in the future (%(value)s).") % {"value": value.isoformat()}
            )
        return value

    def validate_security_patch_level(self, value: dt.date | None) -> dt.date | None:
        if value is not None:
            try:
                validate_patch_level_not_in_future(value)
            except DjangoValidationError as error:
                raise serializers.ValidationError(error.messages) from None
        return value


# One instance validates every item: instantiating a serializer per item costs more than validating it.
_NATIVE = CheckInReportSerializer()


# Fields that identify nothing else and are not the report's point: a bad value is dropped with a warning
# and the rest of the report stored. In every format the IMEI (the serial or the MDM's id still names the
# device); from an MDM FleetPatch cannot correct (AMAPI, Headwind) the battery level too. Everything else
# (the date, the patch level, the build) stays an error: storing the report without it would mislead.
NATIVE_DROPPABLE = frozenset({"imei"})
FOREIGN_DROPPABLE = frozenset({"imei", "battery_level"})
# Text fields that are not the report's point either: one holding a control character (MDM junk) is dropped
# with a warning rather than losing the report; anything else wrong with them stays an error.
TEXT_DROPPABLE = frozenset({"model", "agent_version"})


def _validate(
    data: Any, *, droppable: frozenset[str] = NATIVE_DROPPABLE
) -> tuple[dict | None, dict[str, list[str]] | None, dict[str, list[str]] | None]:
    """(attrs, dropped, errors), field names native: ``dropped`` maps each field left out of ``attrs``
    (set to None) to why; ``errors`` is set when the report cannot be stored at all."""
    if not isinstance(data, dict):
        return None, None, {NON_FIELD: [gettext("Each report is a JSON object.")]}
    attrs = _fast_validate(data)
    if attrs is not None:
        return attrs, None, None
    try:
        return _NATIVE.run_validation(data), None, None
    except serializers.ValidationError as error:
        errors = _messages(error)
    dropped = {
        field: reasons
        for field, reasons in errors.items()
        if field in droppable
        or (field in TEXT_DROPPABLE and isinstance(data.get(field), str) and forbidden_character(data[field]))
    }
    if not dropped or len(dropped) < len(errors):
        return None, None, errors
    try:
        # Only droppable fields were wrong: validated again without them (a slow path, for bad items only).
        blanks = {field: "" if field in TEXT_DROPPABLE else None for field in dropped}
        return _NATIVE.run_validation({**data, **blanks}), dropped, None
    except serializers.ValidationError as error:  # pragma: no cover - the fields left were valid above
        return None, None, _messages(error)


def _messages(error: serializers.ValidationError) -> dict[str, list[str]]:
    detail = error.detail if isinstance(error.detail, dict) else {NON_FIELD: error.detail}
    return {field: [str(message) for message in _as_list(messages)] for field, messages in detail.items()}


def _renamed(messages: dict[str, list[str]] | None, rename: Callable[[str], str] | None) -> dict | None:
    if not messages or rename is None:
        return messages or None
    return {rename(field): reasons for field, reasons in messages.items()}


# (field, max length) of the text fields, as the serializer declares them.
_TEXT_FIELDS = tuple(
    (name, field.max_length)
    for name, field in _NATIVE.fields.items()
    if isinstance(field, serializers.CharField) and name != "imei"
)
_INT_FIELDS = tuple(
    (name, field.min_value, field.max_value)
    for name, field in _NATIVE.fields.items()
    if isinstance(field, serializers.IntegerField)
)


def _fast_validate(data: dict) -> dict | None:
    """The serializer's result for a report that is plainly valid, in a fraction of its time; None for
    anything less plain (a number sent as text, a bad value...), which the serializer then validates and
    explains. Bulk requests are almost all plainly valid, and validation was a third of their cost."""
    attrs: dict[str, Any] = {}
    for name, max_length in _TEXT_FIELDS:
        value = data.get(name, "")
        if not isinstance(value, str):
            return None
        value = value.strip()
        # Not printable (a control character, a return, even a tab): the serializer cleans or refuses it.
        if (max_length is not None and len(value) > max_length) or not value.isprintable():
            return None
        attrs[name] = value
    imei = data.get("imei")
    if imei is not None and not isinstance(imei, str):
        return None
    imei = imei.strip() if imei else None
    # The validator's rules in short: 15 digits, not one digit repeated (000000000000000), Luhn.
    if imei and not (len(imei) == 15 and imei.isdigit() and imei != imei[0] * 15 and luhn_is_valid(imei)):
        return None
    attrs["imei"] = imei or None
    for name, low, high in _INT_FIELDS:
        value = data.get(name)
        if value is not None and (type(value) is not int or not low <= value <= high):
            return None
        attrs[name] = value
    reported_at = data.get("reported_at")
    try:
        parsed = parse_datetime(reported_at) if isinstance(reported_at, str) else None
    except ValueError:
        return None
    now = timezone.now()
    if parsed is None or timezone.is_naive(parsed) or parsed > now + FUTURE_TOLERANCE:
        return None
    try:
        attrs["reported_at"] = parsed.astimezone(dt.UTC)
    except OverflowError:  # "0001-01-01T00:00:00+05:00" is before year 1 in UTC: the serializer explains
        return None
    if attrs["reported_at"].date() < EARLIEST_DATE:
        return None
    level = data.get("security_patch_level")
    if level is not None:
        try:
            level = parse_date(level) if isinstance(level, str) else None
        except ValueError:
            return None
        if level is None or not EARLIEST_PATCH_LEVEL <= level <= now.date() + dt.timedelta(days=1):
            return None
    attrs["security_patch_level"] = level
    return attrs


def _as_list(messages: Any) -> list:
    return messages if isinstance(messages, list) else [messages]


def _to_parsed(
    attrs: dict | None,
    *,
    source: str,
    raw: Any,
    model_names: tuple[str, ...] | None = None,
    source_id: Any = None,
    dropped: dict[str, list[str]] | None = None,
    errors: dict[str, list[str]] | None = None,
    rename: Callable[[str], str] | None = None,
    source_id_field: str = "",
) -> ParsedReport:
    """The report and its device identity, or the errors; field names in warnings and errors as the
    sender spells them (``rename``). A placeholder serial is dropped with a warning; a report left with
    no serial, no IMEI and no MDM id of its device identifies nothing and is refused, naming what it gave."""
    if errors or attrs is None:
        return ParsedReport(errors=_renamed(errors, rename))
    warnings = dict(dropped or {})
    serial = attrs["serial"].strip()
    if serial and is_placeholder_serial(serial):
        warnings["serial"] = [
            gettext("%(value)r is a placeholder some phones report, not a serial number: it is ignored.")
            % {"value": serial}
        ]
        serial = ""
    external = _text(source_id)[:255]
    if external and is_placeholder_id(external):
        warnings[source_id_field] = [
            gettext("%(value)r is a placeholder, not an id of the device: it is ignored.") % {"value": external}
        ]
        external = ""
    if external and (reason := forbidden_character(external)):
        warnings[source_id_field] = [gettext("%(reason)s: it is ignored.") % {"reason": reason}]
        external = ""
    if model_names and (reason := next(filter(None, map(forbidden_character, model_names)), None)):
        warnings["model"] = [gettext("%(reason)s: it is ignored.") % {"reason": reason}]
        model_names = ()
    if not serial and not attrs["imei"] and not external:
        missing = {
            field: reasons for field, reasons in warnings.items() if field in ("serial", "imei", source_id_field)
        }
        return ParsedReport(
            errors=_renamed(missing or {"serial": [gettext("Give the device's serial number or its IMEI.")]}, rename)
        )
    identity = DeviceIdentity(
        serial=serial,
        imei=attrs["imei"],
        model_names=model_names if model_names is not None else ((attrs["model"].strip(),) if attrs["model"] else ()),
        source=source if external else "",
        source_id=external,
    )
    report = Report(
        reported_at=attrs["reported_at"],
        source=source,
        build_number=attrs["build_number"].strip(),
        android_version=attrs["android_version"].strip(),
        security_patch_level=attrs["security_patch_level"],
        battery_level_pct=attrs["battery_level"],
        battery_health_pct=attrs["battery_health"],
        battery_cycle_count=attrs["battery_cycle_count"],
        agent_version=attrs["agent_version"].strip(),
        raw=bounded_raw(raw),
        warnings=_renamed(warnings, rename),
    )
    return ParsedReport(identity=identity, report=report)


# --- Native ----------------------------------------------------------------------------------------
def parse_native(item: Any) -> ParsedReport:
    attrs, dropped, errors = _validate(item)
    return _to_parsed(attrs, source=CheckInSource.API, raw=item, dropped=dropped, errors=errors)


# --- Android Management API -----------------------------------------------------------------------
# Where each native field comes from in an AMAPI Device resource, for error messages.
AMAPI_FIELDS = {
    "serial": "hardwareInfo.serialNumber",
    "imei": "networkInfo.imei",
    "model": "hardwareInfo.model",
    "reported_at": "lastStatusReportTime",
    "build_number": "softwareInfo.androidBuildNumber",
    "android_version": "softwareInfo.androidVersion",
    "security_patch_level": "softwareInfo.securityPatchLevel",
    "battery_level": "powerManagementEvents.batteryLevel",
    "agent_version": "softwareInfo.androidDevicePolicyVersionName",
}


def _amapi_field(field: str) -> str:
    return AMAPI_FIELDS.get(field, field)


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _newest_battery_level(events: Any) -> Any:
    """The battery level of the newest BATTERY_LEVEL_COLLECTED event (RFC 3339 times sort as text only
    when they share a format, so they are parsed)."""
    newest, newest_at = None, None
    for event in events if isinstance(events, list) else ():
        if not isinstance(event, dict) or event.get("eventType") != "BATTERY_LEVEL_COLLECTED":
            continue
        level = event.get("batteryLevel")
        # bool is an int, and 1e400 reads as infinity, which no level can be rounded from.
        if not isinstance(level, int | float) or isinstance(level, bool) or not math.isfinite(level):
            continue
        at = _parse_time(event.get("createTime")) or dt.datetime.min.replace(tzinfo=dt.UTC)
        if newest_at is None or at >= newest_at:
            newest, newest_at = event["batteryLevel"], at
    return None if newest is None else round(newest)


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    return parsed if parsed is not None and timezone.is_aware(parsed) else None


# AMAPI Device states FleetPatch records (Report.management_state); the others (PROVISIONING...) say nothing.
AMAPI_STATES = {"ACTIVE": "active", "LOST": "lost", "DISABLED": "disabled", "DELETED": "deleted"}


def _amapi_state(device: dict) -> str:
    """``appliedState`` (what the device applied) before ``state`` (what was asked); DELETED in either wins."""
    states = [device.get("appliedState"), device.get("state")]
    if "DELETED" in states:
        return AMAPI_STATES["DELETED"]
    return next((AMAPI_STATES[s] for s in states if isinstance(s, str) and s in AMAPI_STATES), "")


def parse_amapi(device: Any, *, published_at: str | None = None) -> ParsedReport:
    """An Android Management API ``Device`` resource (enterprises.devices); unknown fields are ignored.

    ``lastStatusReportTime`` dates the report (then ``lastPolicySyncTime``, then ``enrollmentTime``: an
    ENROLLMENT notification's Device often has only that, then the Pub/Sub message's ``published_at``);
    the battery level is that of the newest ``BATTERY_LEVEL_COLLECTED`` power management event; ``state``
    (``appliedState`` first) becomes the report's management state; ``softwareInfo.systemUpdateInfo`` and the
    rest are kept in the raw payload.
    """
    if not isinstance(device, dict):
        return ParsedReport(errors={NON_FIELD: [gettext("An Android Management API Device is a JSON object.")]})
    hardware = _obj(device.get("hardwareInfo"))
    software = _obj(device.get("softwareInfo"))
    network = _obj(device.get("networkInfo"))
    imei = network.get("imei")
    if not imei:
        # Dual-SIM devices report each IMEI under telephonyInfos in recent API revisions.
        imei = next(
            (
                _text(t.get("imei"))
                for t in _list(network.get("telephonyInfos"))
                if isinstance(t, dict) and t.get("imei")
            ),
            None,
        )
    native = {
        "serial": _text(hardware.get("serialNumber")),
        "imei": _text(imei) or None,
        "reported_at": device.get("lastStatusReportTime")
        or device.get("lastPolicySyncTime")
        or device.get("enrollmentTime")
        or published_at,
        "build_number": _text(software.get("androidBuildNumber")),
        "android_version": _text(software.get("androidVersion")),
        "security_patch_level": software.get("securityPatchLevel") or None,
        "battery_level": _newest_battery_level(device.get("powerManagementEvents")),
        "agent_version": _text(software.get("androidDevicePolicyVersionName"))[:50],
    }
    attrs, dropped, errors = _validate(native, droppable=FOREIGN_DROPPABLE)
    model = _text(hardware.get("model"))
    names = tuple(
        dict.fromkeys(
            name
            for name in (
                f"{_text(hardware.get('brand'))} {model}".strip(),
                f"{_text(hardware.get('manufacturer'))} {model}".strip(),
                model,
            )
            if name and model
        )
    )
    parsed = _to_parsed(
        attrs,
        source=CheckInSource.AMAPI,
        raw=device,
        model_names=names,
        # enterprises/{enterprise}/devices/{device}: the resource's name is the MDM's id of the device.
        source_id=device.get("name"),
        source_id_field="name",
        dropped=dropped,
        errors=errors,
        rename=_amapi_field,
    )
    if parsed.report is None:
        return parsed
    state = _amapi_state(device)
    return dataclasses.replace(parsed, report=dataclasses.replace(parsed.report, management_state=state))


def decode_pubsub(envelope: dict) -> Any:
    """The Device JSON inside a Pub/Sub push message (``message.data``, base64), with its message id."""
    message = envelope.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("data"), str):
        raise PayloadError({"message.data": [gettext("A Pub/Sub push message carries its payload in message.data.")]})
    try:
        data = base64.b64decode(message["data"], validate=True)
    except (binascii.Error, ValueError):
        try:
            data = base64.urlsafe_b64decode(message["data"])
        except (binascii.Error, ValueError):
            raise PayloadError({"message.data": [gettext("message.data is not valid base64.")]}) from None
    try:
        # The API's own rules for a JSON body (no NaN, no infinity, no NUL, no lone surrogate): what is
        # inside the envelope is stored just like a body is.
        decoded = loads_storable_json(data.decode("utf-8"))
    except (UnicodeError, ValueError, RecursionError):
        raise PayloadError({"message.data": [gettext("message.data does not decode to JSON.")]}) from None
    if isinstance(decoded, dict):
        # Pub/Sub delivers at least once: the message id in the audit copy tells a redelivery apart.
        decoded = {**decoded, "_pubsub": {"messageId": message.get("messageId") or message.get("message_id")}}
    return decoded


def is_pubsub_envelope(body: Any) -> bool:
    """A Pub/Sub push (``{"message": {...}, "subscription": ...}``), ``data`` or not (a test message has none);
    a Device resource has no ``message``."""
    return isinstance(body, dict) and isinstance(body.get("message"), dict)


# --- Headwind MDM ----------------------------------------------------------------------------------
HEADWIND_FIELDS = {
    "serial": "serial",
    "imei": "imei",
    "reported_at": "timestamp",
    "android_version": "androidVersion",
    "battery_level": "batteryLevel",
    "agent_version": "launcherVersion",
}


def _headwind_time(value: Any, *, received_at: dt.datetime) -> Any:
    # Headwind's Java clients send epoch milliseconds; an ISO string is accepted too.
    if value is None or value == "":
        return received_at
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            return "invalid"
    return value


def parse_headwind(info: Any, *, received_at: dt.datetime) -> ParsedReport:
    """Headwind MDM's device info report (``DeviceInfo``: deviceId, serial, imei, model, androidVersion,
    batteryLevel, launcherVersion...). It has no build number, so the device keeps its last known
    build; it is dated by ``timestamp`` when present, else by when it was received. ``deviceId`` (or
    ``number``, as the server names it) is kept as the device's Headwind id: phones that all send the
    placeholder serial ``unknown`` stay apart by it."""
    if not isinstance(info, dict):
        return ParsedReport(errors={NON_FIELD: [gettext("A Headwind device info report is a JSON object.")]})
    reported = _headwind_time(info.get("timestamp", info.get("ts")), received_at=received_at)
    battery = info.get("batteryLevel")
    native = {
        "serial": _text(info.get("serial")),
        "imei": _text(info.get("imei")) or None,
        "reported_at": reported.isoformat() if isinstance(reported, dt.datetime) else reported,
        "android_version": _text(info.get("androidVersion")),
        "battery_level": battery if isinstance(battery, int) and battery >= 0 else None,
        "agent_version": _text(info.get("launcherVersion"))[:50],
    }
    attrs, dropped, errors = _validate(native, droppable=FOREIGN_DROPPABLE)
    if isinstance(reported, dt.datetime) and reported.date() < EARLIEST_DATE and (reason := out_of_range(reported)):
        # A phone whose clock was reset (epoch 0 is 1970) took the report about when it was sent: dated on receipt.
        attrs, dropped, errors = _validate(
            {**native, "reported_at": received_at.isoformat()}, droppable=FOREIGN_DROPPABLE
        )
        dropped = {**(dropped or {}), "reported_at": [gettext("%(reason)s: it is ignored.") % {"reason": reason}]}
    model = _text(info.get("model"))
    # The launcher sends its id as deviceId; the server's own API and exports call it number.
    id_field = "deviceId" if _text(info.get("deviceId")) else "number"
    return _to_parsed(
        attrs,
        source=CheckInSource.HEADWIND,
        raw=info,
        model_names=(model,) if model else (),
        source_id=_headwind_id(info.get(id_field)),
        source_id_field=id_field,
        dropped=dropped,
        errors=errors,
        rename=_headwind_field,
    )


def _headwind_field(field: str) -> str:
    return HEADWIND_FIELDS.get(field, field)


def _headwind_id(value: Any) -> str:
    # Headwind's device number is text; a number sent as JSON number is the same id.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)
