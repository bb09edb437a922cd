"""Reading catalogue files: our CSV format and endoflife.date product files (YAML front matter).

Parsing only: each reader yields :class:`ModelEntry` and :class:`BuildEntry` records, or raises
:class:`CatalogueError` with a message for people. Writing is ``updates.services.catalogue_import``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from collections import Counter
from pathlib import Path

import yaml
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import slugify
from django.utils.translation import gettext as _

from common.dates import out_of_range
from common.text import forbidden_character
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
    "aliases",
    "manufacturer_aliases",
)

# Several names in one cell: "SM-G556B; SM-G556B/DS; Galaxy XCover 7".
ALIAS_SEPARATOR = ";"

# A Samsung firmware document names the model code it is for: doc.samsungmobile.com/SM-G556B/EUX/doc.html.
_SAMSUNG_DOC = re.compile(r"doc\.samsungmobile\.com/(SM-[A-Z0-9]+)/", re.IGNORECASE)
# endoflife.date's label templates: "__RELEASE_CYCLE__ '__CODENAME__'".
_TEMPLATE_FIELD = re.compile(r"__([A-Z0-9_]+)__")


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
    # Other names of the model (model codes, codenames, the release cycle) and of its manufacturer.
    aliases: list[str] = dataclasses.field(default_factory=list)
    manufacturer_aliases: list[str] = dataclasses.field(default_factory=list)


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


def read_file(path: Path, *, manufacturer: str | None = None, ignore_unknown_columns: bool = False) -> Catalogue:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in {".md", ".yml", ".yaml"}:
        return read_endoflife(text, manufacturer=manufacturer, source=path.name)
    return read_csv(text, source=path.name, ignore_unknown_columns=ignore_unknown_columns)


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


def _upper_snake(key: str) -> str:
    """endoflife.date's template name of a release key: "releaseCycle" → "RELEASE_CYCLE"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).upper()


def release_label(release: dict, template: object = None) -> str:
    """A release's name: its own ``releaseLabel``, else the product's template with ``__FIELD__`` replaced by
    the release's value of ``field`` (``__RELEASE_CYCLE__``, ``__CODENAME__``...), else its cycle."""
    cycle = str(release.get("releaseCycle") or "")
    label = release.get("releaseLabel") or template or cycle
    values = {_upper_snake(str(key)): value for key, value in release.items()}

    def field(match: re.Match) -> str:
        value = values.get(match.group(1))
        return "" if value is None or isinstance(value, bool) else str(value)

    return " ".join(_TEMPLATE_FIELD.sub(field, str(label)).split()) or cycle


def _model_codes(release: dict) -> list[str]:
    """Model codes a release's links carry (Samsung's firmware documents name the model code)."""
    links = [release.get("link")] + [value for key, value in release.items() if key.endswith("Link")]
    return list(dict.fromkeys(m.group(1).upper() for link in links if link for m in _SAMSUNG_DOC.finditer(str(link))))


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
    template = data.get("releaseLabel")
    releases = data.get("releases") or []
    # A model code two releases link to (a watch's sizes, a phone's variants) names neither: left out.
    code_uses = Counter(code for release in releases if isinstance(release, dict) for code in _model_codes(release))
    for index, release in enumerate(releases, start=1):
        where = f"{source} release {index}"
        try:
            if not isinstance(release, dict) or not release.get("releaseCycle"):
                raise CatalogueError(_("%(where)s: no releaseCycle.") % {"where": where})
            cycle = str(release["releaseCycle"])
            label = release_label(release, template)
            aliases = [cycle, *(code for code in _model_codes(release) if code_uses[code] == 1)]
            launched = _support_value(release.get("releaseDate"), field="releaseDate", where=where)
            catalogue.models.append(
                ModelEntry(
                    manufacturer=maker,
                    name=label,
                    slug=model_slug(cycle),
                    launched_on=launched if isinstance(launched, dt.date) else None,
                    security_support_until=_support_value(release.get("eol"), field="eol", where=where),
                    os_support_until=_support_value(release.get("eoas"), field="eoas", where=where),
                    aliases=aliases,
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
    if reason := out_of_range(parsed):
        raise CatalogueError(f"{where}: {field}: {reason}.")
    return parsed


def _names(cell: str) -> list[str]:
    return [name.strip() for name in cell.split(ALIAS_SEPARATOR) if name.strip()]


def read_csv(text: str, *, source: str = "csv", ignore_unknown_columns: bool = False) -> Catalogue:
    """Our CSV format: one row per model, or per build of a model (columns in ``CSV_COLUMNS``).

    A column we do not know is an error (a misspelt ``security_suport_until`` would otherwise be read as
    "no date"), unless ``ignore_unknown_columns``: then it is left out, and said so in ``skipped``."""
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
    unknown = sorted(headers - set(CSV_COLUMNS) - {""})
    if unknown and not ignore_unknown_columns:
        raise CatalogueError(
            _(
                "%(source)s: unknown column(s) %(unknown)s; expected: %(expected)s "
                "(--ignore-unknown-columns to import the file without them)."
            )
            % {"source": source, "unknown": ", ".join(unknown), "expected": ", ".join(CSV_COLUMNS)}
        )
    if unknown:
        catalogue.skipped.append(
            _("%(source)s: column(s) %(unknown)s ignored.") % {"source": source, "unknown": ", ".join(unknown)}
        )
    seen_models: dict[tuple[str, str], ModelEntry] = {}
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        if not any(row.values()):
            continue
        where = f"{source} line {line}"
        try:
            # FleetPatch's one text rule (common.text): a control character in any cell refuses the row.
            for column, value in row.items():
                if reason := forbidden_character(value):
                    raise CatalogueError(f"{where}: {column}: {reason}.")
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
                aliases=_names(row.get("aliases", "")),
                manufacturer_aliases=_names(row.get("manufacturer_aliases", "")),
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
                if reason := out_of_range(released):
                    raise CatalogueError(f"{where}: released_at: {reason}.")
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
            seen_models[key] = model
            catalogue.models.append(model)
        else:
            # A model's later rows may name more aliases; its dates come from its first row.
            first = seen_models[key]
            first.aliases += [name for name in model.aliases if name not in first.aliases]
            first.manufacturer_aliases += [
                name for name in model.manufacturer_aliases if name not in first.manufacturer_aliases
            ]
        if build:
            catalogue.builds.append(build)
    return catalogue
