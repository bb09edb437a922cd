"""Exports of the big lists (devices, check-ins, status history) as CSV and XLSX, with memory that does not grow
with the number of rows.

Both formats read their rows with one ``values_list`` query iterated in chunks (a server-side cursor on
PostgreSQL), following foreign keys in the same query, so an export is one query whatever its size:

- **CSV** is written as the rows come, in a ``StreamingHttpResponse``: the download starts at once.
- **XLSX** is a zip archive, whose directory is written last: it cannot be sent while it is being written.
  openpyxl's write-only workbook writes each appended row to a temporary file; saving zips that file into a
  ``SpooledTemporaryFile`` (in memory up to ``XLSX_SPOOL_BYTES``, on disk beyond), which a ``FileResponse``
  then sends in chunks. The rows are never all in memory; the download starts once the file is complete.

Headers follow the user's language. Values are data, not prose: enum values (``behind``) stay as stored, as in the
API. CSV dates are ISO 8601 (times with their UTC offset); XLSX dates are real dates with an ISO number format,
times in ``TIME_ZONE`` (Excel has no time zones). A French user gets a semicolon-separated CSV, as Excel in French
expects (its decimal separator is the comma); every CSV starts with a UTF-8 BOM so Excel reads accents right.
A text cell starting with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) is prefixed with ``'`` so that
no spreadsheet runs it as a formula: serials, asset tags and assignees come from people and MDMs.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import enum
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import formats, timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from common.db_router import replica_reads, stream_from_replica
from common.text import inert_cell, xlsx_text

# Rows fetched per round trip, and written per chunk of the CSV stream (one socket write, not one per line).
CHUNK = 2000
# An XLSX sheet holds 1,048,576 rows, the header included.
XLSX_MAX_ROWS = 1_048_575
XLSX_SPOOL_BYTES = 1024 * 1024
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSX_DATE_FORMAT = "yyyy-mm-dd"
XLSX_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
# What a spreadsheet may take for the start of a formula (OWASP's list for CSV injection).


class Kind(enum.Enum):
    """How a column's values are written: as text, or as a number, truth value or date a spreadsheet can sort."""

    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"


@dataclasses.dataclass(frozen=True)
class Column:
    header: str | Promise
    #: ORM path read with ``values_list``; a path through a foreign key joins in the same query.
    path: str
    kind: Kind = Kind.TEXT


@dataclasses.dataclass(frozen=True)
class ExportTable:
    """The columns of one export, and the stem of its file name."""

    name: str
    columns: tuple[Column, ...]

    def headers(self) -> list[str]:
        """The headers in the active language: call it in the view, before the response streams."""
        return [str(column.header) for column in self.columns]

    def rows(self, queryset: QuerySet) -> Iterator[tuple[Any, ...]]:
        values = queryset.values_list(*(column.path for column in self.columns))
        return values.iterator(chunk_size=CHUNK)


DEVICES = ExportTable(
    "devices",
    (
        Column(_("serial number"), "serial"),
        Column(_("IMEI"), "imei"),
        Column(_("asset tag"), "asset_tag"),
        Column(_("assignee"), "assignee"),
        Column(_("organisation"), "organisation__name"),
        Column(_("fleet"), "fleet__name"),
        Column(_("manufacturer"), "model__manufacturer__name"),
        Column(_("model"), "model__name"),
        Column(_("update channel"), "channel"),
        Column(_("compliance status"), "compliance_status"),
        Column(_("status since"), "status_since", Kind.DATETIME),
        Column(_("behind since"), "behind_since", Kind.DATE),
        Column(_("builds behind"), "builds_behind", Kind.NUMBER),
        Column(_("waived"), "is_waived", Kind.BOOLEAN),
        Column(_("current build"), "reported_build_number"),
        Column(_("target build"), "latest_build__build_number"),
        Column(_("security patch level"), "security_patch_level", Kind.DATE),
        Column(_("Android version"), "android_version"),
        Column(_("last check-in"), "last_check_in_at", Kind.DATETIME),
        Column(_("battery status"), "battery_status"),
        Column(_("battery health (%)"), "battery_health_pct", Kind.NUMBER),
        Column(_("battery installed on"), "battery_installed_on", Kind.DATE),
        Column(_("retired at"), "retired_at", Kind.DATETIME),
    ),
)

