"""The check-in history partitioned by month on PostgreSQL: rows land in their month, months are created
ahead, retention drops whole months keeping the build transitions, and reads touch only the months they ask."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import PeriodicTask

from devices import partitions
from devices.compliance.time_to_patch import time_to_patch
from devices.models import CheckIn, Device, StatusChange
from devices.selectors import device_timeline
from devices.services import check_ins_prune
from devices.tasks import ensure_check_in_partitions
from tests.factories import CheckInFactory, DeviceFactory, OSBuildFactory, StatusChangeFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# Years after anything the migration created in the test database, so each test decides which months exist.
JAN, FEB, MAR, APR = (dt.datetime(2031, month, 1, tzinfo=dt.UTC) for month in (1, 2, 3, 4))


@pytest.fixture(autouse=True)
def _partitioned() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the check-in table is partitioned on PostgreSQL only (SQLite keeps a plain table)")
    assert partitions.is_partitioned(), "migration devices 0009 partitions devices_checkin on PostgreSQL"


def partition_of(check_in: CheckIn) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM devices_checkin WHERE id = %s", [check_in.id])
        return cursor.fetchone()[0]


def existing_months() -> set[str]:
    return {partition.name for partition in partitions.monthly_partitions()}


def scanned_partitions(sql: str) -> set[str]:
    """The check-in partitions PostgreSQL's plan for ``sql`` reads (``... Scan ... on <table> <alias>``)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return set(re.findall(r"\bon (devices_checkin_(?:p\d{4}_\d{2}|default))\b", plan))


def history(device: Device, builds: list[str], *, start: dt.datetime, step: dt.timedelta) -> list[CheckIn]:
    return [
        CheckInFactory(device=device, reported_at=start + index * step, build_number=build)
        for index, build in enumerate(builds)
    ]


def test_a_check_in_of_each_month_lands_in_that_months_partition() -> None:
    partitions.ensure_partitions(first=JAN, last=MAR)
    device = DeviceFactory()

    january, february, march = (
        CheckInFactory(device=device, reported_at=m + dt.timedelta(days=14)) for m in (JAN, FEB, MAR)
    )
    last_instant = CheckInFactory(device=device, reported_at=APR - dt.timedelta(microseconds=1))

    assert partition_of(january) == "devices_checkin_p2031_01"
    assert partition_of(february) == "devices_checkin_p2031_02"
    assert partition_of(march) == "devices_checkin_p2031_03"
    assert partition_of(last_instant) == "devices_checkin_p2031_03"


def test_a_report_outside_every_month_lands_in_the_default_partition_and_is_not_lost() -> None:
    partitions.ensure_partitions(first=JAN, last=FEB)
    beyond = CheckInFactory(reported_at=dt.datetime(2040, 7, 4, tzinfo=dt.UTC))

    assert partition_of(beyond) == "devices_checkin_default"
    assert CheckIn.objects.filter(id=beyond.id).exists()


def test_creating_a_month_moves_its_reports_out_of_the_default_partition() -> None:
    early = CheckInFactory(reported_at=JAN + dt.timedelta(days=3))
    assert partition_of(early) == "devices_checkin_default"

    assert partitions.ensure_partitions(first=JAN, last=JAN) == ["devices_checkin_p2031_01"]

    assert partition_of(early) == "devices_checkin_p2031_01"
    assert CheckIn.objects.filter(reported_at__gte=JAN).count() == 1


def test_the_daily_task_creates_the_months_ahead_and_a_second_run_creates_nothing() -> None:
    with time_machine.travel(dt.datetime(2031, 1, 20, tzinfo=dt.UTC)):
        created = ensure_check_in_partitions.apply().get()["created"]
        again = ensure_check_in_partitions.apply().get()["created"]

    ahead = [f"devices_checkin_p2031_{month:02d}" for month in range(1, 2 + partitions.MONTHS_AHEAD)]
    assert set(ahead) <= set(created)
    assert set(ahead) <= existing_months()
    assert again == []


def test_the_partitions_task_is_scheduled_daily_by_a_migration() -> None:
    task = PeriodicTask.objects.get(name="Check-in partitions ahead")

    assert task.task == "devices.ensure_check_in_partitions"
    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("45", "2", "UTC")


