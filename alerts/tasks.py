"""Celery tasks of the email digests: thin wrappers that take ids and call ``alerts.services``.

Both may run twice (beat firing twice, ``acks_late`` redelivery after a worker crash): the dispatcher's insert
is keyed on (subscription, period) and a send starts by claiming its row, so a digest still goes out once.
"""

from __future__ import annotations

import logging

from celery import shared_task

from alerts import services
from common.tasks import DATABASE_RETRY

logger = logging.getLogger(__name__)


# The names keep their "fleet." prefix from before the move: beat's rows in the database and
# CELERY_TASK_ROUTES name the tasks, and messages already queued must still find them.
@shared_task(name="fleet.dispatch_digests", **DATABASE_RETRY)
def dispatch_digests() -> dict:
    """Hourly (django-celery-beat): claim the period of every due subscription and enqueue its send."""
    result = services.digests_dispatch()
    logger.info(
        "digest dispatch: %d claimed, %d enqueued again, %d lost claims settled",
        len(result.created),
        len(result.requeued),
        result.lost,
    )
    return {"created": result.created, "requeued": result.requeued, "lost": result.lost}


# SMTP attempts are counted on the delivery row (DIGEST_MAX_ATTEMPTS), not by Celery: its own cap only bounds
# database-error retries and must stay above any sensible DIGEST_MAX_ATTEMPTS.
@shared_task(name="fleet.send_digest", bind=True, **{**DATABASE_RETRY, "max_retries": 50})
def send_digest(self, delivery_id: int) -> str:
    """Send one claimed period; an SMTP refusal retries with the backoff the service asks for (the service
    counts the attempts and gives up after DIGEST_MAX_ATTEMPTS)."""
    try:
        return services.digest_delivery_send(delivery_id=delivery_id)
    except services.DigestSendError as exc:
        logger.warning("digest %s not sent (%s); retrying in %ss", delivery_id, exc, exc.retry_in)
        raise self.retry(exc=exc, countdown=exc.retry_in) from exc
