from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class ComplianceStatus(models.TextChoices):
    """Ordered from best to worst; see README "Compliance statuses" for the precedence."""

    UP_TO_DATE = "up_to_date", _("Up to date")
    UPDATE_PENDING = "update_pending", _("Update pending")
    BEHIND = "behind", _("Behind")
    CRITICAL = "critical", _("Critical")
    UNSUPPORTED = "unsupported", _("Unsupported")
    SILENT = "silent", _("Silent")
    UNKNOWN = "unknown", _("Unknown")


class BatteryStatus(models.TextChoices):
    OK = "ok", _("OK")
    DUE = "due", _("Due")
    REPLACE_NOW = "replace_now", _("Replace now")
    UNKNOWN = "unknown", _("Unknown")


class CheckInSource(models.TextChoices):
    API = "api", _("REST API")
    AMAPI = "amapi", _("Android Management API")
    HEADWIND = "headwind", _("Headwind MDM")
    CSV = "csv", _("Spreadsheet import")
    DEMO = "demo", _("Demo data")


class BatteryEventKind(models.TextChoices):
    REPLACEMENT = "replacement", _("Replacement")
    READING = "reading", _("Health reading")


class ImportKind(models.TextChoices):
    DEVICES = "devices", _("Devices")
    BATTERY_REPLACEMENTS = "battery_replacements", _("Battery replacements")


class ImportStatus(models.TextChoices):
    PENDING = "pending", _("Reading the file")
    PREVIEWED = "previewed", _("Waiting for confirmation")
    CONFIRMED = "confirmed", _("Confirmed, waiting to be imported")
    APPLYING = "applying", _("Importing")
    DONE = "done", _("Imported")
    FAILED = "failed", _("Unreadable file")


class SweepStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class SweepRangeStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ObservedBuildState(models.TextChoices):
    OBSERVED = "observed", _("Observed")
    PROMOTED = "promoted", _("Promoted to the catalogue")
    REVOKED = "revoked", _("Revoked")


class ManagementState(models.TextChoices):
    """What the MDM says of a device besides its reports (Android Management API ``state``); empty: active.
    A deleted device is retired rather than given a state."""

    ACTIVE = "", _("Active")
    LOST = "lost", _("Lost")
    DISABLED = "disabled", _("Disabled")


class RejectionKind(models.TextChoices):
    """Why a message was acknowledged without being applied (or, for WARNING, applied with something dropped)."""

    PAYLOAD = "payload", _("Unreadable payload")
    DEVICE = "device", _("Invalid device report")
    INGEST = "ingest", _("Refused by the ingestion")
    WARNING = "warning", _("Stored, with a field dropped or in doubt")
