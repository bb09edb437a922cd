"""Reading an uploaded spreadsheet into rows of cells: CSV (any delimiter, UTF-8 or Windows-1252,
with or without BOM) or XLSX (openpyxl in read-only mode, values only).

A file is hostile until proven otherwise: an XLSX is a zip archive, and 129 KB of it can inflate to
gigabytes. Before openpyxl opens one, its directory is checked against :data:`XLSX_LIMITS` (members,
uncompressed size, compression ratio), which the archive cannot understate: Python's zip reader stops
at the size a member declares. Rows are streamed, never padded to the sheet's declared dimension, and
capped in columns; a CSV line is capped in length before the CSV reader sees it. Whatever else goes
wrong inside a file is an :class:`ImportFileError`, so an import job always ends with a reason.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import zipfile
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.utils.translation import gettext

# A row past this is refused: a file of a million rows is a mistake, not an inventory.
MAX_ROWS = 1_000_000
# The header is looked for in the first rows: some exports put a title or a date above it.
HEADER_SEARCH_ROWS = 10
# An inventory has a dozen columns; a row of thousands is a broken or hostile file.
MAX_COLUMNS = 256
# Longer than any row of MAX_COLUMNS sensible cells (a CSV line, quoted newlines included).
MAX_LINE_CHARS = 128 * 1024
_XLSX_MAGIC = b"PK\x03\x04"


def xlsx_limits() -> dict[str, int]:
    """What an XLSX archive may hold (settings ``IMPORT_XLSX_MAX_MEMBERS``, ``..._MAX_UNCOMPRESSED_BYTES``,
    ``..._MAX_RATIO``; docs/imports-exports.md)."""
    return {
        "members": settings.IMPORT_XLSX_MAX_MEMBERS,
        "uncompressed_bytes": settings.IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES,
        "ratio": settings.IMPORT_XLSX_MAX_RATIO,
    }


class ImportFileError(ValueError):
    """The file as a whole cannot be read; the message says why, for people."""


@dataclasses.dataclass
class Sheet:
    """The cells of a file: ``rows`` yields (line number, cells) after the header line."""

    headers: list[str]
    header_line: int
    rows: Iterator[tuple[int, list[Any]]]
    format: str


def decode_text(data: bytes) -> str:
    """UTF-8 (a BOM is dropped) when it decodes, else Windows-1252, as French Excel saves "CSV (;)";
    UTF-16 when it starts with its BOM (Excel's "Unicode text", tab separated)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _delimiter(sample: str) -> str:
    # Sniffer is fooled by commas inside quoted fields and by one-column files: count on the header line.
    first_line = next((line for line in sample.splitlines() if line.strip()), "")
    counts = {delimiter: first_line.count(delimiter) for delimiter in (";", ",", "\t", "|")}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _bounded_lines(text: str) -> Iterator[str]:
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise ImportFileError(
                gettext("Line %(line)d is longer than %(max)d characters.") % {"line": number, "max": MAX_LINE_CHARS}
            )
        yield line


def _too_many_columns(line: int, count: int) -> ImportFileError:
    return ImportFileError(
        gettext("Line %(line)d has %(count)d columns; a file may have at most %(max)d.")
        % {"line": line, "count": count, "max": MAX_COLUMNS}
    )


def _csv_rows(text: str) -> Iterator[tuple[int, list[Any]]]:
    reader = csv.reader(_bounded_lines(text), delimiter=_delimiter(text[:8192]))
    try:
        for row in reader:
            if len(row) > MAX_COLUMNS:
                raise _too_many_columns(reader.line_num, len(row))
            yield reader.line_num, row
    except csv.Error as error:
        raise ImportFileError(
            gettext("Line %(line)d cannot be read as CSV: %(error)s") % {"line": reader.line_num, "error": error}
        ) from error


def check_xlsx_archive(data: bytes) -> None:
    """Refuses an archive whose directory promises more than :func:`xlsx_limits` allow, before any of it is
    inflated."""
    limits = xlsx_limits()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        raise ImportFileError(gettext("This file is not a readable XLSX workbook.")) from error
    if len(members) > limits["members"]:
        raise ImportFileError(
            gettext("This workbook holds %(count)d parts; at most %(max)d are accepted.")
            % {"count": len(members), "max": limits["members"]}
        )
    total = sum(member.file_size for member in members)
    if total > limits["uncompressed_bytes"]:
        raise ImportFileError(
            gettext("This workbook unpacks to %(size)d MB; at most %(max)d MB are accepted.")
            % {"size": total // 2**20, "max": limits["uncompressed_bytes"] // 2**20}
        )
    for member in members:
        # A tiny part may compress well beyond the ratio (an empty sheet): only parts over 1 MiB count.
        if member.file_size > 2**20 and member.file_size > limits["ratio"] * max(member.compress_size, 1):
            raise ImportFileError(
                gettext(
                    "Part %(name)s of this workbook is compressed %(ratio)d to 1; at most %(max)d to 1 is accepted."
                )
                % {
                    "name": member.filename[:100],
                    "ratio": member.file_size // max(member.compress_size, 1),
                    "max": limits["ratio"],
                }
            )


def _xlsx_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    import openpyxl  # noqa: PLC0415 - only XLSX uploads pay for importing it

    check_xlsx_archive(data)
    unreadable = gettext("This file is not a readable XLSX workbook.")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - a malformed workbook breaks openpyxl in many ways
        raise ImportFileError(unreadable) from error
    try:
        if not workbook.worksheets:
            raise ImportFileError(unreadable)
        sheet = workbook.worksheets[0]
        # Rows as stored, not padded to the dimension the file declares (A1:XFD1048576 is 17 billion cells).
        sheet.reset_dimensions()
        line = 0
        try:
            for line, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                if len(row) > MAX_COLUMNS:
                    raise _too_many_columns(line, len(row))
                yield line, list(row)
        except ImportFileError:
            raise
        except Exception as error:  # noqa: BLE001 - broken XML, a bad cell type, a missing part...
            raise ImportFileError(
                gettext("Row %(line)d of this workbook cannot be read.") % {"line": line + 1}
            ) from error
    finally:
        workbook.close()


def _blank(cells: list[Any]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def read_sheet(data: bytes, *, is_header: Any) -> Sheet:
    """Opens ``data`` and finds its header: the first of the first rows that ``is_header(cells)`` accepts.

    Raises :class:`ImportFileError` when the file is empty, unreadable, or has no recognisable header.
    """
    if not data.strip():
        raise ImportFileError(gettext("The file is empty."))
    if data.startswith(_XLSX_MAGIC):
        rows, file_format = _xlsx_rows(data), "xlsx"
    else:
        rows, file_format = _csv_rows(decode_text(data)), "csv"
    for line, cells in rows:
        if _blank(cells):
            continue
        if is_header(cells):
            return Sheet(
                headers=["" if cell is None else str(cell) for cell in cells],
                header_line=line,
                rows=_bounded(rows),
                format=file_format,
            )
        if line >= HEADER_SEARCH_ROWS:
            break
    raise ImportFileError(gettext("No header line with a known column was found in the first rows."))


def _bounded(rows: Iterator[tuple[int, list[Any]]]) -> Iterator[tuple[int, list[Any]]]:
    for count, (line, cells) in enumerate(rows, start=1):
        if count > MAX_ROWS:
            raise ImportFileError(gettext("The file has more than %(max)d rows.") % {"max": MAX_ROWS})
        yield line, cells
