"""Device list exports, streamed: rows are read in chunks and written as they come, so exporting
200,000 devices holds one chunk in memory, not the list."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# (header, value path) — paths follow foreign keys, read with values_list in one query per chunk.
DEVICE_COLUMNS: tuple[tuple[str, str], ...] = (
    (_("serial number"), "serial"),
    (_("IMEI"), "imei"),
    (_("asset tag"), "asset_tag"),
    (_("assignee"), "assignee"),
    (_("organisation"), "organisation__name"),
    (_("fleet"), "fleet__name"),
    (_("manufacturer"), "model__manufacturer__name"),
    (_("model"), "model__name"),
    (_("update channel"), "channel"),
    (_("compliance status"), "compliance_status"),
    (_("status since"), "status_since"),
    (_("behind since"), "behind_since"),
    (_("builds behind"), "builds_behind"),
    (_("waived"), "is_waived"),
    (_("current build"), "reported_build_number"),
    (_("target build"), "latest_build__build_number"),
    (_("security patch level"), "security_patch_level"),
    (_("Android version"), "android_version"),
    (_("last check-in"), "last_check_in_at"),
    (_("battery status"), "battery_status"),
    (_("battery health (%)"), "battery_health_pct"),
    (_("battery installed on"), "battery_installed_on"),
    (_("retired at"), "retired_at"),
)
CHUNK = 2000


class _Echo:
    """A file-like object whose write returns the line, for csv.writer inside a streaming response."""

    def write(self, value: str) -> str:
        return value


def _cell(value: object) -> object:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def device_csv_lines(queryset: QuerySet) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff"  # a BOM, so spreadsheet programs read the UTF-8 (accents of French names) right
    yield writer.writerow([str(header) for header, _path in DEVICE_COLUMNS])
    rows = queryset.order_by("pk").values_list(*(path for _header, path in DEVICE_COLUMNS))
    for row in rows.iterator(chunk_size=CHUNK):
        yield writer.writerow([_cell(value) for value in row])


def device_csv_response(queryset: QuerySet) -> StreamingHttpResponse:
    filename = f"fleetpatch-devices-{timezone.now():%Y%m%d-%H%M}.csv"
    response = StreamingHttpResponse(device_csv_lines(queryset), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
