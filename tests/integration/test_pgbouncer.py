"""FleetPatch behind PgBouncer in transaction pooling mode (README, Scaling out): a real PgBouncer between
gunicorn and PostgreSQL, with DISABLE_SERVER_SIDE_CURSORS=true, serves check-ins, lists and a sweep."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from devices.models import CheckIn, Device
from fleet.services import api_client_create
from tests.conftest import require_service
from tests.factories import DeviceFactory, DeviceModelFactory, OrganisationFactory, OSBuildFactory
from tests.integration.conftest import ROOT
from tests.integration.processes import free_port, gunicorn
from tests.integration.test_scale_out import api

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)


@pytest.fixture
def pgbouncer(real_services) -> Iterator[str]:
    """A private PgBouncer in transaction pooling mode in front of the test database; yields its DATABASE_URL."""
    require_service(PGBOUNCER is not None, "PgBouncer is not installed (apt-get install pgbouncer)")
    settings = connection.settings_dict
    port = free_port()
    # PgBouncer refuses to run as root: as root (CI), it runs as the postgres user from a folder it can read.
    folder = Path(tempfile.mkdtemp(prefix="fleetpatch-pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text(f'"{settings["USER"] or "postgres"}" ""\n')
    # The statement timeout of the web's connections, applied by the pooler (docs/operations.md, "Bounded waits").
    timeout = "connect_query='SET statement_timeout = 10000'"
    server = f"host={settings['HOST'] or '127.0.0.1'} port={settings['PORT'] or 5432} dbname={settings['NAME']}"
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{settings["NAME"]} = {server} {timeout}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 3
max_client_conn = 100
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
    )
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        for path in folder.iterdir():
            shutil.chown(path, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not (folder / "pgbouncer.log").exists() or "listening on" not in (folder / "pgbouncer.log").read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                log = (folder / "pgbouncer.log").read_text() if (folder / "pgbouncer.log").exists() else ""
                pytest.fail(f"PgBouncer did not start (exit {process.poll()}):\n{log[-2000:]}")
            time.sleep(0.1)
        yield f"postgres://{settings['USER'] or 'postgres'}@127.0.0.1:{port}/{settings['NAME']}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def test_fleetpatch_works_behind_pgbouncer_in_transaction_pooling_mode(real_services, pgbouncer, tmp_path):
    organisation = OrganisationFactory()
    model = DeviceModelFactory()
    build = OSBuildFactory(model=model, build_number="UP1A.1", security_patch_level=dt.date(2026, 10, 1))
    devices = [DeviceFactory(organisation=organisation, model=model, serial=f"PGB-{i}") for i in range(50)]
    _, token = api_client_create(organisation=organisation, name="MDM", scopes=["read", "report"])
    # PgBouncer (before 1.23) refuses a startup "options" parameter: the pooler applies the statement timeout
    # to its server connections instead (connect_query above; docs/operations.md, "Bounded waits").
    env = {
        **real_services,
        "DATABASE_URL": pgbouncer,
        "DISABLE_SERVER_SIDE_CURSORS": "true",
        "DATABASE_STATEMENT_TIMEOUT_VIA": "server",
    }
    with psycopg.connect(pgbouncer, autocommit=True) as pooled:
        assert pooled.execute("SHOW statement_timeout").fetchone() == ("10s",)
    now = timezone.now().replace(microsecond=0)
    reports = [
        {
            "serial": device.serial,
            "reported_at": (now - dt.timedelta(minutes=1)).isoformat(),
            "build_number": build.build_number,
            "security_patch_level": "2026-10-01",
            "battery_level": 80,
        }
        for device in devices
    ]

    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as port:
        status, body = api(port, "POST", "/api/v1/checkins/", token=token, body=reports)
        assert status == 200, body
        assert {item["status"] for item in body["results"]} == {"created"}, body
        status, page = api(port, "GET", "/api/v1/devices/?page_size=20", token=token)
        assert status == 200 and len(page["results"]) == 20, page
        status, summary = api(port, "GET", "/api/v1/compliance/summary/", token=token)
        assert status == 200 and summary["organisation"]["total"] == 50, summary

    # A sweep through the pooler too (Celery tasks eager in this process: same code path as a worker's).
    sweep = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from devices.compliance.tasks import sweep_compliance; sweep_compliance()",
        ],
        cwd=ROOT,
        env={**env, "CELERY_TASK_ALWAYS_EAGER": "true"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert CheckIn.objects.filter(device__organisation=organisation).count() == 50
    assert not Device.objects.filter(organisation=organisation, current_build__isnull=True).exists()
