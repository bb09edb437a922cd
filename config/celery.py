"""The Celery application: configured from Django's settings (``CELERY_*``), tasks found in the apps."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import celeryd_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Every task counts its unfinished starts: one that kills its worker twice is given up (devices/task_guard.py).
app = Celery("fleetpatch", task_cls="devices.task_guard:GuardedTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _create_broker_folders(sender: Celery, **kwargs: object) -> None:
    """The filesystem transport expects its folders to exist; create them on first use."""
    from django.conf import settings

    for folder in getattr(settings, "CELERY_BROKER_FOLDERS", []):
        folder.mkdir(parents=True, exist_ok=True)


@celeryd_init.connect
def _use_worker_statement_timeout(**kwargs: object) -> None:
    """A worker's connections get the workers' statement timeout (longer than a web request's; common.db).
    ``celeryd_init`` runs in the worker's main process before its pool starts: the children inherit it."""
    from common.db import use_database_role

    use_database_role("worker")
