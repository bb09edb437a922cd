"""A frozen dependency (SIGSTOP: its kernel accepts connections and data, nothing answers) gives fast 503s, or a
degraded answer where the dependency is only an optimisation, never a hang; /healthz stays fast throughout.

Each test freezes a server of its own (tests/integration/processes.py) behind a real gunicorn with sync workers,
as production runs it, and measures every answer against the documented bound (docs/operations.md, "Bounded
waits"). gunicorn's own --timeout is 120 s here: the bound the test sees is FleetPatch's, not gunicorn's kill.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from django.test import Client
from django.utils import timezone

from fleet.services import api_client_create
from tests.factories import DeviceModelFactory, OrganisationFactory, UserFactory
from tests.integration.processes import frozen, gunicorn, request, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

DEADLINE = 3.0  # WEB_REQUEST_DEADLINE_SECONDS for these servers
READYZ = 3.0  # READYZ_TIMEOUT
SLACK = 1.5  # answering after the bound: the 503 page, a loaded 2-core machine
FAST = 0.5  # what /healthz, and a 503 from a process backing off the database, may take at most
BACKOFF = 2.0  # DATABASE_FAILURE_BACKOFF_SECONDS
PROBE = 1.0  # common.db.PROBE_SECONDS: the SELECT 1 after a backoff


def timed(port: int, method: str, path: str, body=None, **kwargs) -> tuple[float, int, bytes, dict[str, str]]:
    started = time.monotonic()
    code, content, headers = request(port, method, path, body, timeout=60, **kwargs)
    return time.monotonic() - started, code, content, headers


def healthz_while(port: int, busy: threading.Thread) -> list[float]:
    """/healthz timings taken while ``busy`` (a request stuck on the frozen dependency) runs."""
    timings = []
    while busy.is_alive() and len(timings) < 5:
        elapsed, code, _, _ = timed(port, "GET", "/healthz")
        assert code == 200
        timings.append(elapsed)
        time.sleep(0.2)
    return timings


def test_a_frozen_postgresql_gives_503s_within_the_deadline_and_healthz_stays_fast(
    real_services, private_postgres, tmp_path
):
    organisation = OrganisationFactory()
    _, token = api_client_create(organisation=organisation, name="MDM", scopes=["read", "report"])
    headers = {"Authorization": f"Bearer {token}"}
    browser = Client()
    browser.force_login(UserFactory(username="frozen-admin", is_superuser=True))
    cookie = {"Cookie": f"sessionid={browser.cookies['sessionid'].value}"}
    private_postgres.copy_database(real_services["DATABASE_URL"], "fleetpatch")
    env = {
        **real_services,
        "DATABASE_URL": private_postgres.url("fleetpatch"),
        "WEB_REQUEST_DEADLINE_SECONDS": str(DEADLINE),
        "DATABASE_STATEMENT_TIMEOUT": "2",
        "DATABASE_FAILURE_BACKOFF_SECONDS": str(BACKOFF),
        "READYZ_TIMEOUT": str(READYZ),
    }

    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as port:
        # Both workers hold an open connection: the frozen server's kernel keeps it up, nothing times out on it.
        for _ in range(4):
            assert timed(port, "GET", "/api/v1/devices/", headers=headers)[1] == 200
        assert timed(port, "GET", "/admin/", headers=cookie)[1] == 200
        assert timed(port, "GET", "/readyz")[1] == 200

        with private_postgres.frozen():
            answers: list[tuple[float, int, bytes, dict[str, str]]] = []

            def api_requests() -> None:
                # Each worker waits the deadline once (on its open connection), then answers at once while it
                # backs off; past each backoff a SELECT 1 bounded by PROBE seconds says the server is still frozen.
                for _ in range(8):
                    answers.append(timed(port, "GET", "/api/v1/devices/", headers=headers))

            busy = threading.Thread(target=api_requests)
            busy.start()
            healthz = healthz_while(port, busy)
            busy.join(timeout=60)

            admin = timed(port, "GET", "/admin/devices/device/", headers=cookie)
            readyz = timed(port, "GET", "/readyz")

        timings = [round(elapsed, 2) for elapsed, *_ in answers]
        waited = [elapsed for elapsed in timings if elapsed > PROBE + 0.7]
        for elapsed, code, body, response_headers in answers:
            assert code == 503, body
            assert response_headers["retry-after"] == "10"
            detail = json.loads(body)["detail"]
            if elapsed > PROBE + 0.7:  # it waited on the database: cut short by the deadline
                assert DEADLINE - 0.2 < elapsed < DEADLINE + SLACK, timings
                assert detail == "A service this request needs did not answer in time; retry in a moment."
            else:  # its worker backs off the database (at most a bounded SELECT 1 after each backoff)
                assert detail == "The database is unavailable; nothing was saved. Retry in a moment."
        # The whole deadline is waited once per worker (2), never again while the database stays frozen.
        assert 1 <= len(waited) <= 2 and len(timings) == 8, timings
        assert healthz and max(healthz) < FAST, healthz
        elapsed, code, body, _ = admin
        assert code == 503 and b"FleetPatch is temporarily unavailable" in body and elapsed < DEADLINE + SLACK
        elapsed, code, body, _ = readyz
        assert code == 503 and elapsed < READYZ + SLACK, elapsed
        checks = json.loads(body)["checks"]
        assert checks["database"]["status"] == "fail" and checks["migrations"]["status"] == "unknown", checks
        assert checks["broker"] == checks["static"] == {"status": "ok"}

        # Thawed: the same workers serve again at once, on fresh connections.
        wait_until(
            lambda: request(port, "GET", "/api/v1/devices/", headers=headers)[0] == 200,
            timeout=10,
            what="the API to answer after PostgreSQL thawed",
        )
        assert timed(port, "GET", "/admin/devices/device/", headers=cookie)[1] == 200
        assert timed(port, "GET", "/readyz")[1] == 200
    print(f"frozen PostgreSQL: API {[round(a[0], 2) for a in answers]} s, admin {admin[0]:.2f} s,")
    print(f"readyz {readyz[0]:.2f} s, healthz max {max(healthz) * 1000:.0f} ms")


def test_a_frozen_redis_answers_readyz_503_in_time_while_the_api_degrades_without_hanging(
    real_services, private_redis, tmp_path
):
    now = timezone.now()
    organisation = OrganisationFactory()
    model = DeviceModelFactory()
    _, token = api_client_create(organisation=organisation, name="MDM", scopes=["read", "report", "catalogue"])
    headers = {"Authorization": f"Bearer {token}"}
    # As docker-compose.yml runs it: Redis is the broker and the cache (the API's throttle counts there).
    env = {
        **real_services,
        "CELERY_BROKER_URL": private_redis.url(0),
        "CACHE_URL": private_redis.url(1),
        "WEB_REQUEST_DEADLINE_SECONDS": str(DEADLINE),
        "READYZ_TIMEOUT": str(READYZ),
        # A budget the frozen cache would enforce if the throttle waited for it.
        "API_THROTTLE_RATE": "1000000/minute",
    }

    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as port:
        for _ in range(4):
            assert timed(port, "GET", "/api/v1/devices/", headers=headers)[1] == 200
        assert timed(port, "GET", "/readyz")[1] == 200

        with frozen(private_redis.process.pid):
            reads: list[tuple[float, int, bytes, dict[str, str]]] = []

            def api_requests() -> None:
                for _ in range(10):
                    reads.append(timed(port, "GET", "/api/v1/devices/", headers=headers))

            busy = threading.Thread(target=api_requests)
            busy.start()
            healthz = healthz_while(port, busy)
            busy.join(timeout=60)
            # A catalogue change commits, then its recompute cannot be published: the sweep catches up.
            build = {
                "model": model.pk,
                "build_number": "FROZEN.2",
                "security_patch_level": (now - dt.timedelta(days=5)).date().isoformat(),
                "released_at": (now - dt.timedelta(days=20)).isoformat(),
            }
            publish = timed(port, "POST", "/api/v1/builds/", build, headers=headers)
            readyz = timed(port, "GET", "/readyz")

        # The cache holds throttle counts only: requests go on without them. Each process waits one cache
        # timeout (CACHE_SOCKET_TIMEOUT), then leaves the cache alone for CACHE_FAILURE_BACKOFF_SECONDS.
        assert [code for _, code, _, _ in reads] == [200] * len(reads), [body[:200] for _, _, body, _ in reads]
        slow = [round(elapsed, 2) for elapsed, *_ in reads if elapsed > 0.4]
        assert len(slow) <= 2 and max(elapsed for elapsed, *_ in reads) < 0.5 + SLACK, [round(r[0], 2) for r in reads]
        assert healthz and max(healthz) < FAST, healthz
        # Publishing: two attempts of CELERY_BROKER_SOCKET_TIMEOUT (2 s) at most, within the request's deadline.
        elapsed, code, body, _ = publish
        assert code == 201 and elapsed < DEADLINE + SLACK, (elapsed, body[:300])
        elapsed, code, body, _ = readyz
        assert code == 503 and elapsed < READYZ + SLACK, elapsed
        assert json.loads(body)["failing"] == ["broker"]
    print(f"frozen Redis: API reads {[round(r[0], 2) for r in reads]} s, build published in {publish[0]:.2f} s,")
    print(f"readyz {readyz[0]:.2f} s, healthz max {max(healthz) * 1000:.0f} ms")
