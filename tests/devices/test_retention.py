"""Check-in retention: old reports go in bounded batches; build transitions and status history stay."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from devices.models import CheckIn, Device, StatusChange
from devices.services import check_ins_prune
from devices.tasks import prune_check_ins
from tests.factories import CheckInFactory, DeviceFactory, StatusChangeFactory

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
CUTOFF = NOW - dt.timedelta(days=400)


def history(device: Device, builds: list[str], *, start: dt.datetime) -> list[CheckIn]:
    """One check-in a day from ``start``, reporting each build of ``builds`` in turn."""
    return [
        CheckInFactory(device=device, reported_at=start + dt.timedelta(days=day), build_number=build)
        for day, build in enumerate(builds)
    ]


def builds_left(device: Device) -> list[str]:
    return list(device.check_ins.order_by("reported_at").values_list("build_number", flat=True))


@pytest.mark.django_db
def test_old_check_ins_go_but_each_build_transition_stays() -> None:
    device = DeviceFactory()
    old = history(device, ["A", "A", "A", "B", "B", "A", "A"], start=CUTOFF - dt.timedelta(days=30))
    recent = history(device, ["A", "A", "C"], start=CUTOFF + dt.timedelta(days=1))

    deleted = check_ins_prune(older_than=CUTOFF, batch_size=1000)

    assert deleted == 4
    kept = set(device.check_ins.values_list("id", flat=True))
    # The first A, the first B, the return to A: the timeline still shows every change of build.
    assert kept == {old[0].id, old[3].id, old[5].id} | {checkin.id for checkin in recent}
    assert builds_left(device) == ["A", "B", "A", "A", "A", "C"]


@pytest.mark.django_db
def test_transitions_are_per_device_not_across_the_table() -> None:
    first, second = DeviceFactory(), DeviceFactory()
    start = CUTOFF - dt.timedelta(days=10)
    # Interleaved ids: the two devices report on the same days, alternately.
    for day, (build_1, build_2) in enumerate([("A", "B"), ("A", "B"), ("B", "B"), ("B", "A")]):
        CheckInFactory(device=first, reported_at=start + dt.timedelta(days=day), build_number=build_1)
        CheckInFactory(device=second, reported_at=start + dt.timedelta(days=day), build_number=build_2)

    check_ins_prune(older_than=CUTOFF, batch_size=1000)

    assert builds_left(first) == ["A", "B"]
    assert builds_left(second) == ["B", "A"]


@pytest.mark.django_db
def test_a_late_report_is_judged_by_when_it_was_reported_not_when_it_arrived() -> None:
    device = DeviceFactory()
    start = CUTOFF - dt.timedelta(days=10)
    history(device, ["A", "A"], start=start)
    history(device, ["B", "B"], start=start + dt.timedelta(days=4))
    # Arrives last (highest id) but was reported on day 2, between the As and the Bs: a repeat of A.
    late = CheckInFactory(device=device, reported_at=start + dt.timedelta(days=2), build_number="A")

    check_ins_prune(older_than=CUTOFF, batch_size=1000)

    assert builds_left(device) == ["A", "B"]
    assert not CheckIn.objects.filter(id=late.id).exists()


@pytest.mark.django_db
def test_small_batches_delete_the_same_rows_each_in_its_own_bounded_statement() -> None:
    devices = DeviceFactory.create_batch(3)
    for device in devices:
        history(device, ["A", "A", "A", "B", "B"], start=CUTOFF - dt.timedelta(days=20))

    with CaptureQueriesContext(connection) as queries:
        deleted = check_ins_prune(older_than=CUTOFF, batch_size=4)

    assert deleted == 3 * 3
    assert all(builds_left(device) == ["A", "B"] for device in devices)
    deletes = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("DELETE")]
    # 15 old check-ins walked 4 at a time: 4 batches, one DELETE each (each its own transaction).
    assert len(deletes) == 4


@pytest.mark.django_db
def test_a_second_run_finds_nothing_more_to_delete() -> None:
    history(DeviceFactory(), ["A", "A", "B", "B", "B"], start=CUTOFF - dt.timedelta(days=20))

    assert check_ins_prune(older_than=CUTOFF, batch_size=2) == 3
    assert check_ins_prune(older_than=CUTOFF, batch_size=2) == 0


@pytest.mark.django_db
def test_status_history_is_never_touched() -> None:
    device = DeviceFactory()
    history(device, ["A"] * 5, start=CUTOFF - dt.timedelta(days=20))
    change = StatusChangeFactory(device=device, changed_at=CUTOFF - dt.timedelta(days=300))

    check_ins_prune(older_than=CUTOFF, batch_size=1000)

    assert device.check_ins.count() == 1
    assert StatusChange.objects.filter(id=change.id).exists()


@pytest.mark.django_db
def test_the_daily_task_prunes_what_is_older_than_the_configured_retention(settings) -> None:
    settings.CHECKIN_RETENTION_DAYS = 30
    device = DeviceFactory()
    now = timezone.now()
    # Months before the cutoff's month: on PostgreSQL retention drops whole months and leaves the month
    # holding the cutoff for next time (tests/devices/test_partitions.py), on SQLite it deletes rows.
    history(device, ["A", "A", "A"], start=now - dt.timedelta(days=100))
    history(device, ["A", "A"], start=now - dt.timedelta(days=5))

    result = prune_check_ins.apply().get()

    assert result["deleted"] == 2
    assert device.check_ins.count() == 3


@pytest.mark.django_db
def test_a_retention_of_zero_days_keeps_everything(settings) -> None:
    settings.CHECKIN_RETENTION_DAYS = 0
    history(DeviceFactory(), ["A"] * 3, start=timezone.now() - dt.timedelta(days=4000))

    assert prune_check_ins.apply().get()["deleted"] == 0
    assert CheckIn.objects.count() == 3


@pytest.mark.django_db
def test_the_retention_task_is_scheduled_nightly_by_a_migration() -> None:
    task = PeriodicTask.objects.get(name="Check-in retention")

    assert task.task == "devices.prune_check_ins"
    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("30", "3", "UTC")


def test_the_retention_job_prunes_old_rejected_messages_and_pubsub_message_ids(settings, db):
    from devices.models import PubSubMessage, RejectedMessage
    from tests.factories import PubSubMessageFactory, RejectedMessageFactory

    settings.REJECTED_MESSAGE_RETENTION_DAYS = 90
    settings.PUBSUB_MESSAGE_ID_RETENTION_DAYS = 8
    now = timezone.now()
    old_rejection = RejectedMessageFactory(received_at=now - dt.timedelta(days=91))
    kept_rejection = RejectedMessageFactory(received_at=now - dt.timedelta(days=89))
    old_id = PubSubMessageFactory(received_at=now - dt.timedelta(days=9))
    kept_id = PubSubMessageFactory(received_at=now - dt.timedelta(days=7))

    outcome = prune_check_ins()

    assert (outcome["rejected_messages_deleted"], outcome["pubsub_message_ids_deleted"]) == (1, 1)
    assert set(RejectedMessage.objects.values_list("pk", flat=True)) == {kept_rejection.pk}
    assert set(PubSubMessage.objects.values_list("pk", flat=True)) == {kept_id.pk}
    assert not RejectedMessage.objects.filter(pk=old_rejection.pk).exists()
    assert not PubSubMessage.objects.filter(pk=old_id.pk).exists()
