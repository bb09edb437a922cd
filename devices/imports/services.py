"""Importing devices and battery replacements from a spreadsheet, and the admin's import jobs.

Both imports read the whole file first (per-row validation in Python), then work in chunks of
``CHUNK_SIZE`` rows: a few queries to compare a chunk with the database, one upsert to write it,
one set-based recompute of its devices' compliance. Each chunk is its own transaction, so a
200,000-row file never holds one long transaction, and a row that fails never stops the others.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext

from common import bulk
from common.tasks import DATABASE_ERRORS
from devices.choices import ImportKind, ImportStatus
from devices.imports import battery_rows, device_rows
from devices.imports import columns as c
from devices.imports.reading import ImportFileError, read_sheet
from devices.imports.results import ImportResult, Outcome, RowResult
from devices.models import Device, ImportJob
from devices.services import Replacement, battery_replacements_record, devices_recompute
from fleet.models import Fleet, Organisation

logger = logging.getLogger(__name__)

CHUNK_SIZE = 5000
Row = TypeVar("Row")

__all__ = [
    "ImportFileError",
    "battery_replacements_import",
    "devices_import",
    "import_job_abandon",
    "import_job_apply",
    "import_job_confirm",
    "import_job_create",
    "import_job_preview",
]


def _chunks(items: list[Row], size: int = CHUNK_SIZE) -> Iterator[list[Row]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _read_rows(
    data: bytes, columns: tuple[c.Column, ...], parse: Callable[[int, list[Any], dict[str, int]], Row]
) -> tuple[list[Row], ImportResult]:
    """Every row of the file parsed with ``parse``; the rows that fail are in the result already."""
    sheet = read_sheet(data, is_header=c.header_recogniser(columns))
    headers = c.map_headers(sheet.headers, columns)
    result = ImportResult(ignored_columns=headers.ignored)
    rows: list[Row] = []
    serial_at = headers.index["serial"]
    for line, cells in sheet.rows:
        if all(c.text(cell) == "" for cell in cells):
            result.skipped_lines += 1
            continue
        try:
            rows.append(parse(line, cells, headers.index))
        except c.CellError as error:
            serial = c.text(cells[serial_at]) if serial_at < len(cells) else ""
            result.rows.append(RowResult(line, serial[:64], Outcome.FAILED, str(error)))
    return rows, result


# --- Devices -------------------------------------------------------------------------------------


def devices_import(
    *, organisation: Organisation, data: bytes, dry_run: bool = False, now: dt.datetime | None = None
) -> ImportResult:
    """Creates or updates ``organisation``'s devices from a CSV or XLSX file; returns each row's outcome.

    1. Read and validate every row (headers by alias, models matched to the catalogue, IMEIs Luhn-checked).
    2. Fail the rows repeating a serial number or an IMEI of an earlier row.
    3. Create the fleets the file names that do not exist yet (listed in the preview before confirmation).
    4. Per chunk: plan against the database (:func:`device_rows.plan_chunk`), upsert the new and changed
       devices in one ``INSERT ... ON CONFLICT (organisation, serial) DO UPDATE`` sorted by serial, and
       recompute their compliance in one set-based pass. Unchanged rows are not written at all.

    Raises :class:`ImportFileError` when the file cannot be read at all. With ``dry_run`` nothing is written.
    """
    now = now or timezone.now()
    context = device_rows.RowContext(organisation=organisation, catalogue=device_rows.ModelCatalogue())
    parse = partial(device_rows.parse_row, context=context)
    started = time.perf_counter()
    rows, result = _read_rows(data, c.DEVICE_COLUMNS, parse)
    started = result.timed("read", started)
    result.dry_run = dry_run
    rows, duplicates = device_rows.deduplicate(rows)
    result.rows.extend(duplicates)

    fleets = device_rows.FleetIndex(organisation)
    for row in rows:
        if row.fleet_name is not None:
            fleets.id_for(row.fleet_name)
    result.fleets_created = sorted(fleets.missing.values())
    if fleets.missing and not dry_run:
        _create_fleets(organisation, list(fleets.missing.values()))
        fleets.reload()

    started = result.timed("plan", started)
    for chunk in _chunks(rows):
        plan = device_rows.plan_chunk(chunk, organisation=organisation, fleets=fleets)
        started = result.timed("plan", started)
        if not dry_run and plan.devices:
            _write_devices(plan, organisation=organisation, now=now, result=result)
            started = time.perf_counter()
        result.rows.extend(plan.results)
    result.rows.sort(key=lambda row: row.line)
    return result


def _create_fleets(organisation: Organisation, names: list[str]) -> None:
    taken = set(Fleet.objects.filter(organisation=organisation).values_list("slug", flat=True))
    fleets = []
    for name in names:
        base = slugify(name)[:90] or "fleet"
        slug, suffix = base, 2
        while slug in taken:
            slug, suffix = f"{base}-{suffix}", suffix + 1
        taken.add(slug)
        fleets.append(Fleet(organisation=organisation, name=name, slug=slug))
    # Another import creating the same fleet at the same moment is no error: its fleet is used.
    Fleet.objects.bulk_create(fleets, ignore_conflicts=True)


def _upsert(rows: list[dict[str, Any]], update_fields: set[str]) -> list[tuple[int, str]]:
    """One ``INSERT ... ON CONFLICT (organisation, serial) DO UPDATE`` of complete device rows; returns their
    (id, serial).

    On PostgreSQL the rows are first copied (binary ``COPY``, :func:`common.bulk.copy_rows`) into a temporary
    table dropped at commit, then
    inserted from it: building 5,000 model instances and binding 30 parameters per row made ``bulk_create``
    the slowest step of an import. SQLite goes through ``bulk_create``. The rows a conflict turns into
    updates only get ``update_fields``: a device's compliance, reports and enrolment date are never touched
    by an import. With no field to update (a chunk of new devices only), the serial is "updated" with
    itself, so that a device created meanwhile by a concurrent import still returns its id.
    """
    updated = sorted(update_fields) or ["serial"]
    if connection.vendor != "postgresql":
        Device.objects.bulk_create(
            [Device(**row) for row in rows],
            update_conflicts=True,
            unique_fields=["organisation", "serial"],
            update_fields=updated,
        )
        return list(
            Device.objects.filter(
                organisation_id=rows[0]["organisation_id"], serial__in=[row["serial"] for row in rows]
            ).values_list("pk", "serial")
        )
    from psycopg import sql  # noqa: PLC0415 - PostgreSQL only

    fields = [field for field in Device._meta.concrete_fields if not field.primary_key]
    columns = sql.SQL(", ").join(sql.Identifier(field.column) for field in fields)
    assignments = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(Device._meta.get_field(name).column)) for name in updated
    )
    staging_name = "fleetpatch_import_devices"
    table, staging = sql.Identifier(Device._meta.db_table), sql.Identifier(staging_name)
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                staging, columns, table
            )
        )
        attnames = [field.attname for field in fields]
        bulk.copy_rows(
            Device,
            [field.column for field in fields],
            ([row[name] for name in attnames] for row in rows),
            using=connection.alias,
            table=staging_name,
            defaults=False,
        )
        cursor.execute(
            sql.SQL(
                "INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} ORDER BY serial "
                "ON CONFLICT (organisation_id, serial) DO UPDATE SET {assignments} RETURNING id, serial"
            ).format(table=table, columns=columns, staging=staging, assignments=assignments)
        )
        written = cursor.fetchall()
        cursor.execute(sql.SQL("DROP TABLE {}").format(staging))
    return written


def _complete_rows(plan: device_rows.ChunkPlan, *, organisation: Organisation, now: dt.datetime) -> list[dict]:
    """Every column of every device to write: the model's defaults, then the planned values."""
    defaults = {
        field.attname: field.get_default() for field in Device._meta.concrete_fields if not field.primary_key
    } | {"organisation_id": organisation.pk, "enrolled_at": now, "status_since": now}
    # A fixed order (by serial): two imports writing the same devices never deadlock.
    return [defaults | row for row in sorted(plan.devices, key=lambda row: row["serial"])]


