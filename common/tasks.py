"""Task helpers every app shares: the database-retry policy, and enqueueing after commit.

Enqueueing survives a broker outage: a web request that changed the catalogue or a policy has committed by
the time its task is sent, so if the broker (Redis) is down then, the request must still succeed. The task
is dropped with a warning naming what makes up for it (the periodic sweep re-evaluates every device; the
digest dispatcher sends again what stayed unsent). See docs/operations.md, "Faults survived".

A lower layer that must start work in a higher one (the catalogue changed, so devices must be recomputed)
names the task instead of importing it: :func:`enqueue_task_on_commit` looks it up in Celery's registry.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import Task, current_app
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from kombu.exceptions import OperationalError as BrokerUnreachable

logger = logging.getLogger(__name__)

# Errors after which a task is worth running again: the database restarting, failing over, or aborting a
# transaction (a deadlock, a serialisation failure).
DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, DatabaseError)

# The one retry policy of tasks that only fail when the database does: redelivered after a worker crash
# (acks_late), retried with exponential backoff and jitter, given up after ``max_retries``.
DATABASE_RETRY: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": DATABASE_ERRORS,
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


def database_retry(**overrides: Any) -> dict[str, Any]:
    """``DATABASE_RETRY`` with some values changed (a daily job backs off in minutes, not seconds)."""
    return {**DATABASE_RETRY, **overrides}


def enqueue_on_commit(task: Task | str, *args: Any, catch_up: str, eta: dt.datetime | None = None) -> None:
    """Sends ``task(*args)`` once the current transaction commits; logs instead of failing when the broker is down.

    ``task`` is a task or a registered task's name. ``catch_up`` says, for the log, what will do the work
    instead (e.g. "the next sweep"). ``eta``: run it no earlier than this moment (a build released later).
    """

    def send() -> None:
        name = task if isinstance(task, str) else task.name
        try:
            registered = task if not isinstance(task, str) else registered_task(name)
            # delay and apply_async honour task_always_eager and the routes.
            if registered is not None and eta is not None:
                registered.apply_async(args=args, eta=eta)
            elif registered is not None:
                registered.delay(*args)
            elif eta is not None:
                current_app.send_task(name, args=args, eta=eta)
            else:
                current_app.send_task(name, args=args)
        except BrokerUnreachable as error:
            logger.warning("broker unreachable, %s%r not enqueued (%s): %s will catch up", name, args, error, catch_up)

    transaction.on_commit(send)


def registered_task(name: str) -> Task | None:
    """The task registered under ``name``, importing every app's task modules first if it is not there yet
    (a web process imports them only on demand; a worker has them all from its start)."""
    tasks = current_app.tasks
    if name not in tasks:
        current_app.loader.import_default_modules()
    return tasks.get(name)
