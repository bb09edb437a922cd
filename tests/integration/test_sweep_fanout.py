"""End to end: the periodic sweep sent through Redis fans out into range tasks that a real Celery worker runs
against PostgreSQL; a range refused by the database once is retried alone, and the run is recorded whole."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from devices.models import Device, DeviceTally, StatusChange, SweepRange, SweepRun
from tests.factories import DeviceModelFactory, OrganisationFactory, OSBuildFactory
from tests.integration.conftest import ROOT, wait_for

pytestmark = pytest.mark.integration

DEVICES = 60
RANGE_SIZE = 10


@pytest.fixture
def sweep_env(real_services) -> dict[str, str]:
    """The worker reads SWEEP_RANGE_SIZE from its environment, as in production: ranges of 10 devices."""
    real_services["SWEEP_RANGE_SIZE"] = str(RANGE_SIZE)
    return real_services


def test_a_real_worker_runs_a_fanned_out_sweep_and_retries_the_failed_range_alone(
    sweep_env, celery_worker_process, tmp_path
):
    now = timezone.now()
    model = DeviceModelFactory()
    old = OSBuildFactory(model=model, released_at=now - dt.timedelta(days=90))
    OSBuildFactory(model=model, released_at=now - dt.timedelta(days=40))
    organisation = OrganisationFactory()
    fleet = Device.objects.bulk_create(
        Device(
            organisation=organisation,
            serial=f"FANOUT-{i:03d}",
            model=model,
            current_build=old,
            security_patch_level=old.security_patch_level,
            last_check_in_at=now - dt.timedelta(days=i % 45),
        )
        for i in range(DEVICES)
    )
    failing_lo, failing_hi = fleet[20].pk, fleet[29].pk
    # A real database error, once: the trigger refuses the range's updates until its failure is recorded.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""CREATE FUNCTION sweep_fanout_fail() RETURNS trigger AS $$
                BEGIN
                  IF (SELECT attempts FROM {SweepRange._meta.db_table} WHERE lo = {failing_lo}
                       ORDER BY id DESC LIMIT 1) < 1 THEN
                    RAISE EXCEPTION 'injected failure of range {failing_lo}';
                  END IF;
                  RETURN NEW;
                END $$ LANGUAGE plpgsql"""
        )
        cursor.execute(
            f"""CREATE TRIGGER sweep_fanout_fail BEFORE UPDATE ON {Device._meta.db_table} FOR EACH ROW
                WHEN (NEW.id BETWEEN {failing_lo} AND {failing_hi}) EXECUTE FUNCTION sweep_fanout_fail()"""
        )
    try:
        subprocess.run(
            [sys.executable, "-m", "celery", "-A", "config", "call", "updates.sweep_compliance"],
            cwd=ROOT,
            env=sweep_env,
            check=True,
            capture_output=True,
            timeout=60,
        )

        assert wait_for(lambda: SweepRun.objects.filter(finished_at__isnull=False).exists(), timeout=90)
    finally:
        # A transactional test's flush empties the tables but keeps triggers: drop it for the next tests.
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS sweep_fanout_fail ON {Device._meta.db_table}")
            cursor.execute("DROP FUNCTION IF EXISTS sweep_fanout_fail()")
    worker_log = (tmp_path / "worker.log").read_text()

    run = SweepRun.objects.get()
    assert run.status == "succeeded", worker_log[-3000:]
    assert (run.ranges_planned, run.ranges_done, run.ranges_failed, run.range_retries) == (6, 6, 0, 1)
    assert run.ranges.get(lo=failing_lo).attempts == 1
    # Each range succeeded once, and the failed one was retried once: the worker's own log says so.
    succeeded = Counter(
        int(lo)
        for lo in re.findall(
            r"updates\.sweep_range\[[^\]]+\] succeeded in [^:]+: \{'run': \d+, 'lo': (\d+)", worker_log
        )
    )
    assert succeeded == {r.lo: 1 for r in run.ranges.all()}, worker_log[-3000:]
    assert len(re.findall(r"updates\.sweep_range\[[^\]]+\] retry", worker_log)) == 1
    assert len(re.findall(r"updates\.sweep_range\[[^\]]+\] received", worker_log)) == 7
    # Every device was evaluated, each transition recorded once, and the dashboard's tallies written.
    assert not Device.objects.filter(compliance_status="unknown").exists()
    per_device = Counter(StatusChange.objects.values_list("device_id", flat=True))
    assert len(per_device) == DEVICES and set(per_device.values()) == {1}
    assert run.devices_updated == DEVICES
    assert run.transitions == dict(Counter(StatusChange.objects.values_list("to_status", flat=True)))
    assert sum(DeviceTally.objects.values_list("count", flat=True)) == DEVICES
