"""Columns of the import files: header aliases (English and French, as MDM exports and asset registers
write them) and the conversion of cells to values, with messages for people when a cell is wrong."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from common.dates import EARLIEST_DATE, out_of_range
from common.text import clean_text, fold
from devices.validators import validate_imei


@dataclasses.dataclass(frozen=True)
class Column:
    field: str
    label: Any  # lazy translated name, shown in the preview and the README
    aliases: tuple[str, ...]
    required: bool = False


_SERIAL = Column(
    "serial",
    _("serial number"),
    (
        "serial",
        "serial number",
        "serial no",
        "serialnumber",
        "sn",
        "device serial",
        "device serial number",
        "hardware serial",
        "numero de serie",
        "n de serie",
        "no de serie",
        "num de serie",
        "numero serie",
        "n serie",
        "serie",
    ),
    required=True,
)

DEVICE_COLUMNS: tuple[Column, ...] = (
    _SERIAL,
    Column("imei", _("IMEI"), ("imei", "imei 1", "imei1", "imei number", "numero imei", "n imei", "imei meid")),
    Column("manufacturer", _("manufacturer"), ("manufacturer", "make", "brand", "fabricant", "marque", "constructeur")),
    Column(
        "model",
        _("model"),
        ("model", "device model", "model name", "product model", "modele", "modele de l appareil", "modele appareil"),
    ),
    Column(
        "asset_tag",
        _("asset tag"),
        (
            "asset tag",
            "asset",
            "asset number",
            "asset id",
            "inventory number",
            "numero d inventaire",
            "n d inventaire",
            "no d inventaire",
            "n inventaire",
            "inventaire",
            "code inventaire",
            "etiquette",
        ),
    ),
    Column(
        "fleet",
        _("fleet"),
        ("fleet", "group", "device group", "flotte", "groupe", "parc", "unit", "unite", "service"),
    ),
    Column(
        "assignee",
        _("assignee"),
        (
            "assignee",
            "user",
            "assigned to",
            "assigned user",
            "primary user",
            "user display name",
            "primary user display name",
            "utilisateur",
            "attributaire",
            "attribue a",
            "affecte a",
            "titulaire",
        ),
    ),
    Column(
        "os_build",
        _("OS build"),
        (
            "os build",
            "build",
            "build number",
            "os build number",
            "current build",
            "reported build number",
            "numero de build",
            "build de l os",
            "build actuel",
            "numero de build remonte",
            "version de build",
        ),
    ),
    Column(
        "patch_level",
        _("security patch level"),
        (
            "patch level",
            "security patch level",
            "security patch",
            "android security patch level",
            "niveau de correctif",
            "niveau de correctif de securite",
            "correctif de securite",
            "niveau de securite",
        ),
    ),
    Column(
        "battery_installed_on",
        _("battery installed on"),
        (
            "battery installed on",
            "battery installed",
            "battery install date",
            "battery date",
            "date batterie",
            "date de la batterie",
            "batterie installee le",
            "date d installation de la batterie",
            "date installation batterie",
        ),
    ),
    Column("organisation", _("organisation"), ("organisation", "organization", "tenant", "organisme")),
)

BATTERY_COLUMNS: tuple[Column, ...] = (
    _SERIAL,
    Column(
        "replaced_on",
        _("replaced on"),
        (
            "replaced on",
            "date",
            "replacement date",
            "replaced at",
            "date de remplacement",
            "date du remplacement",
            "remplacee le",
            "remplace le",
        ),
        required=True,
    ),
    Column(
        "part_serial",
        _("part serial number"),
        (
            "part serial",
            "part serial number",
            "battery serial",
            "battery serial number",
            "numero de serie de la piece",
            "numero de serie de la batterie",
            "n de serie batterie",
            "n de serie de la batterie",
            "serie batterie",
        ),
    ),
    Column("reason", _("reason"), ("reason", "motif", "raison", "cause", "comment", "commentaire")),
    Column(
        "performed_by",
        _("performed by"),
        ("performed by", "technician", "technicien", "effectue par", "realise par", "intervenant"),
    ),
)


@dataclasses.dataclass
class HeaderMap:
    """Which cell index holds which field, and the headers nobody reads (shown in the preview)."""

    index: dict[str, int]
    ignored: list[str]


def map_headers(headers: list[str], columns: tuple[Column, ...]) -> HeaderMap:
    by_alias = {alias: column.field for column in columns for alias in column.aliases}
    index: dict[str, int] = {}
    ignored: list[str] = []
    for position, header in enumerate(headers):
        field = by_alias.get(fold(header))
        if field is None or field in index:
            if header.strip():
                ignored.append(header.strip())
            continue
        index[field] = position
    return HeaderMap(index=index, ignored=ignored)


def header_recogniser(columns: tuple[Column, ...]):
    """``is_header`` for :func:`reading.read_sheet`: a line naming every required column."""
    required = {column.field for column in columns if column.required}

    def is_header(cells: list[Any]) -> bool:
        mapped = map_headers(["" if cell is None else str(cell) for cell in cells], columns)
        return required <= set(mapped.index)

    return is_header


def missing_required(columns: tuple[Column, ...]) -> list[str]:
    return [str(column.label) for column in columns if column.required]


# --- Cells -----------------------------------------------------------------------------------------


class CellError(ValueError):
    """A cell that cannot be used; the message names the column and the reason."""


def text(cell: Any) -> str:
    """A cell as text: numbers without a spurious ".0" (Excel stores IMEIs and serials as floats)."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, dt.datetime | dt.date):
        return cell.isoformat()
    return str(cell).strip()


