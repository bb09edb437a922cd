"""No poison task: a task that killed its worker (or hit its hard time limit) twice is not run a third time.

Tasks are acknowledged late and requeued when their worker is lost (``CELERY_TASK_ACKS_LATE``,
``CELERY_TASK_REJECT_ON_WORKER_LOST``), so a task that dies with its worker is not lost. The price is that a
task which *kills* its worker (a file that exhausts memory, a statement that never ends) comes back forever
and holds its queue for every tenant. :class:`GuardedTask`, every task's base class (``config/celery.py``),
counts the starts of each task id in :class:`devices.models.TaskDelivery`:

1. Before the task runs, one upsert adds a start to its row (the row is created at the first start).
2. When the task returns or raises (a retry included), its row is deleted: a normal end, however it ended.
3. A row found at a start therefore means the previous run never ended. Once a task id has started
   ``CELERY_TASK_MAX_STARTS`` times without ending, its next delivery is *given up*: the row is kept with
   ``poisoned_at`` and the reason, the task's :meth:`GuardedTask.on_poisoned` says so where its users look
   (an import job ends "failed"), nothing is run, and the message is acknowledged.

The guard fails open: if the database cannot record a start, the task runs unguarded (it needs the database
anyway, and its own retry policy applies). Tasks called directly (no task id) are not guarded.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from common.tasks import DATABASE_ERRORS

logger = logging.getLogger(__name__)

ARGUMENTS_MAX_CHARS = 2000


def _arguments(args: tuple, kwargs: dict) -> str:
    text = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    return text[:ARGUMENTS_MAX_CHARS]


def record_start(*, task_id: str, name: str, arguments: str) -> tuple[int, bool]:
    """Adds a start to ``task_id``'s row; returns (starts, given up already)."""
    from devices.models import TaskDelivery  # noqa: PLC0415 - the Celery app loads this before Django's apps

    table = TaskDelivery._meta.db_table
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (task_id, name, arguments, starts, first_started_at, last_started_at, reason)
            VALUES (%s, %s, %s, 1, %s, %s, '')
            ON CONFLICT (task_id) DO UPDATE
               SET starts = {table}.starts + 1, last_started_at = EXCLUDED.last_started_at
            RETURNING starts, poisoned_at
            """,
            [task_id, name[:200], arguments, now, now],
        )
        starts, poisoned_at = cursor.fetchone()
    return starts, poisoned_at is not None


def record_end(task_id: str) -> None:
    from devices.models import TaskDelivery  # noqa: PLC0415

    TaskDelivery.objects.filter(task_id=task_id, poisoned_at__isnull=True).delete()


def give_up(*, task_id: str, reason: str) -> None:
    from devices.models import TaskDelivery  # noqa: PLC0415

    TaskDelivery.objects.filter(task_id=task_id).update(poisoned_at=timezone.now(), reason=reason)


class GuardedTask(Task):
    """Every FleetPatch task: see the module's docstring."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = getattr(self.request, "id", None)
        if not task_id or self.request.is_eager:
            return super().__call__(*args, **kwargs)
        try:
            starts, given_up = record_start(task_id=task_id, name=self.name, arguments=_arguments(args, kwargs))
        except DATABASE_ERRORS:
            logger.warning("task %s [%s] runs unguarded: its start could not be recorded", self.name, task_id)
            return super().__call__(*args, **kwargs)
        if given_up:
            logger.error("task %s [%s] was given up before; not run again", self.name, task_id)
            return None
        limit = settings.CELERY_TASK_MAX_STARTS
        if starts > limit:
            reason = gettext(
                "Started %(starts)d times without finishing: its worker was killed (out of memory or past its "
                "time limit) each time. Given up, so that its queue moves on."
            ) % {"starts": starts - 1}
            give_up(task_id=task_id, reason=reason)
            logger.error("task %s [%s] given up after %d unfinished starts", self.name, task_id, starts - 1)
            self.on_poisoned(args, kwargs, reason=reason)
            return None
        try:
            return super().__call__(*args, **kwargs)
        finally:
            try:
                record_end(task_id)
            except DATABASE_ERRORS:
                logger.warning("task %s [%s]: its end could not be recorded", self.name, task_id)

    def on_poisoned(self, args: tuple, kwargs: dict, *, reason: str) -> None:
        """Says, where the task's users look, that it was given up (nothing by default: the admin lists it)."""
