"""Celery tasks of the imports: thin wrappers that take a job id and call a service.

Registered through ``CELERY_IMPORTS`` (config/settings.py), as this module is not an app's ``tasks``.
"""

from __future__ import annotations

from celery import shared_task

from devices.imports import services


@shared_task(name="devices.preview_import", acks_late=True)
def preview_import(job_id: int) -> None:
    services.import_job_preview(job_id=job_id)


@shared_task(name="devices.apply_import", acks_late=True)
def apply_import(job_id: int) -> None:
    services.import_job_apply(job_id=job_id)
