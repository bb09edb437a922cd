"""Real processes for integration tests: a Celery worker on real Redis, against the test database."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import require_service
from tests.integration.services import start_celery_worker, stop_process

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def redis_answers(url: str = REDIS_URL) -> bool:
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def flush_redis(url: str = REDIS_URL) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def real_services(transactional_db) -> dict[str, str]:
    """Environment for subprocesses that share the test database and a dedicated Redis database."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "runs in the PostgreSQL + Redis pass (DATABASE_URL=postgres://...): SQLite's test database is in memory"
        )
    require_service(redis_answers(), f"Redis is not answering at {REDIS_URL}")
    flush_redis()
    settings = connection.settings_dict
    database_url = (
        f"postgres://{settings['USER'] or 'postgres'}"
        f"{':' + settings['PASSWORD'] if settings['PASSWORD'] else ''}"
        f"@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=REDIS_URL,
        CELERY_TASK_ALWAYS_EAGER="false",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def celery_worker_process(real_services, tmp_path) -> Iterator[subprocess.Popen]:
    """A real `celery worker` process, stopped (and its log shown on failure) after the test."""
    log_path = tmp_path / "worker.log"
    try:
        process = start_celery_worker(real_services, log_path=log_path, name="test")
    except RuntimeError as error:
        pytest.fail(str(error))
    try:
        yield process
    finally:
        stop_process(process)
    print(log_path.read_text()[-5000:])  # shown by pytest when the test failed


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def private_redis(real_services) -> Iterator:
    """A Redis server of the test's own, which it may stop (never the shared one)."""
    from tests.integration.services import PrivateRedis

    require_service(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop()


@pytest.fixture
def private_postgres(real_services) -> Iterator:
    """A PostgreSQL cluster of the test's own (initdb in a temporary directory), which it may stop and restart."""
    from tests.integration.services import PrivatePostgres

    try:
        cluster = PrivatePostgres()
        cluster.init()
        cluster.start()
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        require_service(False, f"cannot start a private PostgreSQL cluster: {error}")
    try:
        yield cluster
    finally:
        cluster.destroy()
