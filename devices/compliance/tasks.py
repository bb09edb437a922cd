"""Celery tasks of the compliance engine: thin, idempotent wrappers that take ids and call the engine.

Every task may run twice (``acks_late`` redelivers after a worker crash): recomputing writes only
rows whose stored compliance differs, and records each transition once.
"""

from __future__ import annotations

import logging

from celery import Task, group, shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings
from django.db import connection, transaction

from common.tasks import DATABASE_ERRORS, DATABASE_RETRY
from devices.compliance import engine as compliance
from devices.compliance import sweeps
from devices.compliance.linking import link_reported_models

logger = logging.getLogger(__name__)


@shared_task(name="updates.sweep_compliance", bind=True, **DATABASE_RETRY)
def sweep_compliance(self: Task) -> dict:
    """The periodic sweep: statuses that change with the passage of time (grace, patch age, silence, support).

    Plans a SweepRun and sends one ``updates.sweep_range`` task per id range, as a group spread over however
    many workers there are (see devices.compliance.sweeps). Delivered again, it resumes the same run.
    """
    run = sweeps.sweep_start(task_id=self.request.id, range_size=settings.SWEEP_RANGE_SIZE)
    ranges = sweeps.pending_ranges(run)
    if ranges:
        group(sweep_range.si(run.pk, lo, hi) for lo, hi in ranges).apply_async()
    else:
        sweeps.sweep_finish(run_id=run.pk)  # an empty fleet, or every range already done before a redelivery
    run.refresh_from_db()
    return run.summary()


@shared_task(name="updates.sweep_range", bind=True, acks_late=True, max_retries=DATABASE_RETRY["max_retries"])
def sweep_range(self: Task, run_id: int, lo: int, hi: int) -> dict:
    """One range of a sweep, in one transaction, then an attempt to close the run; a database error retries
    this range alone, with backoff (a retry of a range already done only attempts the closing again)."""
    try:
        result = sweeps.sweep_range_run(run_id=run_id, lo=lo, hi=hi)
        sweeps.sweep_finish(run_id=run_id)
    except DATABASE_ERRORS as error:
        final = self.request.retries >= self.max_retries
        _record_range_failure(run_id=run_id, lo=lo, hi=hi, error=error, final=final)
        if not final:
            countdown = get_exponential_backoff_interval(
                factor=DATABASE_RETRY["retry_backoff"],
                retries=self.request.retries,
                maximum=DATABASE_RETRY["retry_backoff_max"],
                full_jitter=True,
            )
            raise self.retry(exc=error, countdown=countdown) from error
        raise
    return {"run": run_id, "lo": lo, "hi": hi, "updated": None if result is None else result.updated}


def _record_range_failure(*, run_id: int, lo: int, hi: int, error: BaseException, final: bool) -> None:
    """Writes the failure on the range (and, if ``final``, closes the run without it). Best effort: with the
    database down this cannot be written either, and the retry matters more than the record."""
    # A broken connection cannot record anything: drop it, the next query opens a new one (not when run
    # eagerly inside an outer transaction, which closing would end).
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()
    if final:
        logger.error("sweep %s range %d-%d given up after its last retry: %s", run_id, lo, hi, error)
    else:
        logger.warning("sweep %s range %d-%d failed, retrying it alone: %s", run_id, lo, hi, error)
    try:
        sweeps.sweep_range_failed(run_id=run_id, lo=lo, error=error, final=final)
        if final:
            sweeps.sweep_finish(run_id=run_id)
    except DATABASE_ERRORS:
        logger.exception("sweep %s range %d-%d: its failure could not be recorded", run_id, lo, hi)


@shared_task(name="updates.recompute_model", **DATABASE_RETRY)
def recompute_model(model_id: int, reason: str = "catalogue") -> dict:
    """After a catalogue change of one model: link the devices that reported its name (or an alias) without
    a known model and those that reported a build it now has, and re-evaluate the devices of that model
    only (enqueued by name from ``updates.services``), in one transaction."""
    with transaction.atomic():
        linked = link_reported_models(model_id=model_id)
        result = compliance.model_recompute(model_id=model_id, reason=reason)
    logger.info("model %s recomputed: %d devices linked, %d updated", model_id, linked, result.updated)
    return {"linked": linked, "updated": result.updated, "transitions": dict(result.transitions)}


@shared_task(name="updates.recompute_organisation", **DATABASE_RETRY)
def recompute_organisation(organisation_id: int, reason: str = "policy") -> dict:
    """After a policy change: re-evaluate one organisation's devices (enqueued by name from ``fleet.services``)."""
    result = compliance.recompute(organisation_id=organisation_id, reason=reason)
    return {"updated": result.updated, "transitions": dict(result.transitions)}


@shared_task(name="updates.refresh_rollouts", **DATABASE_RETRY)
def refresh_rollouts() -> int:
    """Daily: the rollout curves of recent builds, from the check-ins (see ``rollouts.rollouts_refresh``)."""
    from devices.compliance.rollouts import rollouts_refresh

    return rollouts_refresh()