def bounded_text(cell: Any, *, label: str, max_length: int) -> str:
    """A cell as stored text: FleetPatch's one text rule (:func:`common.text.clean_text`), then the length."""
    try:
        value = clean_text(text(cell))
    except ValidationError as error:
        raise CellError(f"{label}: {error.messages[0]}") from error
    if len(value) > max_length:
        raise CellError(
            gettext("%(column)s: at most %(max)d characters (this one has %(length)d).")
            % {"column": label, "max": max_length, "length": len(value)}
        )
    return value


_EXCEL_EPOCH = dt.date(1899, 12, 30)
# Excel serial numbers from 1950 to 2100: anything else in a date column is not a date.
_EXCEL_SERIALS = range(18264, 73051)
_ISO = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ].*)?$")
_DAY_FIRST = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})(?: .*)?$")
_YEAR_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


def parse_date(cell: Any, *, label: str, earliest: dt.date = EARLIEST_DATE) -> dt.date:
    """:func:`read_date`, within :mod:`common.dates`' range (from ``earliest``): a row error names the bound."""
    value = read_date(cell, label=label)
    if reason := out_of_range(value, earliest=earliest):
        raise CellError(f"{label}: {reason}.")
    return value


def read_date(cell: Any, *, label: str) -> dt.date:
    """A date from a cell: a spreadsheet date, an Excel serial number, ISO ``2024-03-05``, or ``05/03/2024``.

    Slashed dates are day first (French and most of Europe); ``03/25/2024`` is read month first
    because 25 cannot be a month. ``2024-03`` (a patch level written by month) is the 1st.
    """
    if isinstance(cell, dt.datetime):
        return cell.date()
    if isinstance(cell, dt.date):
        return cell
    if isinstance(cell, int | float) and not isinstance(cell, bool) and int(cell) in _EXCEL_SERIALS:
        return _EXCEL_EPOCH + dt.timedelta(days=int(cell))
    value = text(cell)
    try:
        if value.isdigit() and int(value) in _EXCEL_SERIALS:
            return _EXCEL_EPOCH + dt.timedelta(days=int(value))
        if match := _ISO.match(value):
            year, month, day = (int(part) for part in match.groups())
            return dt.date(year, month, day)
        if match := _YEAR_MONTH.match(value):
            return dt.date(int(match[1]), int(match[2]), 1)
        if match := _DAY_FIRST.match(value):
            first, second, year = int(match[1]), int(match[2]), int(match[3])
            year += 2000 if year < 100 else 0
            day, month = (second, first) if second > 12 >= first else (first, second)
            return dt.date(year, month, day)
    except ValueError:
        pass  # 31/02/2024 matches a pattern but is no date: the message below says so
    raise CellError(
        gettext("%(column)s: %(value)r is not a date (expected 2024-03-25 or 25/03/2024).")
        % {"column": label, "value": value}
    )


def parse_past_date(
    cell: Any, *, label: str, today: dt.date | None = None, earliest: dt.date = EARLIEST_DATE
) -> dt.date:
    value = read_date(cell, label=label)
    # One day of slack, as for reported patch levels: west of UTC, "today" comes before UTC's midnight.
    if value > (today or timezone.now().date()) + dt.timedelta(days=1):
        raise CellError(
            gettext("%(column)s: %(value)s is in the future.") % {"column": label, "value": value.isoformat()}
        )
    if reason := out_of_range(value, earliest=earliest):
        raise CellError(f"{label}: {reason}.")
    return value


def parse_imei(cell: Any, *, label: str) -> str:
    value = re.sub(r"[\s\-./]", "", text(cell))
    try:
        validate_imei(value)
    except ValidationError as error:
        raise CellError(f"{label}: {error.messages[0]}") from error
    return value
