"""config/settings.py reads the environment once, at import: each case imports it in a fresh Python
process with exactly the environment under test, and reads back what it decided as JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SNAPSHOT = """
import json
from config import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "VAR_DIR": str(s.VAR_DIR),
    "DATABASES": s.DATABASES,
    "CELERY_BROKER_URL": s.CELERY_BROKER_URL,
    "CELERY_BROKER_TRANSPORT_OPTIONS": s.CELERY_BROKER_TRANSPORT_OPTIONS,
    "CELERY_BROKER_FOLDERS": [str(folder) for folder in s.CELERY_BROKER_FOLDERS],
    "EMAIL": {name: getattr(s, name, None) for name in (
        "EMAIL_BACKEND", "EMAIL_FILE_PATH", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER",
        "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "EMAIL_USE_SSL")},
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "TIME_ZONE": s.TIME_ZONE,
    "LANGUAGE_CODE": s.LANGUAGE_CODE,
    "SECRET_KEY": s.SECRET_KEY,
    "CACHES": s.CACHES,
    "EMAIL_TIMEOUT": s.EMAIL_TIMEOUT,
}, default=str))
"""

JOURNAL_MODE = """
import django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    print(cursor.fetchone()[0])
"""

PRODUCTION_KEY = "a-test-secret-key-that-is-long-enough-and-random-enough-0123456789"


def run_python(code: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Runs code in a new interpreter whose environment holds only PATH and the variables given."""
    env = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "config.settings", **environment}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def settings_with(**environment: str) -> dict:
    result = run_python(SNAPSHOT, **environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


def test_with_no_environment_everything_embedded_lives_under_var(var_dir: Path) -> None:
    found = settings_with(SECRET_KEY=PRODUCTION_KEY, VAR_DIR=str(var_dir))

    database = found["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(var_dir / "fleetpatch.sqlite3")
    assert "PRAGMA journal_mode=WAL" in database["OPTIONS"]["init_command"]
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"

    assert found["CELERY_BROKER_URL"] == "filesystem://"
    options = found["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert options["data_folder_in"] == options["data_folder_out"] == str(var_dir / "celery" / "queue")
    assert options["processed_folder"] == str(var_dir / "celery" / "processed")
    assert options["control_folder"] == str(var_dir / "celery" / "control")
    assert set(found["CELERY_BROKER_FOLDERS"]) == {
        options["data_folder_in"],
        options["processed_folder"],
        options["control_folder"],
    }

    assert found["EMAIL"]["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert found["EMAIL"]["EMAIL_FILE_PATH"] == str(var_dir / "mail")
    assert found["TIME_ZONE"] == "UTC"
    assert found["LANGUAGE_CODE"] == "en"
    assert found["DEBUG"] is False


def test_var_dir_defaults_to_the_var_folder_of_the_project() -> None:
    found = settings_with(SECRET_KEY=PRODUCTION_KEY)

    assert found["VAR_DIR"] == str(ROOT / "var")
    assert found["DATABASES"]["default"]["NAME"] == str(ROOT / "var" / "fleetpatch.sqlite3")
    assert found["EMAIL"]["EMAIL_FILE_PATH"] == str(ROOT / "var" / "mail")


def test_the_embedded_database_folder_is_created_so_a_fresh_clone_can_migrate(var_dir: Path) -> None:
    assert not var_dir.exists()

    settings_with(SECRET_KEY=PRODUCTION_KEY, VAR_DIR=str(var_dir))

    assert var_dir.is_dir()


def test_database_url_switches_to_postgresql_with_persistent_connections(var_dir: Path) -> None:
    found = settings_with(
        SECRET_KEY=PRODUCTION_KEY,
        VAR_DIR=str(var_dir),
        DATABASE_URL="postgres://fleet:secret@db.internal:5433/fleetpatch",
    )

    database = found["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.internal", 5433, "fleetpatch")
    assert (database["USER"], database["PASSWORD"]) == ("fleet", "secret")
    assert database["CONN_MAX_AGE"] == 60
    assert "init_command" not in database.get("OPTIONS", {})
    assert not var_dir.exists()


def test_celery_broker_url_switches_to_redis_without_filesystem_folders(var_dir: Path) -> None:
    found = settings_with(
        SECRET_KEY=PRODUCTION_KEY, VAR_DIR=str(var_dir), CELERY_BROKER_URL="redis://cache.internal:6379/2"
    )

    assert found["CELERY_BROKER_URL"] == "redis://cache.internal:6379/2"
    # Every socket operation on the broker is bounded: a frozen Redis fails a publish in seconds, never hangs.
    assert found["CELERY_BROKER_TRANSPORT_OPTIONS"] == {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
    assert found["CELERY_BROKER_FOLDERS"] == []


def test_every_wait_on_postgresql_redis_and_smtp_is_bounded_by_default(var_dir: Path) -> None:
    found = settings_with(
        SECRET_KEY=PRODUCTION_KEY,
        VAR_DIR=str(var_dir),
        DATABASE_URL="postgres://fp@db.internal:5432/fleetpatch",
        CACHE_URL="redis://cache.internal:6379/1",
        CELERY_BROKER_URL="redis://cache.internal:6379/0",
        EMAIL_URL="smtp://mail.internal:25",
    )

    assert found["DATABASES"]["default"]["OPTIONS"]["connect_timeout"] == 5
    assert found["CACHES"]["default"]["OPTIONS"] == {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    assert found["CELERY_BROKER_TRANSPORT_OPTIONS"]["socket_timeout"] == 2.0
    assert found["EMAIL_TIMEOUT"] == 10


def test_a_cache_url_keeps_the_socket_timeout_it_sets(var_dir: Path) -> None:
    found = settings_with(
        SECRET_KEY=PRODUCTION_KEY, VAR_DIR=str(var_dir), CACHE_URL="redis://cache.internal:6379/1?socket_timeout=2"
    )

    assert found["CACHES"]["default"]["OPTIONS"] == {"socket_timeout": 2, "socket_connect_timeout": 0.5}


@pytest.mark.parametrize(("variable", "value"), [("DATABASE_STATEMENT_TIMEOUT_VIA", "startup"), ("EMAIL_TIMEOUT", "0")])
def test_an_unbounded_or_unknown_wait_setting_is_refused_at_startup(var_dir: Path, variable: str, value: str) -> None:
    result = run_python(SNAPSHOT, SECRET_KEY=PRODUCTION_KEY, VAR_DIR=str(var_dir), **{variable: value})

    assert result.returncode != 0
    assert variable in result.stderr


def test_email_url_with_smtp_tls_configures_the_smtp_backend(var_dir: Path) -> None:
    found = settings_with(
        SECRET_KEY=PRODUCTION_KEY, VAR_DIR=str(var_dir), EMAIL_URL="smtp+tls://user:pw@smtp.example.org:587"
    )

    email = found["EMAIL"]
    assert email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (email["EMAIL_HOST"], email["EMAIL_PORT"]) == ("smtp.example.org", 587)
    assert (email["EMAIL_HOST_USER"], email["EMAIL_HOST_PASSWORD"]) == ("user", "pw")
    assert email["EMAIL_USE_TLS"] is True


def test_a_relative_file_mail_path_is_anchored_at_the_project_not_the_working_directory(var_dir: Path) -> None:
    found = settings_with(SECRET_KEY=PRODUCTION_KEY, VAR_DIR=str(var_dir), EMAIL_URL="filemail:///var/outbox")

    assert found["EMAIL"]["EMAIL_FILE_PATH"] == str(ROOT / "var" / "outbox")


def test_allowed_hosts_time_zone_and_language_come_from_the_environment(var_dir: Path) -> None:
    found = settings_with(
        SECRET_KEY=PRODUCTION_KEY,
        VAR_DIR=str(var_dir),
        ALLOWED_HOSTS="a.example.org,b.example.org",
        TIME_ZONE="Europe/Paris",
        LANGUAGE_CODE="fr",
    )

    assert found["ALLOWED_HOSTS"] == ["a.example.org", "b.example.org"]
    assert found["TIME_ZONE"] == "Europe/Paris"
    assert found["LANGUAGE_CODE"] == "fr"


def test_without_secret_key_and_without_debug_the_settings_refuse_to_load(var_dir: Path) -> None:
    result = run_python(SNAPSHOT, VAR_DIR=str(var_dir))

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


def test_with_debug_the_settings_load_without_secret_key(var_dir: Path) -> None:
    found = settings_with(DEBUG="true", VAR_DIR=str(var_dir))

    assert found["DEBUG"] is True
    assert found["SECRET_KEY"]


def test_the_embedded_sqlite_database_really_runs_in_wal_mode(var_dir: Path) -> None:
    result = run_python(JOURNAL_MODE, DEBUG="true", VAR_DIR=str(var_dir))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "wal"
    assert (var_dir / "fleetpatch.sqlite3").exists()


def test_every_environment_variable_read_by_the_settings_is_documented_in_the_readme() -> None:
    source = (ROOT / "config" / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", readme, flags=re.MULTILINE))

    assert {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "EMAIL_URL"} <= read
    assert read - documented == set(), "add these to the README's configuration table"


def test_manage_py_without_secret_key_says_what_is_missing():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DEBUG"}}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "FleetPatch is not configured: SECRET_KEY must be set" in result.stderr
