"""End to end: a build published from the command line reaches a real Celery worker through Redis, and the
worker flags the affected devices in PostgreSQL."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from django.utils import timezone

from devices.compliance.engine import recompute
from devices.models import Device, StatusChange
from tests.factories import DeviceFactory, DeviceModelFactory, ManufacturerFactory, OSBuildFactory
from tests.integration.conftest import ROOT, wait_for

pytestmark = pytest.mark.integration


def test_a_published_build_is_flagged_by_a_real_worker(celery_worker_process, real_services, tmp_path):
    now = timezone.now()
    model = DeviceModelFactory(
        manufacturer=ManufacturerFactory(name="Crosscall", slug="crosscall"), name="Core-Z5", slug="core-z5"
    )
    current = OSBuildFactory(
        model=model, released_at=now - dt.timedelta(days=90), security_patch_level=(now - dt.timedelta(days=60)).date()
    )
    devices = [
        DeviceFactory(model=model, current_build=current, last_check_in_at=now - dt.timedelta(hours=2))
        for _ in range(5)
    ]
    untouched = DeviceFactory(model=DeviceModelFactory(), last_check_in_at=now)
    recompute()
    assert set(Device.objects.filter(model=model).values_list("compliance_status", flat=True)) == {"up_to_date"}

    released = (now - dt.timedelta(days=30)).date()
    csv_file = tmp_path / "catalogue.csv"
    csv_file.write_text(
        "manufacturer,model,build_number,android_version,security_patch_level,released_at\n"
        f"Crosscall,Core-Z5,CZ5.NEW.1,14,{released - dt.timedelta(days=3)},{released}\n"
    )
    subprocess.run(
        [sys.executable, "manage.py", "import_catalogue", str(csv_file)],
        cwd=ROOT,
        env=real_services,
        check=True,
        capture_output=True,
        timeout=120,
    )

    assert wait_for(lambda: Device.objects.filter(model=model, compliance_status="behind").count() == 5), (
        "the worker did not flag the devices"
    )
    assert StatusChange.objects.filter(device__in=devices, to_status="behind", reason="catalogue import").count() == 5
    untouched.refresh_from_db()
    assert untouched.compliance_status == "unknown"  # another model: not recomputed
