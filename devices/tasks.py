"""Celery tasks of the devices app: thin wrappers that call services."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from common.tasks import database_retry
from devices import partitions, services
from devices.checkins import pubsub

logger = logging.getLogger(__name__)

# Daily jobs: a failed run is retried over the following hours, not seconds.
DAILY_RETRY = database_retry(retry_backoff=60, retry_backoff_max=3600, max_retries=5)


@shared_task(name="devices.prune_check_ins", **DAILY_RETRY)
def prune_check_ins() -> dict:
    """The daily retention job: check-ins older than CHECKIN_RETENTION_DAYS go, build transitions stay; so do
    old rejected Pub/Sub messages and the message ids kept to recognise redeliveries.

    On PostgreSQL whole expired months are dropped as partitions (see ``services.check_ins_prune``).

    Safe to run twice or to resume after a crash: every batch committed is final, and a second run
    finds only what the first did not reach. CHECKIN_RETENTION_DAYS=0 keeps everything.
    """
    pubsub = _prune_pubsub_records()
    days = settings.CHECKIN_RETENTION_DAYS
    if days <= 0:
        logger.info("check-in retention disabled (CHECKIN_RETENTION_DAYS=%d)", days)
        return {"deleted": 0, "older_than": None, **pubsub}
    older_than = timezone.now() - dt.timedelta(days=days)
    deleted = services.check_ins_prune(older_than=older_than, batch_size=settings.CHECKIN_PRUNE_BATCH_SIZE)
    logger.info("check-in retention: %d check-ins reported before %s deleted", deleted, older_than.isoformat())
    return {"deleted": deleted, "older_than": older_than.isoformat(), **pubsub}


def _prune_pubsub_records() -> dict:
    """Rejected messages after REJECTED_MESSAGE_RETENTION_DAYS, Pub/Sub message ids after
    PUBSUB_MESSAGE_ID_RETENTION_DAYS (0 keeps them)."""
    now = timezone.now()
    counts = {}
    for key, days, prune in (
        ("rejected_messages_deleted", settings.REJECTED_MESSAGE_RETENTION_DAYS, pubsub.rejected_messages_prune),
        ("pubsub_message_ids_deleted", settings.PUBSUB_MESSAGE_ID_RETENTION_DAYS, pubsub.pubsub_messages_prune),
    ):
        counts[key] = (
            prune(older_than=now - dt.timedelta(days=days), batch_size=settings.CHECKIN_PRUNE_BATCH_SIZE)
            if days > 0
            else 0
        )
    logger.info("Pub/Sub retention: %s", counts)
    return counts


@shared_task(name="devices.ensure_check_in_partitions", **DAILY_RETRY)
def ensure_check_in_partitions() -> dict:
    """The daily job keeping the check-in history's monthly partitions ahead of the calendar (PostgreSQL).

    Creates only the months missing, from the retention cutoff's to ``partitions.MONTHS_AHEAD`` ahead:
    running it twice, or on SQLite, creates nothing.
    """
    created = partitions.ensure_ahead()
    logger.info("check-in partitions: %d created (%s)", len(created), ", ".join(created) or "none missing")
    return {"created": created}
