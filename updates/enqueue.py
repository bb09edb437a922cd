"""Enqueueing after commit that survives a broker outage.

A web request that changed the catalogue or a policy has committed by the time its task is sent: if the
broker (Redis) is down then, the request must still succeed. The task is dropped with a warning naming
what makes up for it (the periodic sweep re-evaluates every device; the digest dispatcher sends again
what stayed unsent). See README, "Faults survived".
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnreachable

logger = logging.getLogger(__name__)


def enqueue_on_commit(task: Task, *args: Any, catch_up: str) -> None:
    """Sends ``task(*args)`` once the current transaction commits; logs instead of failing when the broker is down.

    ``catch_up`` says, for the log, what will do the work instead (e.g. "the next sweep").
    """

    def send() -> None:
        try:
            task.delay(*args)
        except BrokerUnreachable as error:
            logger.warning(
                "broker unreachable, %s%r not enqueued (%s): %s will catch up", task.name, args, error, catch_up
            )

    transaction.on_commit(send)