def test_retention_drops_whole_expired_months_keeping_the_transitions_and_nothing_else() -> None:
    partitions.ensure_partitions(first=JAN, last=APR)
    device, other = DeviceFactory(), DeviceFactory()
    day = dt.timedelta(days=1)
    january = history(device, ["A", "A", "B"], start=JAN + day, step=day)
    february = history(device, ["B", "B", "A"], start=FEB + day, step=day)
    march = history(device, ["A", "A"], start=MAR + day, step=day)
    others = history(other, ["X", "X"], start=FEB + 5 * day, step=day)
    change = StatusChangeFactory(device=device, changed_at=JAN + day)

    deleted = check_ins_prune(older_than=MAR + 20 * day, batch_size=1000)

    # January and February are gone as tables; March holds the cutoff and stays whole until it expires.
    assert {"devices_checkin_p2031_01", "devices_checkin_p2031_02"}.isdisjoint(existing_months())
    assert {"devices_checkin_p2031_03", "devices_checkin_p2031_04"} <= existing_months()
    kept = {january[0].id, january[2].id, february[2].id, others[0].id}
    assert deleted == 4  # January's second A, February's two Bs (B already ran), the other's second X
    assert set(CheckIn.objects.filter(reported_at__lt=MAR).values_list("id", flat=True)) == kept
    assert all(partition_of(CheckIn.objects.get(id=id_)) == "devices_checkin_default" for id_ in kept)
    assert [partition_of(check_in) for check_in in march] == ["devices_checkin_p2031_03"] * 2
    assert list(device.check_ins.order_by("reported_at").values_list("build_number", flat=True)) == [
        "A",
        "B",
        "A",
        "A",
        "A",
    ]
    assert StatusChange.objects.filter(id=change.id).exists()
    assert check_ins_prune(older_than=MAR + 20 * day, batch_size=1000) == 0


def test_a_late_report_of_a_dropped_month_is_pruned_next_time_unless_it_changed_build() -> None:
    partitions.ensure_partitions(first=JAN, last=MAR)
    device = DeviceFactory()
    day = dt.timedelta(days=1)
    history(device, ["A", "A"], start=JAN + day, step=day)
    check_ins_prune(older_than=MAR, batch_size=1000)
    late_repeat = CheckInFactory(device=device, reported_at=JAN + 10 * day, build_number="A")
    late_change = CheckInFactory(device=device, reported_at=JAN + 11 * day, build_number="C")
    assert partition_of(late_repeat) == "devices_checkin_default"

    assert check_ins_prune(older_than=MAR, batch_size=1000) == 1

    assert not CheckIn.objects.filter(id=late_repeat.id).exists()
    assert CheckIn.objects.filter(id=late_change.id).exists()


def test_a_timeline_page_reads_only_the_months_of_its_window() -> None:
    partitions.ensure_partitions(first=JAN - dt.timedelta(days=31), last=APR)
    device = DeviceFactory(last_check_in_at=MAR + dt.timedelta(days=8))
    history(device, ["A"] * 67, start=JAN + dt.timedelta(hours=1), step=dt.timedelta(days=1))

    with CaptureQueriesContext(connection) as queries:
        page = device_timeline(device=device, before=MAR + dt.timedelta(days=9))

    assert len(page.events) == 50
    reads = [query["sql"] for query in queries.captured_queries if '"devices_checkin"' in query["sql"]]
    assert len(reads) == 1
    # The 92 days before the cursor: December 2030 to March 2031, not April, not the current months.
    assert scanned_partitions(reads[0]) == {
        "devices_checkin_p2030_12",
        "devices_checkin_p2031_01",
        "devices_checkin_p2031_02",
        "devices_checkin_p2031_03",
    }


def test_time_to_patch_reads_only_the_months_from_a_year_before_the_release() -> None:
    partitions.ensure_partitions(first=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), last=APR)
    build = OSBuildFactory(released_at=FEB)
    device = DeviceFactory(model=build.model)
    CheckInFactory(device=device, build=build, reported_at=FEB + dt.timedelta(days=3))

    with CaptureQueriesContext(connection) as queries:
        figures = time_to_patch(build_ids=[build.pk])[build.pk]

    assert figures.installed_devices == 1
    reads = [query["sql"] for query in queries.captured_queries if "devices_checkin" in query["sql"]]
    scanned = scanned_partitions(reads[0])
    assert "devices_checkin_p2030_01" not in scanned  # more than a year before the release
    assert "devices_checkin_p2030_02" in scanned
    assert not {name for name in scanned if name.startswith(("devices_checkin_p2026", "devices_checkin_p2025"))}


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_existing_check_ins_into_their_months_and_continues_the_id_sequence() -> None:
    from django.db.migrations.executor import MigrationExecutor

    # The device is made on today's schema: later migrations add columns to it,
    # and going back to 0008 drops them without losing the row. Check-ins have
    # kept their 0008 columns, so the factory can write them on the old table.
    device = DeviceFactory()
    executor = MigrationExecutor(connection)
    executor.migrate([("devices", "0008_import_job")])  # back to the plain table
    try:
        assert not partitions.is_partitioned()
        month = partitions.month_start(dt.datetime.now(dt.UTC))
        this_month = CheckInFactory(device=device, reported_at=month + dt.timedelta(hours=1))
        long_ago = CheckInFactory(device=device, reported_at=dt.datetime(2001, 1, 1, tzinfo=dt.UTC))
    finally:
        # Whatever happens above, the later tests get today's schema back.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert partitions.is_partitioned()
    assert partition_of(this_month) == partitions.partition_name(month)
    assert partition_of(long_ago) == "devices_checkin_default"
    assert CheckInFactory(device=device).id > long_ago.id
