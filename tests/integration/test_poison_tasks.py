"""No poison task: a task whose worker is killed under it twice (a real prefork worker on Redis, its child
SIGKILLed as the kernel's OOM killer would) is given up on its third delivery, and the queue moves on."""

from __future__ import annotations

import os
import signal

import pytest

from devices.choices import ImportKind, ImportStatus
from devices.models import ImportJob, TaskDelivery
from tests.integration.processes import children, send_task, start_celery_worker, stop_process, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def big_inventory(rows: int) -> bytes:
    # Long enough to read that the test can kill the child while it runs the preview.
    return b"serial;model;fleet\n" + b"".join(b"R58N%09d;Zebra TC21;Depot Lyon\n" % i for i in range(rows))


def test_a_task_that_kills_its_worker_twice_is_given_up_and_the_queue_moves_on(real_services, tmp_path, org_a):
    doomed = ImportJob.objects.create(
        organisation=org_a, kind=ImportKind.DEVICES, filename="huge.csv", content=big_inventory(400_000)
    )
    worker = start_celery_worker(real_services, log_path=tmp_path / "worker.log", name="poison", pool="prefork")
    try:
        send_task(real_services, "devices.preview_import", doomed.pk)
        for start in (1, 2):
            # The child has started the task (its start is recorded) and is still running it: kill it.
            wait_until(
                lambda start=start: TaskDelivery.objects.filter(starts=start).exists(),
                timeout=60,
                what=f"start {start} of the preview",
                interval=0.05,
            )
            (child,) = children(worker.pid)
            os.kill(child, signal.SIGKILL)
        wait_until(
            lambda: ImportJob.objects.get(pk=doomed.pk).status == ImportStatus.FAILED,
            timeout=90,
            what="the third delivery to be given up",
            interval=0.2,
        )
        given_up = TaskDelivery.objects.get()
        assert given_up.name == "devices.preview_import" and given_up.starts == 3
        assert given_up.poisoned_at is not None and given_up.arguments == str(doomed.pk)
        assert "Started 2 times without finishing" in ImportJob.objects.get(pk=doomed.pk).summary["error"]

        # The queue moved on: the next job is previewed by the same worker.
        fine = ImportJob.objects.create(
            organisation=org_a, kind=ImportKind.DEVICES, filename="ok.csv", content=big_inventory(3)
        )
        send_task(real_services, "devices.preview_import", fine.pk)
        wait_until(
            lambda: ImportJob.objects.get(pk=fine.pk).status == ImportStatus.PREVIEWED,
            timeout=60,
            what="the next job's preview",
        )
        assert worker.poll() is None
        # Its start was recorded and, as it finished, forgotten: only the given-up task remains.
        assert list(TaskDelivery.objects.values_list("name", flat=True)) == ["devices.preview_import"]
    finally:
        stop_process(worker)
    log = (tmp_path / "worker.log").read_text()
    assert log.count("WorkerLostError") >= 2 or log.count("signal 9") >= 2, log[-3000:]
