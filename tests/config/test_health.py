"""/healthz says the process answers; /readyz says it can serve: database, migrations and broker all reachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.utils.functional import empty

ROOT = Path(__file__).resolve().parents[2]


def run_readyz(**environment: str) -> tuple[int, dict]:
    """Asks /readyz of a fresh FleetPatch process configured by ``environment`` alone."""
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/readyz'); print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "a-test-secret-key-that-is-long-enough-and-random-enough-0123456789",
        **environment,
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return answer["status"], answer["body"]


def test_healthz_answers_ok_without_touching_the_database(client: Client) -> None:
    # No db fixture: pytest-django fails any query, so a 200 proves the database was left alone.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_probes_are_answered_for_any_host_name_and_over_plain_http(client: Client, settings) -> None:
    """Orchestrators probe a pod's IP or a service name over HTTP, neither of which production allows."""
    settings.ALLOWED_HOSTS = ["fleet.example.org"]
    settings.SECURE_SSL_REDIRECT = True

    response = client.get("/healthz", HTTP_HOST="web:8000")

    assert response.status_code == 200
    # Anything else from that host is still refused, and plain HTTP still redirected.
    assert client.get("/admin/login/", HTTP_HOST="web:8000").status_code == 400
    assert client.get("/admin/login/", HTTP_HOST="fleet.example.org").status_code == 301


@pytest.fixture
def collected_static(settings, tmp_path: Path) -> Path:
    """A STATIC_ROOT holding the file readyz probes, as collectstatic leaves it for the plain storage."""
    (tmp_path / "static" / "admin" / "css").mkdir(parents=True)
    (tmp_path / "static" / "admin" / "css" / "base.css").write_text("body {}")
    settings.STATIC_ROOT = tmp_path / "static"
    return tmp_path / "static"


@pytest.mark.django_db
def test_readyz_is_ok_when_database_migrations_broker_and_static_files_are(client: Client, collected_static) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ok",
        "failing": [],
        "checks": {
            "database": {"status": "ok"},
            "migrations": {"status": "ok"},
            "broker": {"status": "ok"},
            "static": {"status": "ok"},
        },
    }


MANIFEST_STORAGE = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}


@pytest.mark.django_db
def test_readyz_says_the_static_files_were_not_collected_when_the_manifest_is_absent(
    client: Client, settings, tmp_path: Path
) -> None:
    """Production's manifest storage answers 500 on every admin page without collectstatic: not ready."""
    settings.STATIC_ROOT = tmp_path / "static"  # nothing collected there
    settings.STORAGES = {**settings.STORAGES, "staticfiles": MANIFEST_STORAGE}

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["static"]
    assert "admin/css/base.css is not in the manifest" in body["checks"]["static"]["error"]
    assert str(tmp_path / "static") in body["checks"]["static"]["error"]


@pytest.mark.django_db
def test_readyz_is_ok_with_the_manifest_of_a_real_collectstatic(client: Client, settings, tmp_path: Path) -> None:
    from django.contrib.staticfiles.storage import staticfiles_storage
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": MANIFEST_STORAGE}
    call_command("collectstatic", interactive=False, verbosity=0)
    staticfiles_storage._wrapped = empty  # as a process started after collectstatic: it reads the manifest

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["static"] == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_says_the_static_files_were_not_collected_for_the_plain_storage(
    client: Client, settings, tmp_path: Path
) -> None:
    settings.STATIC_ROOT = tmp_path / "nothing-here"

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["static"]
    assert "admin/css/base.css is missing" in response.json()["checks"]["static"]["error"]


@pytest.mark.django_db
def test_readyz_answers_within_its_timeout_when_a_check_hangs(
    client: Client, collected_static, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dependency that never answers (a frozen broker) costs a third of READYZ_TIMEOUT, not the probe."""
    from config import health

    settings.READYZ_TIMEOUT = 1.5

    def frozen() -> None:
        time.sleep(30)

    monkeypatch.setitem(health._CHECKS, "broker", frozen)
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"] == {"status": "fail", "error": "no answer within 0.5 s"}
    assert body["checks"]["static"] == {"status": "ok"}  # checked after it, in the time left
    assert elapsed < settings.READYZ_TIMEOUT


@pytest.mark.django_db
def test_readyz_names_the_migrations_not_applied(client: Client, collected_static) -> None:
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    # The newest migration of the app, as if the code were deployed before `migrate` ran.
    _app, latest = next(node for node in MigrationLoader(connection).graph.leaf_nodes() if node[0] == "devices")
    MigrationRecorder.Migration.objects.filter(app="devices", name=latest).delete()

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["migrations"]
    assert f"devices.{latest}" in body["checks"]["migrations"]["error"]


@pytest.mark.django_db
def test_readyz_fails_when_the_filesystem_broker_folders_are_gone(
    client: Client, settings, tmp_path: Path, collected_static
) -> None:
    settings.CELERY_BROKER_FOLDERS = [tmp_path / "queue", tmp_path / "processed"]
    (tmp_path / "queue").mkdir()

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]
    assert str(tmp_path / "processed") in response.json()["checks"]["broker"]["error"]


@pytest.mark.django_db
def test_readyz_fails_quickly_when_the_redis_broker_is_down(
    client: Client, settings, monkeypatch: pytest.MonkeyPatch, collected_static
) -> None:
    settings.CELERY_BROKER_FOLDERS = []
    settings.READYZ_BROKER_TIMEOUT = 1.0
    # Celery reads CELERY_BROKER_URL from the environment before its configuration, as production does.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:hunter2-secret@127.0.0.1:1/0")  # nothing listens on port 1

    started = time.monotonic()
    response = client.get("/readyz")

    assert time.monotonic() - started < 5
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["database"] == {"status": "ok"}
    # The error is named by its type: a broker URL's password never reaches the probe's answer.
    assert "hunter2" not in response.content.decode()


def test_readyz_names_the_database_when_it_is_unreachable() -> None:
    status, body = run_readyz(
        DATABASE_URL="postgres://postgres@127.0.0.1:1/fleetpatch", CELERY_BROKER_URL="redis://127.0.0.1:1/0"
    )

    assert status == 503
    # A fresh process with nothing collected under its STATIC_ROOT: the static files are missing too.
    assert body["failing"] == ["database", "migrations", "broker", "static"]
    assert body["checks"]["database"]["status"] == "fail"
    # Migrations cannot be read from a database that is down; they are reported unknown, not failed twice.
    assert body["checks"]["migrations"]["status"] == "unknown"
