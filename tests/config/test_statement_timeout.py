"""PostgreSQL's statement_timeout by the role of the process: web requests short, Celery workers long, commands none.

Each case starts a fresh process through the entry point that sets the role (config/wsgi.py, the Celery worker's
``celeryd_init``), so what is measured is what a real web or worker process asks of the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys, time
{entry}
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SHOW statement_timeout")
    shown = cursor.fetchone()[0]
started = time.monotonic()
try:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [float(sys.argv[1])])
    error = None
except Exception as exc:
    error = type(exc).__name__ + ": " + str(exc).splitlines()[0]
print(json.dumps({{"shown": shown, "error": error, "elapsed": time.monotonic() - started}}))
"""

ENTRIES = {
    "web": "import config.wsgi",
    "worker": "import django; django.setup()\nfrom celery.signals import celeryd_init\nceleryd_init.send(sender=None)",
    "command": "import django; django.setup()",
}


def probe(role: str, sleep: float, **environment: str) -> dict:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's statement_timeout: runs in the PostgreSQL pass (DATABASE_URL=postgres://...)")
    settings = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{settings['USER'] or 'postgres'}@{settings['HOST'] or '127.0.0.1'}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}",
        **environment,
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(entry=ENTRIES[role]), str(sleep)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_a_web_process_statement_is_cancelled_by_the_server_past_its_timeout():
    started = time.monotonic()
    found = probe("web", 5, DATABASE_STATEMENT_TIMEOUT="0.5")

    assert found["shown"] == "500ms"
    assert found["error"].startswith("OperationalError: canceling statement due to statement timeout")
    assert found["elapsed"] < 2
    assert time.monotonic() - started < 30


@pytest.mark.django_db
def test_a_worker_gets_the_longer_timeout_and_finishes_what_a_web_request_may_not():
    found = probe("worker", 1, DATABASE_STATEMENT_TIMEOUT="0.5")

    assert found["shown"] == "15min"
    assert found["error"] is None and found["elapsed"] >= 1


@pytest.mark.django_db
def test_migrations_and_commands_run_without_a_statement_timeout():
    assert probe("command", 0)["shown"] == "0"


@pytest.mark.django_db
def test_with_the_server_applying_it_fleetpatch_sends_none():
    """DATABASE_STATEMENT_TIMEOUT_VIA=server (behind PgBouncer): the role's own setting rules, here none."""
    assert probe("web", 0, DATABASE_STATEMENT_TIMEOUT_VIA="server")["shown"] == "0"
