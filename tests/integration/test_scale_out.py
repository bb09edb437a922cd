"""Scale out (issue #9): reads off a replica, and no state kept in a web process.

Real processes on real services: gunicorn servers started against the test database (PostgreSQL), a second
PostgreSQL database standing in for a streaming replica, Redis for the shared cache.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.db import connection

from alerts.choices import DeliveryStatus
from fleet.services import api_client_create
from tests.factories import DeviceFactory, OrganisationFactory
from tests.integration.conftest import due_subscription, flush_redis, wait_for
from tests.integration.processes import gunicorn, request, send_task, start_celery_worker, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def api(port: int, method: str, path: str, *, token: str, body: object = None) -> tuple[int, dict]:
    status, payload, _ = request(port, method, path, body, headers={"Authorization": f"Bearer {token}"})
    return status, json.loads(payload or b"{}")


def _database_url(name: str) -> str:
    settings = connection.settings_dict
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    return f"postgres://{settings['USER'] or 'postgres'}@{host}:{port}/{name}"


@pytest.fixture
def replica(real_services) -> Iterator[Callable[[], None]]:
    """A second real database standing in for a streaming replica: created with the test database's schema, and
    brought up to date only when the test calls ``catch_up()``; it lags behind every write made after that."""
    primary = connection.settings_dict["NAME"]
    name = f"{primary}_replica"
    admin_url = _database_url("postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    # The primary's schema, as a replica has it (not CREATE DATABASE ... TEMPLATE, which fails while any other
    # session, a server left by an earlier test, is connected to the test database).
    schema = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", _database_url(primary)],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    subprocess.run(
        ["psql", "--quiet", "--set", "ON_ERROR_STOP=1", _database_url(name)],
        input=schema,
        capture_output=True,
        check=True,
        timeout=120,
    )

    def catch_up() -> None:
        """Replays the primary's tables onto the replica (what streaming replication does continuously)."""
        with psycopg.connect(_database_url(primary)) as source, psycopg.connect(_database_url(name)) as target:
            tables = [
                row[0]
                # Plain tables and partitions (relkind 'r'), not the partitioned parents, which hold no rows.
                for row in source.execute(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'django_migrations'"
                )
            ]
            # As a replica applies the primary's WAL: no foreign-key triggers firing on the way.
            target.execute("SET session_replication_role = replica")
            target.execute("TRUNCATE " + ", ".join(f'"{table}"' for table in tables) + " CASCADE")
            for table in tables:
                with source.cursor().copy(f'COPY "{table}" TO STDOUT (FORMAT BINARY)') as out:
                    with target.cursor().copy(f'COPY "{table}" FROM STDIN (FORMAT BINARY)') as into:
                        for block in out:
                            into.write(block)

    yield catch_up
    connection.close()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_lists_read_from_the_replica_and_a_client_that_wrote_reads_its_writes(real_services, replica, tmp_path):
    organisation = OrganisationFactory()
    _, token = api_client_create(organisation=organisation, name="MDM", scopes=["read", "report", "enrol"])
    replicated = DeviceFactory(organisation=organisation, serial="REPLICATED")
    replica()  # the replica has caught up: it holds the client and the first device
    DeviceFactory(organisation=organisation, serial="NOT-YET-REPLICATED")
    env = {**real_services, "DATABASE_REPLICA_URL": _database_url(f"{connection.settings_dict['NAME']}_replica")}

    with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as port:
        status, page = api(port, "GET", "/api/v1/devices/", token=token)
        assert status == 200, page
        assert [d["serial"] for d in page["results"]] == ["REPLICATED"]  # served by the replica

        # A lookup is not a list: the primary answers, and knows the device the replica has not received yet.
        status, device = api(port, "GET", "/api/v1/devices/by-serial/NOT-YET-REPLICATED/", token=token)
        assert status == 200, device

        # The client writes: it is pinned to the primary and sees what it wrote in its next list.
        status, created = api(port, "POST", "/api/v1/devices/", token=token, body={"serial": "JUST-ENROLLED"})
        assert status == 201, created
        status, page = api(port, "GET", "/api/v1/devices/?ordering=serial", token=token)
        assert status == 200, page
        assert [d["serial"] for d in page["results"]] == ["JUST-ENROLLED", "NOT-YET-REPLICATED", "REPLICATED"]

        # Another client of the same organisation did not write: it still reads the (lagging) replica.
        _, other_token = api_client_create(organisation=organisation, name="Dashboard", scopes=["read"])
        replica()  # ...once the replica knows that client, the devices as they are now included
        DeviceFactory(organisation=organisation, serial="AFTER-CATCH-UP")
        status, page = api(port, "GET", "/api/v1/devices/?ordering=serial", token=other_token)
        assert status == 200, page
        serials = [d["serial"] for d in page["results"]]
        assert "AFTER-CATCH-UP" not in serials and "JUST-ENROLLED" in serials
        assert replicated.serial in serials

    # Nothing was ever written to the replica: it holds no device the primary does not.
    connection.close()
    with psycopg.connect(env["DATABASE_REPLICA_URL"]) as copy:
        (count,) = copy.execute("SELECT count(*) FROM devices_device").fetchone()
    assert count == 3


def test_api_throttling_is_shared_between_two_web_processes_through_redis(real_services, tmp_path):
    cache_url = real_services["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/13"
    flush_redis(cache_url)
    organisation = OrganisationFactory()
    _, token = api_client_create(organisation=organisation, name="MDM", scopes=["read"])
    env = {**real_services, "CACHE_URL": cache_url, "API_THROTTLE_RATE": "4/minute"}

    with (
        gunicorn(env, workers=1, log_path=tmp_path / "one.log") as one,
        gunicorn(env, workers=1, log_path=tmp_path / "two.log") as two,
    ):
        statuses = [api(port, "GET", "/api/v1/fleets/", token=token)[0] for port in (one, two, one, two)]
        assert statuses == [200, 200, 200, 200]
        # Each process has served two requests only: a per-process count would let both through.
        assert api(one, "GET", "/api/v1/fleets/", token=token)[0] == 429
        assert api(two, "GET", "/api/v1/fleets/", token=token)[0] == 429
    flush_redis(cache_url)


def test_digests_do_not_wait_behind_a_sweep_they_have_a_queue_of_their_own(
    smtp_sink,
    real_services,
    tmp_path,
):
    subscription = due_subscription("queued", "Queued Org", "ops@queued.example")
    # A sweep is waiting in its queue, ahead of the digests, with no sweep worker to take it.
    send_task(real_services, "updates.sweep_compliance")
    send_task(real_services, "fleet.dispatch_digests")

    worker = start_celery_worker(real_services, log_path=tmp_path / "alerts.log", name="alerts", queues="alerts")
    try:
        assert wait_for(lambda: subscription.deliveries.filter(status=DeliveryStatus.SENT).exists()), list(
            subscription.deliveries.values("status", "error")
        )
    finally:
        stop_process(worker)
    assert len(smtp_sink.messages) == 1
    log = (tmp_path / "alerts.log").read_text()
    assert "Task fleet.send_digest[" in log and "Task updates.sweep_compliance[" not in log

    import redis

    broker = redis.Redis.from_url(real_services["CELERY_BROKER_URL"])
    assert broker.llen("sweep") == 1  # still there for a sweep worker