CHECK_INS = ExportTable(
    "check-ins",
    (
        Column(_("reported at"), "reported_at", Kind.DATETIME),
        Column(_("serial number"), "device__serial"),
        Column(_("source"), "source"),
        Column(_("build number"), "build_number"),
        Column(_("Android version"), "android_version"),
        Column(_("security patch level"), "security_patch_level", Kind.DATE),
        Column(_("battery level (%)"), "battery_level_pct", Kind.NUMBER),
        Column(_("battery health (%)"), "battery_health_pct", Kind.NUMBER),
        Column(_("battery charge cycles"), "battery_cycle_count", Kind.NUMBER),
        Column(_("agent version"), "agent_version"),
        Column(_("received at"), "received_at", Kind.DATETIME),
    ),
)

STATUS_CHANGES = ExportTable(
    "status-history",
    (
        Column(_("changed at"), "changed_at", Kind.DATETIME),
        Column(_("serial number"), "device__serial"),
        Column(_("organisation"), "organisation__name"),
        Column(_("from"), "from_status"),
        Column(_("to"), "to_status"),
        Column(_("reason"), "reason"),
    ),
)


def _local(value: dt.datetime) -> dt.datetime:
    try:
        return timezone.localtime(value)
    except (OverflowError, ValueError):  # a row stored at the calendar's end: shown in UTC rather than failing
        return value


def _local_naive(value: dt.datetime) -> dt.datetime:
    return _local(value).replace(tzinfo=None)


# Excel's calendar: from 1900-03-01 (before it, its 1900 leap-year bug shifts days) to 9999-12-30. A date outside
# it (a row stored before the edge bounded dates) is written as ISO text, which every spreadsheet shows.
_EXCEL_FIRST, _EXCEL_LAST = dt.datetime(1900, 3, 1), dt.datetime(9999, 12, 30)


# --- CSV -------------------------------------------------------------------------------------------------------


def csv_delimiter(language: str | None = None) -> str:
    """``;`` for French (Excel in French splits on its list separator, the semicolon), ``,`` otherwise."""
    language = language or translation.get_language() or ""
    return ";" if language.split("-")[0] == "fr" else ","


_CSV_CELL: dict[Kind, Callable[[Any], Any]] = {
    Kind.TEXT: lambda value: inert_cell(str(value)),
    Kind.NUMBER: lambda value: value,
    Kind.BOOLEAN: lambda value: "true" if value else "false",
    Kind.DATE: lambda value: value.isoformat(),
    Kind.DATETIME: lambda value: _local(value).isoformat(timespec="seconds"),
}


class _Echo:
    """A file-like object whose write returns the line, for csv.writer inside a streaming response."""

    def write(self, value: str) -> str:
        return value


def csv_chunks(table: ExportTable, queryset: QuerySet, *, headers: Sequence[str], delimiter: str) -> Iterator[str]:
    """The CSV text of ``queryset``: a BOM and the header line, then ``CHUNK`` lines at a time."""
    writer = csv.writer(_Echo(), delimiter=delimiter)
    cells = [_CSV_CELL[column.kind] for column in table.columns]
    # The BOM makes Excel read UTF-8 (the accents of French names) instead of the system's code page.
    yield "\ufeff" + writer.writerow(headers)
    lines: list[str] = []
    for row in table.rows(queryset):
        values = ["" if value is None else cell(value) for cell, value in zip(cells, row, strict=True)]
        lines.append(writer.writerow(values))
        if len(lines) == CHUNK:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def csv_response(table: ExportTable, queryset: QuerySet) -> StreamingHttpResponse:
    # Headers and separator are decided now, in the request's language: the body is written after the view returns.
    # Exports only read: the replica may serve them (common.db_router), for the whole of the streamed body.
    chunks = stream_from_replica(csv_chunks(table, queryset, headers=table.headers(), delimiter=csv_delimiter()))
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{export_filename(table, "csv")}"'
    return response


# --- XLSX ------------------------------------------------------------------------------------------------------


