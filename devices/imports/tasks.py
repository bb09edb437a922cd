"""Celery tasks of the imports: thin wrappers that take a job id and call a service.

Registered through ``CELERY_IMPORTS`` (config/settings.py), as this module is not an app's ``tasks``.
"""

from __future__ import annotations

from celery import shared_task

from common.tasks import DATABASE_RETRY
from devices.imports import services
from devices.task_guard import GuardedTask

# A job that the database interrupts is retried (the services put it back where the retry finds it); any
# other failure ends the job "failed" inside the service, so nothing is retried for it.


class ImportTask(GuardedTask):
    def on_poisoned(self, args: tuple, kwargs: dict, *, reason: str) -> None:
        # A file that killed the worker twice: the job's page says so, instead of "pending" for ever.
        job_id = kwargs.get("job_id", args[0] if args else None)
        if job_id is not None:
            services.import_job_abandon(job_id=job_id, reason=reason)


@shared_task(name="devices.preview_import", base=ImportTask, **DATABASE_RETRY)
def preview_import(job_id: int) -> None:
    services.import_job_preview(job_id=job_id)


@shared_task(name="devices.apply_import", base=ImportTask, **DATABASE_RETRY)
def apply_import(job_id: int) -> None:
    services.import_job_apply(job_id=job_id)
