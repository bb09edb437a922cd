"""LOG_FORMAT=json: one JSON object per line, tied to its request; plain text stays the default."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from config.logging import JsonFormatter, RequestIdFilter

ROOT = Path(__file__).resolve().parents[2]

LOG_TWO_LINES = """
import django, logging
django.setup()
log = logging.getLogger("fleetpatch.example")
log.warning("device %s is %s", "SN1", "behind")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("sweep failed")
"""


def run_logging(**environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "a-test-secret-key-that-is-long-enough-and-random-enough-0123456789",
        **environment,
    }
    return subprocess.run(
        [sys.executable, "-c", LOG_TWO_LINES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("devices.tasks", logging.INFO, __file__, 1, message, args, None)
    entry.__dict__.update(extra)
    return entry


def test_log_format_json_writes_one_json_object_per_line() -> None:
    result = run_logging(LOG_FORMAT="json")

    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "device SN1 is behind"
    assert first["level"] == "WARNING"
    assert first["logger"] == "fleetpatch.example"
    assert first["time"].endswith("+00:00")
    assert second["message"] == "sweep failed"
    assert "ZeroDivisionError" in second["exception"]


def test_plain_text_stays_the_default() -> None:
    result = run_logging()

    assert result.returncode == 0, result.stderr
    first_line = result.stderr.splitlines()[0]
    assert first_line.endswith("WARNING fleetpatch.example device SN1 is behind")
    with pytest.raises(json.JSONDecodeError):
        json.loads(first_line)


def test_an_unknown_log_format_is_refused_at_startup() -> None:
    result = run_logging(LOG_FORMAT="xml")

    assert result.returncode != 0
    assert "LOG_FORMAT must be 'plain' or 'json'" in result.stderr


def test_scalar_extras_are_kept_and_objects_left_out() -> None:
    class Request:
        def __str__(self) -> str:
            return "Authorization: Bearer secret-token"

    line = JsonFormatter().format(record("pruned %d", 12, deleted=12, organisation="org-a", request=Request()))

    entry = json.loads(line)
    assert entry["message"] == "pruned 12"
    assert entry["deleted"] == 12
    assert entry["organisation"] == "org-a"
    assert "secret-token" not in line


def test_a_line_outside_any_request_has_no_request_id() -> None:
    entry = record("beat tick")
    RequestIdFilter().filter(entry)

    assert "request_id" not in json.loads(JsonFormatter().format(entry))


def test_every_response_carries_its_request_id_and_reuses_a_sane_one_from_the_proxy(client: Client) -> None:
    fresh = client.get("/healthz/nothing-here")
    given = client.get("/no/such/page/", HTTP_X_REQUEST_ID="lb-4f2a.9")
    forged = client.get("/no/such/page/", HTTP_X_REQUEST_ID='x" injected\nline')

    assert len(fresh["X-Request-ID"]) == 32
    assert given["X-Request-ID"] == "lb-4f2a.9"
    assert forged["X-Request-ID"] != 'x" injected\nline'
    assert len(forged["X-Request-ID"]) == 32


def test_lines_logged_during_a_request_carry_its_id(client: Client) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    django_request = logging.getLogger("django.request")
    django_request.addHandler(handler)
    try:
        response = client.get("/no/such/page/", HTTP_X_REQUEST_ID="req-123")
    finally:
        django_request.removeHandler(handler)

    assert response.status_code == 404
    entry = json.loads(stream.getvalue().splitlines()[0])
    assert entry["message"] == "Not Found: /no/such/page/"
    assert entry["request_id"] == "req-123"
    # The request object Django attaches to the record is not serialised (its headers may hold a token).
    assert "request" not in entry


def test_celery_workers_keep_the_json_lines_instead_of_their_own_plain_handlers() -> None:
    code = "from config.celery import app; print(app.conf.worker_hijack_root_logger)"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "a-test-secret-key-that-is-long-enough-and-random-enough-0123456789",
    }

    def hijacks(**environment: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**env, **environment},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert hijacks(LOG_FORMAT="json") == "False"
    assert hijacks() == "True"