def write_xlsx(table: ExportTable, queryset: QuerySet, *, headers: Sequence[str], file: Any) -> int:
    """Writes ``queryset`` as an XLSX workbook into ``file``; returns the number of rows written.

    1. a write-only workbook (each appended row goes to openpyxl's temporary file, not to memory);
    2. the header row in bold, frozen, with an auto-filter;
    3. rows as they come from the database: text guarded, numbers and booleans as such, dates as dates with a
       number format (a styled cell only where a date is);
    4. the workbook zipped into ``file``.
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=str(table.name)[:31])
    sheet.freeze_panes = "A2"
    for index, header in enumerate(headers):
        sheet.column_dimensions[_column_letter(index)].width = max(12, min(len(header) + 2, 40))
    bold = Font(bold=True)
    header_cells = []
    for header in headers:
        cell = WriteOnlyCell(sheet, value=xlsx_text(header))
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)

    def date_cell(value: dt.date, number_format: str) -> WriteOnlyCell | str:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
        if not _EXCEL_FIRST <= moment <= _EXCEL_LAST:
            return value.isoformat()
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = number_format
        return cell

    writers: list[Callable[[Any], Any]] = []
    for column in table.columns:
        if column.kind is Kind.TEXT:
            writers.append(lambda value: xlsx_text(str(value)))
        elif column.kind is Kind.DATE:
            writers.append(lambda value: date_cell(value, XLSX_DATE_FORMAT))
        elif column.kind is Kind.DATETIME:
            writers.append(lambda value: date_cell(_local_naive(value), XLSX_DATETIME_FORMAT))
        else:
            writers.append(lambda value: value)
    count = 0
    for row in table.rows(queryset):
        sheet.append([None if value is None else write(value) for write, value in zip(writers, row, strict=True)])
        count += 1
    if count:
        sheet.auto_filter.ref = f"A1:{_column_letter(len(headers) - 1)}{count + 1}"
    workbook.save(file)
    return count


def _column_letter(index: int) -> str:
    return get_column_letter(index + 1)


def xlsx_response(table: ExportTable, queryset: QuerySet) -> FileResponse:
    spool = tempfile.SpooledTemporaryFile(max_size=XLSX_SPOOL_BYTES)  # noqa: SIM115 - the response closes it
    try:
        with replica_reads():  # exports only read: the replica may serve them (common.db_router)
            write_xlsx(table, queryset, headers=table.headers(), file=spool)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    response = FileResponse(
        spool, as_attachment=True, filename=export_filename(table, "xlsx"), content_type=XLSX_CONTENT_TYPE
    )
    response.block_size = 64 * 1024
    return response


def xlsx_too_many_rows(queryset: QuerySet) -> bool:
    """Whether ``queryset`` overflows a sheet; counts at most one row past the limit, whatever its size."""
    return queryset.order_by()[: XLSX_MAX_ROWS + 1].count() > XLSX_MAX_ROWS


# --- Responses and the admin -----------------------------------------------------------------------------------


def export_filename(table: ExportTable, extension: str) -> str:
    return f"fleetpatch-{table.name}-{timezone.now():%Y%m%d-%H%M}.{extension}"


FORMATS = {"csv": csv_response, "xlsx": xlsx_response}


class ExportAdminMixin:
    """``export.csv`` and ``export.xlsx`` next to a changelist: the list as filtered and searched on screen.

    The queryset is the changelist's, so it is scoped to the user's organisations like the list itself:
    crafting a filter for another organisation's rows (``?device__id__exact=<id of A>``) exports nothing.
    URL names: ``admin:<app>_<model>_export`` (CSV) and ``admin:<app>_<model>_export_xlsx``.
    """

    export_table: ExportTable

    def get_urls(self) -> list:
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}_export"
        view = self.admin_site.admin_view(self.export_view)
        return [
            path("export.csv", view, {"file_format": "csv"}, name=name),
            path("export.xlsx", view, {"file_format": "xlsx"}, name=f"{name}_xlsx"),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest, file_format: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters as error:
            # A filter the list does not know, or a value its field refuses: say which, as the list would.
            return HttpResponseBadRequest(gettext("Invalid filter: %(error)s") % {"error": error})
        return self.export_response(request, queryset, file_format)

    def export_response(self, request: HttpRequest, queryset: QuerySet, file_format: str) -> HttpResponse:
        with replica_reads():
            too_many_rows = file_format == "xlsx" and xlsx_too_many_rows(queryset)
        if too_many_rows:
            message = ngettext(
                "More than %(limit)s row: a spreadsheet sheet cannot hold them. Narrow the list or export CSV.",
                "More than %(limit)s rows: a spreadsheet sheet cannot hold them. Narrow the list or export CSV.",
                XLSX_MAX_ROWS,
            )
            limit = formats.number_format(XLSX_MAX_ROWS, force_grouping=True)
            self.message_user(request, message % {"limit": limit}, messages.ERROR)
            opts = self.model._meta
            query = request.GET.urlencode()
            return redirect(
                f"{_changelist_url(opts.app_label, opts.model_name, self.admin_site.name)}{'?' if query else ''}{query}"
            )
        return FORMATS[file_format](self.export_table, queryset)

    @admin.action(description=_("Export selected %(verbose_name_plural)s as CSV"))
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        return self.export_response(request, queryset, "csv")

    @admin.action(description=_("Export selected %(verbose_name_plural)s as XLSX (Excel)"))
    def export_xlsx(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        return self.export_response(request, queryset, "xlsx")


def _changelist_url(app_label: str, model_name: str, site_name: str) -> str:
    return reverse(f"{site_name}:{app_label}_{model_name}_changelist")
