"""Reading an uploaded spreadsheet into rows of cells: CSV (any delimiter, UTF-8 or Windows-1252,
with or without BOM) or XLSX (openpyxl in read-only mode, values only)."""

from __future__ import annotations

import csv
import dataclasses
import io
import zipfile
from collections.abc import Iterator
from typing import Any

from django.utils.translation import gettext

# A row past this is refused: a file of a million rows is a mistake, not an inventory.
MAX_ROWS = 1_000_000
# The header is looked for in the first rows: some exports put a title or a date above it.
HEADER_SEARCH_ROWS = 10
_XLSX_MAGIC = b"PK\x03\x04"


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


def _csv_rows(text: str) -> Iterator[tuple[int, list[Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text[:8192]))
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as error:
        raise ImportFileError(
            gettext("Line %(line)d cannot be read as CSV: %(error)s") % {"line": reader.line_num, "error": error}
        ) from error


def _xlsx_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    import openpyxl  # noqa: PLC0415 - only XLSX uploads pay for importing it

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise ImportFileError(gettext("This file is not a readable XLSX workbook.")) from error
    try:
        sheet = workbook.worksheets[0]
        for line, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield line, list(row)
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