def _write_devices(
    plan: device_rows.ChunkPlan, *, organisation: Organisation, now: dt.datetime, result: ImportResult | None = None
) -> None:
    """Writes one chunk; if the database refuses it (an IMEI taken meanwhile by another write), writes
    its rows one by one so that only the conflicting rows fail."""
    result = result or ImportResult()
    started = time.perf_counter()
    rows = _complete_rows(plan, organisation=organisation, now=now)
    with transaction.atomic():
        try:
            with transaction.atomic():
                written = _upsert(rows, plan.update_fields)
        except IntegrityError:
            written = []
            results = {row_result.serial: row_result for row_result in plan.results}
            for row in rows:
                try:
                    with transaction.atomic():
                        written += _upsert([row], plan.update_fields)
                except IntegrityError:
                    failed = results[row["serial"]]
                    failed.outcome = Outcome.FAILED
                    failed.message = gettext(
                        "This row conflicts with another device (same serial number or IMEI); nothing was written."
                    )
        started = result.timed("write", started)
        devices_recompute(
            device_ids=[pk for pk, serial in written if serial in plan.recompute], now=now, reason="imported"
        )
    result.timed("recompute", started)


# --- Battery replacements ----------------------------------------------------------------------------


def battery_replacements_import(
    *,
    organisation: Organisation,
    data: bytes,
    dry_run: bool = False,
    recorded_by: AbstractBaseUser | None = None,
    now: dt.datetime | None = None,
) -> ImportResult:
    """Records the battery replacements of a CSV or XLSX file (date, serial, part serial, reason).

    Each new replacement goes through :func:`devices.services.battery_replacements_record`, the set-based
    form of ``battery_replace``: the event is stored, the device's battery age, health and cycles reset
    unless a newer battery is recorded, and its compliance recomputed. A replacement already recorded for
    that device on that day is "unchanged", so re-importing a file changes nothing.
    """
    now = now or timezone.now()
    parse = partial(battery_rows.parse_row, labels={column.field: str(column.label) for column in c.BATTERY_COLUMNS})
    rows, result = _read_rows(data, c.BATTERY_COLUMNS, parse)
    result.dry_run = dry_run
    rows, duplicates = battery_rows.deduplicate(rows)
    result.rows.extend(duplicates)
    for chunk in _chunks(rows):
        plan = battery_rows.plan_chunk(chunk, organisation=organisation)
        if not dry_run and plan.new:
            battery_replacements_record(
                replacements=[
                    Replacement(
                        device_id=device_id,
                        occurred_at=battery_rows.occurred_at(row.replaced_on),
                        part_serial=row.part_serial,
                        reason=row.reason,
                        performed_by=row.performed_by,
                    )
                    for device_id, row in plan.new
                ],
                recorded_by=recorded_by,
                now=now,
            )
        result.rows.extend(plan.results)
    result.rows.sort(key=lambda row: row.line)
    return result


