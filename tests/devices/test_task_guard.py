"""The poison-task guard on its own (tests/integration/test_poison_tasks.py kills a real worker): starts are
counted per task id, a normal end forgets them, and a task that never ended twice is given up, not run."""

from __future__ import annotations

import pytest

from devices.choices import ImportKind, ImportStatus
from devices.compliance.tasks import refresh_rollouts
from devices.imports.tasks import preview_import
from devices.models import ImportJob, TaskDelivery
from devices.task_guard import record_start

pytestmark = pytest.mark.django_db


def delivered(task, task_id: str, *args):
    """Runs ``task`` as a worker does for a message with this id (not eagerly)."""
    task.push_request(id=task_id, is_eager=False)
    try:
        return task(*args)
    finally:
        task.pop_request()


def killed_during(task, task_id: str, *args) -> None:
    """What a worker killed under the task leaves behind: its start, and no end."""
    record_start(task_id=task_id, name=task.name, arguments=", ".join(map(repr, args)))


@pytest.fixture
def job(org_a):
    return ImportJob.objects.create(
        organisation=org_a, kind=ImportKind.DEVICES, filename="a.csv", content=b"serial;model\nR58N1;Zebra TC21\n"
    )


def test_a_task_that_ends_leaves_no_row(job):
    delivered(preview_import, "t-1", job.pk)
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.PREVIEWED
    assert not TaskDelivery.objects.exists()


def test_a_task_that_raises_leaves_no_row_either():
    with pytest.raises(TypeError):
        delivered(refresh_rollouts, "t-2", "an argument it does not take")
    assert not TaskDelivery.objects.exists()


def test_one_killed_run_is_retried(job):
    killed_during(preview_import, "t-3", job.pk)
    delivered(preview_import, "t-3", job.pk)
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.PREVIEWED
    assert not TaskDelivery.objects.exists()


def test_two_killed_runs_and_the_third_delivery_is_given_up(job, settings):
    assert settings.CELERY_TASK_MAX_STARTS == 2
    killed_during(preview_import, "t-4", job.pk)
    killed_during(preview_import, "t-4", job.pk)
    delivered(preview_import, "t-4", job.pk)

    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED and job.content == b""
    assert "Started 2 times without finishing" in job.summary["error"]
    row = TaskDelivery.objects.get()
    assert (row.task_id, row.name, row.arguments, row.starts) == ("t-4", "devices.preview_import", str(job.pk), 3)
    assert row.poisoned_at is not None and "Given up" in row.reason


def test_a_given_up_task_delivered_again_is_not_run(job):
    for _ in range(3):
        killed_during(preview_import, "t-5", job.pk)
    TaskDelivery.objects.update(poisoned_at="2026-12-07T10:00:00Z", reason="given up")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.PENDING)
    delivered(preview_import, "t-5", job.pk)
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.PENDING  # not previewed: not run


def test_eager_and_direct_calls_are_not_guarded(job):
    preview_import.delay(job.pk)  # eager in tests
    preview_import(job.pk)
    assert not TaskDelivery.objects.exists()


def test_the_given_up_tasks_are_a_metric(client, settings, job):
    for _ in range(3):
        killed_during(preview_import, "t-6", job.pk)
    delivered(preview_import, "t-6", job.pk)
    settings.METRICS_TOKEN = "metrics-secret-for-tests-0123456789"
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-secret-for-tests-0123456789").content.decode()
    assert "fleetpatch_tasks_given_up 1.0" in body
