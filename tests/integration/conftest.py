"""Real processes for integration tests: a Celery worker on real Redis, against the test database."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from alerts.models import AlertSubscription
from fleet.choices import Role
from tests.conftest import require_service
from tests.factories import DeviceFactory, MembershipFactory, OrganisationFactory, StatusChangeFactory, UserFactory
from tests.integration.processes import free_port, start_celery_worker, stop_process

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
    from tests.integration.processes import PrivateRedis

    require_service(shutil.which("redis-server") is not None, "redis-server is not installed")
    with PrivateRedis.running() as server:
        yield server


@pytest.fixture
def private_postgres(real_services) -> Iterator:
    """A PostgreSQL cluster of the test's own (initdb in a temporary directory), which it may stop and restart."""
    from tests.integration.processes import PrivatePostgres

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


# --- Mail: a real SMTP server on loopback, and a digest due now -----------------------------------
class Sink:
    """An aiosmtpd handler that keeps every accepted message, and can refuse the first few DATA commands."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse = 0
        self.refused = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self._lock:
            if self.refuse > 0:
                self.refuse -= 1
                self.refused += 1
                return "451 4.7.1 Greylisted, try again later"
            self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink(real_services) -> Iterator[Sink]:
    """A real SMTP server on loopback; the worker started after this fixture sends through it."""
    from aiosmtpd.controller import Controller

    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    real_services.update(EMAIL_URL=f"smtp://127.0.0.1:{port}", DIGEST_RETRY_BACKOFF="1")
    try:
        yield sink
    finally:
        controller.stop()


def due_subscription(slug: str, name: str, manager_email: str) -> AlertSubscription:
    """A daily subscription whose send time has just passed (in UTC), with one device newly behind."""
    now = timezone.now()
    organisation = OrganisationFactory(name=name, slug=slug)
    MembershipFactory(
        organisation=organisation, role=Role.MANAGER, user=UserFactory(username=f"{slug}-boss", email=manager_email)
    )
    device = DeviceFactory(organisation=organisation, serial=f"{slug.upper()}-1", compliance_status="behind")
    StatusChangeFactory(device=device, to_status="behind", changed_at=now - dt.timedelta(minutes=30))
    return AlertSubscription.objects.create(
        organisation=organisation,
        name="Daily",
        time_zone="UTC",
        send_at=(now - dt.timedelta(minutes=5)).time().replace(second=0, microsecond=0),
        created_at=now - dt.timedelta(days=2),
    )