# --- Import jobs (the admin's upload → preview → confirm) ----------------------------------------------


def _run(job: ImportJob, *, dry_run: bool) -> ImportResult:
    if job.kind == ImportKind.DEVICES:
        return devices_import(organisation=job.organisation, data=bytes(job.content), dry_run=dry_run)
    return battery_replacements_import(
        organisation=job.organisation, data=bytes(job.content), dry_run=dry_run, recorded_by=job.created_by
    )


@transaction.atomic
def import_job_create(
    *, organisation: Organisation, kind: str, filename: str, data: bytes, created_by: AbstractBaseUser | None
) -> ImportJob:
    """Keeps an uploaded file and has it previewed (a dry run) by a worker once the upload is committed."""
    from devices.imports.tasks import preview_import  # noqa: PLC0415 - tasks import this module

    job = ImportJob.objects.create(
        organisation=organisation, kind=kind, filename=filename[:255], content=data, created_by=created_by
    )
    transaction.on_commit(partial(preview_import.delay, job.pk))
    return job


def _failed_unexpectedly(job_id: int) -> dict[str, Any]:
    """A job whose file broke something besides the readers' own checks ends failed, with a reason for
    the uploader and the traceback in the log: never "pending" behind a page that reloads forever."""
    logger.exception("import job %s failed unexpectedly", job_id)
    return {
        "status": ImportStatus.FAILED,
        "summary": {"error": gettext("This file could not be imported: it is damaged or not a spreadsheet.")},
    }


