"""/metrics: Prometheus text for whoever holds METRICS_TOKEN, and nothing for anyone else."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from alerts.choices import DeliveryStatus
from alerts.models import AlertSubscription, DigestDelivery
from devices.choices import ComplianceStatus
from devices.compliance import tallies
from tests.factories import DeviceFactory, OrganisationFactory

TOKEN = "metrics-token-for-tests-0123456789"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def token(settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Client, token: str = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    # Prometheus's classic text format unless the scraper asks for OpenMetrics.
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.django_db
def test_metrics_do_not_exist_without_a_configured_token(client: Client, settings) -> None:
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
    ids=["none", "wrong", "not-bearer", "longer", "empty"],
)
def test_metrics_refuse_a_request_without_the_right_token(
    client: Client, token: str, authorization: str | None
) -> None:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = client.get("/metrics", **headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"fleetpatch_devices" not in response.content


@pytest.mark.django_db
def test_metrics_count_devices_by_organisation_and_status_as_of_the_last_sweep(client: Client, token: str) -> None:
    org_a = OrganisationFactory(slug="org-a")
    org_b = OrganisationFactory(slug="org-b")
    DeviceFactory.create_batch(2, organisation=org_a, compliance_status=ComplianceStatus.BEHIND)
    DeviceFactory(organisation=org_a, compliance_status=ComplianceStatus.UP_TO_DATE)
    DeviceFactory(organisation=org_b, compliance_status=ComplianceStatus.SILENT)
    DeviceFactory(organisation=org_b, compliance_status=ComplianceStatus.SILENT, retired_at=timezone.now())
    swept_at = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=7)
    tallies.tally_devices(now=swept_at)

    metrics = scrape(client)

    assert metrics[("fleetpatch_devices", (("organisation", "org-a"), ("status", "behind")))] == 2
    assert metrics[("fleetpatch_devices", (("organisation", "org-a"), ("status", "up_to_date")))] == 1
    assert metrics[("fleetpatch_devices", (("organisation", "org-b"), ("status", "silent")))] == 1
    # Every status is present, zeros included, so a dashboard never reads a missing series as "no data".
    assert metrics[("fleetpatch_devices", (("organisation", "org-b"), ("status", "critical")))] == 0
    assert metrics[("fleetpatch_last_sweep_timestamp_seconds", ())] == swept_at.timestamp()
    battery_total = sum(value for (name, labels), value in metrics.items() if name == "fleetpatch_devices_battery")
    assert battery_total == 4


@pytest.mark.django_db
def test_metrics_count_digest_deliveries_by_status(client: Client, token: str) -> None:
    subscription = AlertSubscription.objects.create(organisation=OrganisationFactory(), name="Morning digest")
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    for hours, status in enumerate([DeliveryStatus.SENT, DeliveryStatus.SENT, DeliveryStatus.FAILED]):
        DigestDelivery.objects.create(
            subscription=subscription, period=start - dt.timedelta(hours=hours), status=status
        )

    metrics = scrape(client)

    assert metrics[("fleetpatch_digest_deliveries", (("status", "sent"),))] == 2
    assert metrics[("fleetpatch_digest_deliveries", (("status", "failed"),))] == 1
    assert metrics[("fleetpatch_digest_deliveries", (("status", "retrying"),))] == 0


@pytest.mark.django_db
def test_a_scrape_costs_four_queries_whatever_the_number_of_organisations(
    client: Client, token: str, django_assert_max_num_queries
) -> None:
    for index in range(12):
        DeviceFactory(organisation=OrganisationFactory(slug=f"org-{index}"))
    tallies.tally_devices()

    # The tallies, the last sweep run, the tasks given up, the digest deliveries.
    with django_assert_max_num_queries(4):
        metrics = scrape(client)

    assert len({labels for name, labels in metrics if name == "fleetpatch_devices"}) == 12 * len(ComplianceStatus)


@pytest.mark.django_db
def test_requests_are_counted_and_timed_by_view_name_not_by_path(client: Client, token: str) -> None:
    labels = {"method": "GET", "view": "admin:login", "status": "200"}
    before = REGISTRY.get_sample_value("fleetpatch_http_requests_total", labels) or 0
    timed_before = (
        REGISTRY.get_sample_value(
            "fleetpatch_http_request_duration_seconds_count", {"method": "GET", "view": "admin:login"}
        )
        or 0
    )

    client.get("/admin/login/")
    client.get("/admin/login/?next=/admin/devices/")
    client.get("/no/such/page/")
    metrics = scrape(client)

    assert metrics[("fleetpatch_http_requests_total", tuple(sorted(labels.items())))] == before + 2
    timed = metrics[("fleetpatch_http_request_duration_seconds_count", (("method", "GET"), ("view", "admin:login")))]
    assert timed == timed_before + 2
    unresolved = (("method", "GET"), ("status", "404"), ("view", "<unresolved>"))
    assert metrics[("fleetpatch_http_requests_total", unresolved)] >= 1
    assert not any("/no/such/page/" in str(labels) for _name, labels in metrics)


@pytest.mark.django_db
def test_a_scraper_asking_for_openmetrics_gets_one_document(client: Client, token: str) -> None:
    DeviceFactory()
    tallies.tally_devices()

    response = client.get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0"
    )

    assert response["Content-Type"].startswith("application/openmetrics-text")
    text = response.content.decode()
    assert text.count("# EOF") == 1
    assert text.endswith("# EOF\n")
    assert "fleetpatch_devices{" in text


def test_with_several_web_processes_a_scrape_adds_up_all_of_them(tmp_path) -> None:
    """gunicorn's workers each count their own requests; PROMETHEUS_MULTIPROC_DIR makes a scrape see them all."""
    code = """
import django, json
django.setup()
from django.test import Client
client = Client()
client.get("/no/such/page/")
client.get("/no/such/page/")
print(client.get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode())
"""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "a-test-secret-key-that-is-long-enough-and-random-enough-0123456789",
        "SECURE_SSL_REDIRECT": "false",
        "METRICS_TOKEN": "t0ken",
        "ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stderr

    # Two processes, one after the other, as two gunicorn workers would be.
    outputs = [
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        for _ in range(2)
    ]

    assert all(result.returncode == 0 for result in outputs), outputs[-1].stderr
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(outputs[-1].stdout)
        for sample in family.samples
    }
    not_found = (("method", "GET"), ("status", "404"), ("view", "<unresolved>"))
    assert samples[("fleetpatch_http_requests_total", not_found)] == 4
