"""Reading catalogue files: our CSV format and endoflife.date product files (YAML front matter).

Parsing only: each reader yields :class:`ModelEntry` and :class:`BuildEntry` records, or raises
:class:`CatalogueError` with a message for people. Writing is ``updates.services.catalogue_import``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from pathlib import Path

import yaml
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import slugify
from django.utils.translation import gettext as _

from updates.choices import Channel

# endoflife.date's "eol: true" means "ended, date not recorded".
ENDED = "ended"

CSV_COLUMNS = (
    "manufacturer",
    "model",
    "launched_on",
    "security_support_until",
    "os_support_until",
    "build_number",
    "android_version",
    "security_patch_level",
    "released_at",
    "channel",
    "revoked",
)


def model_slug(name: str) -> str:
    """A stable key for a model name; "+" is kept as "plus" so "Fairphone 3" and "3+" stay distinct."""
    return slugify(name.replace("+", " plus"))[:150]


class CatalogueError(ValueError):
    """A file or a row that cannot be read; the message says where and why."""


@dataclasses.dataclass
class ModelEntry:
    manufacturer: str
    name: str
    slug: str
    launched_on: dt.date | None = None
    # A date, None (no end announced) or ENDED (ended on an unrecorded date).
    security_support_until: dt.date | str | None = None
    os_support_until: dt.date | str | None = None


@dataclasses.dataclass
class BuildEntry:
    manufacturer: str
    model_slug: str
    build_number: str
    security_patch_level: dt.date
    released_at: dt.datetime
    android_version: str = ""
    channel: str = Channel.STABLE
    revoked: bool = False


@dataclasses.dataclass
class Catalogue:
    models: list[ModelEntry] = dataclasses.field(default_factory=list)
    builds: list[BuildEntry] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def read_file(path: Path, *, manufacturer: str | None = None) -> Catalogue:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in {".md", ".yml", ".yaml"}:
        return read_endoflife(text, manufacturer=manufacturer, source=path.name)
    return read_csv(text, source=path.name)


def _front_matter(text: str, source: str) -> dict:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise CatalogueError(
            _("%(source)s: no YAML front matter (the file must start with '---').") % {"source": source}
        )
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---")
    except StopIteration:
        raise CatalogueError(
            _("%(source)s: the YAML front matter is not closed by '---'.") % {"source": source}
        ) from None
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as error:
        raise CatalogueError(_("%(source)s: invalid YAML: %(error)s") % {"source": source, "error": error}) from None
    if not isinstance(data, dict):
        raise CatalogueError(_("%(source)s: the front matter is not a mapping.") % {"source": source})
    return data


def _support_value(value: object, *, field: str, where: str) -> dt.date | str | None:
    """endoflife.date dates: a date, ``false`` (not announced), ``true`` (ended, date unknown)."""
    if value is None or value is False:
        return None
    if value is True:
        return ENDED
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    parsed = parse_date(str(value).strip())
    if parsed is None:
        raise CatalogueError(
            _("%(where)s: %(field)s is neither a date nor true/false: %(value)r")
            % {"where": where, "field": field, "value": value}
        )
    return parsed


def read_endoflife(text: str, *, manufacturer: str | None = None, source: str = "endoflife") -> Catalogue:
    """An endoflife.date product file: one device model per release cycle.

    ``eol`` is the end of security updates, ``eoas`` the end of OS upgrades; ``releaseDate`` the launch.
    Files of another category (``os``: Android itself, LineageOS) list no device models and are skipped.
    """
    data = _front_matter(text, source)
    catalogue = Catalogue()
    title = str(data.get("title") or source)
    if data.get("category") != "device":
        catalogue.skipped.append(
            _("%(source)s: '%(title)s' is a product of category '%(category)s', not device models.")
            % {"source": source, "title": title, "category": data.get("category")}
        )
        return catalogue
    maker = manufacturer or title.split()[0]
    for index, release in enumerate(data.get("releases") or [], start=1):
        where = f"{source} release {index}"
        try:
            if not isinstance(release, dict) or not release.get("releaseCycle"):
                raise CatalogueError(_("%(where)s: no releaseCycle.") % {"where": where})
            cycle = str(release["releaseCycle"])
            label = str(release.get("releaseLabel") or cycle).replace("__RELEASE_CYCLE__", cycle)
            launched = _support_value(release.get("releaseDate"), field="releaseDate", where=where)
            catalogue.models.append(
                ModelEntry(
                    manufacturer=maker,
                    name=label,
                    slug=model_slug(cycle),
                    launched_on=launched if isinstance(launched, dt.date) else None,
                    security_support_until=_support_value(release.get("eol"), field="eol", where=where),
                    os_support_until=_support_value(release.get("eoas"), field="eoas", where=where),
                )
            )
        except CatalogueError as error:
            catalogue.errors.append(str(error))
    return catalogue


def _parse_row_date(row: dict, field: str, where: str, *, required: bool = False) -> dt.date | None:
    value = (row.get(field) or "").strip()
    if not value:
        if required:
            raise CatalogueError(_("%(where)s: %(field)s is required.") % {"where": where, "field": field})
        return None
    parsed = parse_date(value)
    if parsed is None:
        raise CatalogueError(
            _("%(where)s: %(field)s is not a date (YYYY-MM-DD): %(value)r")
            % {"where": where, "field": field, "value": value}
        )
    return parsed


def read_csv(text: str, *, source: str = "csv") -> Catalogue:
    """Our CSV format: one row per model, or per build of a model (columns in ``CSV_COLUMNS``)."""
    catalogue = Catalogue()
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    headers = {(h or "").strip().lower() for h in reader.fieldnames or []}
    missing = {"manufacturer", "model"} - headers
    if missing:
        raise CatalogueError(
            _("%(source)s: missing column(s) %(missing)s; expected: %(expected)s")
            % {"source": source, "missing": ", ".join(sorted(missing)), "expected": ", ".join(CSV_COLUMNS)}
        )
    seen_models: set[tuple[str, str]] = set()
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        if not any(row.values()):
            continue
        where = f"{source} line {line}"
        try:
            if not row.get("manufacturer") or not row.get("model"):
                raise CatalogueError(_("%(where)s: manufacturer and model are required.") % {"where": where})
            slug = model_slug(row["model"])
            key = (row["manufacturer"], slug)
            model = ModelEntry(
                manufacturer=row["manufacturer"],
                name=row["model"],
                slug=slug,
                launched_on=_parse_row_date(row, "launched_on", where),
                security_support_until=_parse_row_date(row, "security_support_until", where),
                os_support_until=_parse_row_date(row, "os_support_until", where),
            )
            build = None
            if row.get("build_number"):
                released_raw = row.get("released_at", "")
                released = parse_datetime(released_raw) or (
                    dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC) if (d := parse_date(released_raw)) else None
                )
                if released is None:
                    raise CatalogueError(
                        _("%(where)s: released_at is required for a build (a date or an ISO date-time).")
                        % {"where": where}
                    )
                if released.tzinfo is None:
                    released = released.replace(tzinfo=dt.UTC)
                channel = row.get("channel") or Channel.STABLE
                if channel not in Channel.values:
                    raise CatalogueError(
                        _("%(where)s: channel must be one of %(choices)s.")
                        % {"where": where, "choices": ", ".join(Channel.values)}
                    )
                build = BuildEntry(
                    manufacturer=row["manufacturer"],
                    model_slug=slug,
                    build_number=row["build_number"],
                    security_patch_level=_parse_row_date(row, "security_patch_level", where, required=True),
                    released_at=released,
                    android_version=row.get("android_version", ""),
                    channel=channel,
                    revoked=row.get("revoked", "").lower() in {"1", "true", "yes", "oui"},
                )
        except CatalogueError as error:
            catalogue.errors.append(str(error))
            continue
        # The first row of a model carries its dates; later rows of the same model add builds.
        if key not in seen_models:
            seen_models.add(key)
            catalogue.models.append(model)
        if build:
            catalogue.builds.append(build)
    return catalogue
