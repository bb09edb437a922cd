"""Two dispatchers, two workers, at the same moment: each period's digest still goes out once (PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest
import time_machine
from django.core import mail
from django.db import connection, connections

from alerts.choices import DeliveryStatus
from alerts.models import AlertSubscription, DigestDelivery
from alerts.services import digest_delivery_send, digests_dispatch
from tests.factories import DeviceFactory, OrganisationFactory, StatusChangeFactory

SEND = dt.datetime(2026, 1, 15, 7, 0, tzinfo=dt.UTC)


@pytest.fixture
def postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions need PostgreSQL: SQLite serialises writers, so there is no race to test")


def run_together(target: Callable[[], object], threads: int = 2) -> list[object]:
    """Runs ``target`` in ``threads`` threads released at the same instant; returns results (or exceptions)."""
    barrier = threading.Barrier(threads)
    results: list[object] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(target())
        except Exception as exc:  # noqa: BLE001 - reported by the test's assertions
            results.append(exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    return results


@pytest.fixture
def subscriptions(postgres_only) -> list[AlertSubscription]:
    result = []
    for index in range(3):
        organisation = OrganisationFactory(name=f"Org {index}", slug=f"org-{index}")
        device = DeviceFactory(organisation=organisation, compliance_status="behind")
        StatusChangeFactory(device=device, to_status="behind", changed_at=SEND - dt.timedelta(hours=2))
        result.append(
            AlertSubscription.objects.create(
                organisation=organisation,
                name="Daily",
                time_zone="Europe/Paris",
                extra_recipients=f"ops{index}@example.org",
                created_at=SEND - dt.timedelta(days=10),
            )
        )
    return result


@time_machine.travel(SEND, tick=False)
def test_two_dispatchers_at_once_send_each_digest_once(subscriptions):
    results = run_together(digests_dispatch, threads=4)

    assert not [result for result in results if isinstance(result, Exception)], results
    assert sorted(len(result.created) for result in results) == [0, 0, 0, 3]
    assert DigestDelivery.objects.filter(status=DeliveryStatus.SENT).count() == 3
    assert sorted(message.to[0] for message in mail.outbox) == [
        "ops0@example.org",
        "ops1@example.org",
        "ops2@example.org",
    ]


def test_two_workers_holding_the_same_task_send_it_once(subscriptions):
    created = digests_dispatch(now=SEND, enqueue=False).created
    for delivery_id in created:
        results = run_together(lambda delivery_id=delivery_id: digest_delivery_send(delivery_id=delivery_id, now=SEND))
        assert sorted(map(str, results)) == ["not claimed", "sent"]
    assert len(mail.outbox) == 3
    assert set(DigestDelivery.objects.values_list("attempts", flat=True)) == {1}
