"""The periodic sweep, fanned out: the fleet split into id ranges, each recomputed in its own transaction.

A sweep is a :class:`~devices.models.SweepRun` with one :class:`~devices.models.SweepRange` row per range.
The Celery tasks (``devices.compliance.tasks``) are thin: ``sweep_compliance`` calls :func:`sweep_start` and sends one
``sweep_range`` task per pending range as a group; each calls :func:`sweep_range_run` then :func:`sweep_finish`.

1. :func:`sweep_start` counts the devices on every observed build (one UPDATE, so the ranges measure
   against fresh counts), reads ``MIN(id)`` and ``MAX(id)`` of the devices (two index lookups) and cuts that
   span into ranges of ``range_size`` ids, so no range holds more than ``range_size`` devices whatever the
   holes left by deleted devices. A redelivered start (same Celery task id) resumes its run. Every sweep
   re-evaluates every device: a build whose release date comes becomes the target at the first sweep after.
2. :func:`sweep_range_run` locks its range row, returns at once if the range is no longer pending (a task
   delivered twice), else recomputes ``id BETWEEN lo AND hi`` and marks the range done, in one transaction.
3. :func:`sweep_finish` is attempted after every range, in a transaction of its own, and succeeds once: a
   conditional UPDATE claims the run when no range is pending any more. Whichever range commits last
   attempts it after every other range's commit, so one attempt always sees them all; the claim's
   ``finished_at IS NULL`` condition makes the others no-ops. The claimer adds the ranges' totals, takes the
   daily snapshot and the dashboard tallies, and marks the run succeeded (or failed if a range gave up).

No Celery result backend is needed (none is configured: ``CELERY_RESULT_BACKEND`` is empty by default),
which a chord callback would require; and every step is idempotent, so ``acks_late`` redelivery is safe.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Max, Min, OuterRef, Sum
from django.utils import timezone

from devices.choices import SweepRangeStatus, SweepStatus
from devices.compliance import engine as compliance
from devices.compliance import observed, tallies
from devices.models import Device, SweepRange, SweepRun

logger = logging.getLogger(__name__)

# Finished runs kept for the admin and the metrics: a month of sweeps every 15 minutes is ~3,000 runs.
SWEEP_RUN_RETENTION = dt.timedelta(days=30)


def plan_ranges(*, lo: int | None, hi: int | None, range_size: int) -> list[tuple[int, int]]:
    """``(first, last)`` id pairs, both included, covering ``lo..hi`` in spans of ``range_size`` ids."""
    if lo is None or hi is None:
        return []
    if range_size < 1:
        raise ValueError("range_size must be at least 1")
    return [(start, min(start + range_size - 1, hi)) for start in range(lo, hi + 1, range_size)]


def sweep_start(*, task_id: str | None, range_size: int, now: dt.datetime | None = None) -> SweepRun:
    """The run of this sweep with its ranges planned: a new one, or the one ``task_id`` already started."""
    if task_id and (existing := SweepRun.objects.filter(task_id=task_id).first()) is not None:
        return existing
    observed.observed_builds_count()
    bounds = Device.objects.aggregate(lo=Min("id"), hi=Max("id"))
    ranges = plan_ranges(lo=bounds["lo"], hi=bounds["hi"], range_size=range_size)
    try:
        with transaction.atomic():
            run = SweepRun.objects.create(
                task_id=task_id or None,
                started_at=now or timezone.now(),
                range_size=range_size,
                ranges_planned=len(ranges),
            )
            SweepRange.objects.bulk_create(SweepRange(run=run, lo=lo, hi=hi) for lo, hi in ranges)
    except IntegrityError:
        # The same task delivered twice at once: the other delivery created the run.
        return SweepRun.objects.get(task_id=task_id)
    return run


def pending_ranges(run: SweepRun) -> list[tuple[int, int]]:
    return list(run.ranges.filter(status=SweepRangeStatus.PENDING).order_by("lo").values_list("lo", "hi"))


def sweep_range_run(*, run_id: int, lo: int, hi: int) -> compliance.RecomputeResult | None:
    """Recomputes one range in one transaction and records it done; ``None`` if it was not pending."""
    with transaction.atomic():
        # The row lock makes a second delivery of this range wait for the first, then find it done.
        sweep_range = SweepRange.objects.select_for_update().filter(run_id=run_id, lo=lo).first()
        if sweep_range is None or sweep_range.status != SweepRangeStatus.PENDING:
            return None
        result = compliance.recompute(id_range=(lo, hi), reason="sweep")
        sweep_range.status = SweepRangeStatus.DONE
        sweep_range.devices_updated = result.updated
        sweep_range.transitions = dict(result.transitions)
        sweep_range.finished_at = timezone.now()
        sweep_range.save(update_fields=["status", "devices_updated", "transitions", "finished_at"])
        SweepRun.objects.filter(pk=run_id).update(
            ranges_done=F("ranges_done") + 1, devices_updated=F("devices_updated") + result.updated
        )
    return result


def sweep_range_failed(*, run_id: int, lo: int, error: BaseException, final: bool) -> None:
    """Records a failed attempt of one range: to be retried alone, or (``final``) given up."""
    with transaction.atomic():
        changes: dict = {"attempts": F("attempts") + 1, "last_error": f"{type(error).__name__}: {error}"[:2000]}
        if final:
            changes["status"] = SweepRangeStatus.FAILED
        recorded = SweepRange.objects.filter(run_id=run_id, lo=lo, status=SweepRangeStatus.PENDING).update(**changes)
        if recorded:
            counter = "ranges_failed" if final else "range_retries"
            SweepRun.objects.filter(pk=run_id).update(**{counter: F(counter) + 1})


def sweep_finish(*, run_id: int) -> SweepRun | None:
    """Closes the run if no range is pending any more and nobody closed it yet; returns it if this call did."""
    with transaction.atomic():
        pending = SweepRange.objects.filter(run=OuterRef("pk"), status=SweepRangeStatus.PENDING)
        claimed = (
            SweepRun.objects.filter(pk=run_id, finished_at__isnull=True)
            .filter(~Exists(pending))
            .update(finished_at=timezone.now())
        )
        if not claimed:
            return None
        run = SweepRun.objects.get(pk=run_id)
        transitions: Counter = Counter()
        for counts in run.ranges.filter(status=SweepRangeStatus.DONE).values_list("transitions", flat=True):
            transitions.update(counts)
        run.devices_updated = run.ranges.aggregate(total=Sum("devices_updated"))["total"] or 0
        run.transitions = dict(sorted(transitions.items()))
        tallies.snapshot_statuses()
        tallies.tally_devices()
        run.status = (
            SweepStatus.FAILED
            if run.ranges.filter(status=SweepRangeStatus.FAILED).exists()
            else (SweepStatus.SUCCEEDED)
        )
        run.finished_at = timezone.now()
        run.save(update_fields=["devices_updated", "transitions", "status", "finished_at"])
        SweepRun.objects.filter(started_at__lt=run.started_at - SWEEP_RUN_RETENTION).delete()
    logger.info(
        "compliance sweep %s %s in %.1f s: %d ranges, %d devices updated, transitions %s",
        run.pk,
        run.status,
        run.duration.total_seconds(),
        run.ranges_planned,
        run.devices_updated,
        run.transitions,
    )
    return run
