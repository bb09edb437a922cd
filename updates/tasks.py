"""Celery tasks of the compliance engine: thin, idempotent wrappers that take ids and call the engine.

Every task may run twice (``acks_late`` redelivers after a worker crash): recomputing writes only
rows whose stored compliance differs, and records each transition once.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError, InterfaceError, OperationalError

from updates import compliance

logger = logging.getLogger(__name__)

_RETRY = {
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError, DatabaseError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(name="updates.sweep_compliance", **_RETRY)
def sweep_compliance() -> dict:
    """The periodic sweep: statuses that change with the passage of time (grace, patch age, silence, support)."""
    result = compliance.recompute(reason="sweep")
    compliance.snapshot_statuses()
    compliance.tally_devices()
    logger.info("compliance sweep: %d devices updated, transitions %s", result.updated, dict(result.transitions))
    return {"updated": result.updated, "transitions": dict(result.transitions)}


@shared_task(name="updates.recompute_model", **_RETRY)
def recompute_model(model_id: int, reason: str = "catalogue") -> dict:
    """After a catalogue change of one model: re-evaluate the devices of that model only."""
    result = compliance.recompute(model_id=model_id, reason=reason)
    logger.info("model %s recomputed: %d devices updated", model_id, result.updated)
    return {"updated": result.updated, "transitions": dict(result.transitions)}


@shared_task(name="updates.recompute_organisation", **_RETRY)
def recompute_organisation(organisation_id: int, reason: str = "policy") -> dict:
    """After a policy change: re-evaluate one organisation's devices."""
    result = compliance.recompute(organisation_id=organisation_id, reason=reason)
    return {"updated": result.updated, "transitions": dict(result.transitions)}


@shared_task(name="updates.refresh_rollouts", **_RETRY)
def refresh_rollouts() -> int:
    """Daily: the rollout curves of recent builds, from the check-ins (see updates.services.rollouts_refresh)."""
    from updates.services import rollouts_refresh

    return rollouts_refresh()
