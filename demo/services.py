"""The demo fleet: a believable catalogue, organisations, devices and their history, written in bulk.

``seed_demo()`` is what ``manage.py seed_demo`` and the run script call. It is deterministic and idempotent:

1. Catalogue (``demo.catalogue``): manufacturers, rugged models whose support dates are anchored to the seeding
   day (so a fresh demo always shows a model past support and one about to lose it), and per model a monthly
   stable build history, a revoked build and two betas. A build's number and dates depend only on its model and
   calendar month, never on ``seed``, so reseeding later only adds the months that have passed since.
2. Organisations (``demo.organisations``; the ministry first), their fleets, a default policy each, a stricter
   policy on one of the ministry's fleets, and the ministry's private build line for its main models.
3. Devices (``demo.devices``, ``demo.history``), in batches of ``BATCH_SIZE``: device number ``i``'s organisation
   and serial depend on ``i`` alone, everything else on ``(seed, i)``. Devices that already exist are skipped, so
   a second run creates nothing and a larger ``devices`` adds only the missing ones. Each new device gets its
   check-in history (the newest check-in is its current state) and, for a few, a battery replacement. Rows are
   written with ``COPY`` on PostgreSQL (``bulk_create`` elsewhere; ``demo.bulk``) while a second thread generates
   the next batch.

Every row has a natural key; rows that exist are read back by it rather than written again. Nothing here
computes compliance: the engine does that from the rows written here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from demo.base import BATCH_SIZE, DEFAULT_DEVICES, DEFAULT_ORGANISATIONS, DEFAULT_SEED, SeedResult
from demo.bulk import insert_rows
from demo.catalogue import seed_catalogue
from demo.devices import DeviceContext, serial_of
from demo.history import CHECK_IN_COLUMNS, DEVICE_COLUMNS, EVENT_COLUMNS, generate_batch
from demo.organisations import (
    MINISTRY_SLUG,
    organisation_specs,
    seed_managers_and_digests,
    seed_organisations,
    seed_private_builds,
)
from devices.models import BatteryEvent, CheckIn, Device


@transaction.atomic
def seed_demo(
    *,
    devices: int = DEFAULT_DEVICES,
    organisations: int = DEFAULT_ORGANISATIONS,
    seed: int = DEFAULT_SEED,
    now: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SeedResult:
    """Creates whatever the demo fleet of ``devices`` devices over ``organisations`` organisations lacks.

    ``progress(done, total)`` is called after each batch with the devices just written and the number this run
    writes in all.
    """
    if organisations < 1 or devices < 0:
        raise ValueError(gettext("The demo needs at least one organisation and a non-negative number of devices."))
    now = now or timezone.now()
    result = SeedResult()
    org_specs = organisation_specs(organisations)
    result.organisation_slugs = [spec.slug for spec in org_specs]

    device_models = seed_catalogue(now=now, result=result)
    orgs, fleets = seed_organisations(org_specs, result=result)
    seed_managers_and_digests(orgs, now=now, result=result)
    seed_private_builds(orgs[MINISTRY_SLUG], device_models, now=now, result=result)
    context = DeviceContext.load(org_specs, orgs, fleets, device_models, now=now, seed=seed)
    seed_devices(context, devices, result=result, progress=progress)
    return result


def seed_devices(
    context: DeviceContext, count: int, *, result: SeedResult, progress: Callable[[int, int], None] | None
) -> None:
    existing = set(
        Device.objects.filter(organisation__in=[o.org for o in context.orgs]).values_list("organisation_id", "serial")
    )
    missing = [i for i in range(count) if (context.organisation_of(i).org.pk, serial_of(i)) not in existing]
    if progress:
        progress(0, len(missing))
    chunks = [missing[start : start + BATCH_SIZE] for start in range(0, len(missing), BATCH_SIZE)]
    if not chunks:
        return
    # Generating a batch is pure Python and writing one mostly waits on the database: a second thread generates
    # the next batch meanwhile. It never touches the database (the context holds everything it reads).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-demo") as pool:
        upcoming = pool.submit(generate_batch, context, chunks[0])
        for number in range(len(chunks)):
            batch = upcoming.result()
            if number + 1 < len(chunks):
                upcoming = pool.submit(generate_batch, context, chunks[number + 1])
            ids = insert_rows(Device, DEVICE_COLUMNS, [device for device, _, _ in batch], return_ids=True)
            check_ins = [(pk, *row) for pk, (_, rows, _) in zip(ids, batch, strict=True) for row in rows]
            events = [(pk, *event) for pk, (_, _, event) in zip(ids, batch, strict=True) if event]
            insert_rows(CheckIn, CHECK_IN_COLUMNS, check_ins)
            insert_rows(BatteryEvent, EVENT_COLUMNS, events)
            result.add(Device, len(batch))
            result.add(CheckIn, len(check_ins))
            result.add(BatteryEvent, len(events))
            if progress:
                progress(len(batch), len(missing))