def import_job_abandon(*, job_id: int, reason: str) -> None:
    """Ends a job whose task was given up (devices.task_guard): failed, with the reason, its file dropped."""
    ImportJob.objects.filter(pk=job_id, status__in=(ImportStatus.PENDING, ImportStatus.APPLYING)).update(
        status=ImportStatus.FAILED, summary={"error": reason}, content=b"", finished_at=timezone.now()
    )


def import_job_preview(*, job_id: int) -> None:
    """The dry run of a pending job: what would be created, updated, unchanged, and which rows fail."""
    job = (
        ImportJob.objects.select_related("organisation", "created_by")
        .filter(pk=job_id, status=ImportStatus.PENDING)
        .first()
    )
    if job is None:
        return  # previewed already (a task run twice), or gone
    try:
        result = _run(job, dry_run=True)
    except ImportFileError as error:
        changes = {"status": ImportStatus.FAILED, "summary": {"error": str(error)}}
    except DATABASE_ERRORS:
        raise  # the database is away: the task is retried, the job stays pending meanwhile
    except Exception:
        changes = _failed_unexpectedly(job_id)
    else:
        changes = {"status": ImportStatus.PREVIEWED, "summary": result.summary(), "result_csv": result.to_csv()}
    ImportJob.objects.filter(pk=job_id, status=ImportStatus.PENDING).update(**changes)


@transaction.atomic
def import_job_confirm(*, job: ImportJob) -> bool:
    """Confirms a previewed job; False when it is not waiting for a confirmation (confirmed twice)."""
    from devices.imports.tasks import apply_import  # noqa: PLC0415

    claimed = ImportJob.objects.filter(pk=job.pk, status=ImportStatus.PREVIEWED).update(status=ImportStatus.CONFIRMED)
    if claimed:
        transaction.on_commit(partial(apply_import.delay, job.pk))
    return bool(claimed)


def import_job_apply(*, job_id: int, now: dt.datetime | None = None) -> None:
    """Imports a confirmed job's file for real, keeps the per-row result, and drops the file.

    The job is claimed with a conditional UPDATE, so a task delivered twice imports once (and importing
    twice would change nothing anyway: imports are idempotent).
    """
    if not ImportJob.objects.filter(pk=job_id, status=ImportStatus.CONFIRMED).update(status=ImportStatus.APPLYING):
        return
    job = ImportJob.objects.select_related("organisation", "created_by").get(pk=job_id)
    try:
        result = _run(job, dry_run=False)
    except ImportFileError as error:
        changes = {"status": ImportStatus.FAILED, "summary": {"error": str(error)}}
    except DATABASE_ERRORS:
        # Claimed but not finished: back to confirmed, so the retried task claims it again (importing is
        # idempotent, so rows already written are unchanged by the second run). If the database is too far
        # gone for even that, the job stays "applying" and the page says so.
        try:
            ImportJob.objects.filter(pk=job_id, status=ImportStatus.APPLYING).update(status=ImportStatus.CONFIRMED)
        except DATABASE_ERRORS:
            logger.warning("import job %s left applying: the database is unavailable", job_id)
        raise
    except Exception:
        changes = _failed_unexpectedly(job_id)
    else:
        changes = {"status": ImportStatus.DONE, "summary": result.summary(), "result_csv": result.to_csv()}
    ImportJob.objects.filter(pk=job_id).update(**changes, content=b"", finished_at=now or timezone.now())
