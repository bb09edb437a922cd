"""API personas: one ApiClient per role with a known clear token, and an HTTP client that sends it.

Shared by the API tests of every app (``tests/<app>/api/``), whose ``conftest.py`` imports these fixtures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from fleet.models import ApiClient, Organisation
from fleet.services import api_client_create
from tests.factories import DeviceFactory, DeviceModelFactory, FleetFactory, OSBuildFactory

ALL_SCOPES = ["read", "report", "enrol", "catalogue"]

# The fixtures, for ``from tests.api_personas import *`` in each API test folder's conftest.
__all__ = [
    "_fresh_throttle_history",
    "anonymous",
    "device_a",
    "device_b",
    "expired_a",
    "fleet_a",
    "fleet_b",
    "http",
    "mdm_a",
    "mdm_b",
    "phone_model",
    "public_build",
    "reader_a",
    "reporter_a",
    "revoked_a",
]


def make_client(organisation: Organisation, name: str, scopes: list[str], **kwargs: object) -> tuple[ApiClient, str]:
    return api_client_create(organisation=organisation, name=name, scopes=scopes, **kwargs)


@pytest.fixture(autouse=True)
def _fresh_throttle_history():
    """Throttling counts requests per client id in the cache, and ids repeat from one test to the next."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def http() -> Callable[[str | None], APIClient]:
    """``http(token)``: a DRF test client that sends ``Authorization: Bearer <token>`` (none for None)."""

    def build(token: str | None) -> APIClient:
        client = APIClient()
        if token is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return build


@pytest.fixture
def mdm_a(org_a, http) -> APIClient:
    """Organisation A's MDM with every scope."""
    return http(make_client(org_a, "MDM A", ALL_SCOPES)[1])


@pytest.fixture
def reader_a(org_a, http) -> APIClient:
    """Organisation A's dashboard: read only."""
    return http(make_client(org_a, "Reader A", ["read"])[1])


@pytest.fixture
def reporter_a(org_a, http) -> APIClient:
    """Organisation A's agent that only reports (no read, no enrol)."""
    return http(make_client(org_a, "Reporter A", ["report"])[1])


@pytest.fixture
def mdm_b(org_b, http) -> APIClient:
    """Organisation B's MDM with every scope: it must see and touch nothing of A."""
    return http(make_client(org_b, "MDM B", ALL_SCOPES)[1])


@pytest.fixture
def revoked_a(org_a, http) -> APIClient:
    client, token = make_client(org_a, "Revoked A", ALL_SCOPES)
    ApiClient.objects.filter(pk=client.pk).update(revoked_at=timezone.now())
    return http(token)


@pytest.fixture
def expired_a(org_a, http) -> APIClient:
    client, token = make_client(org_a, "Expired A", ALL_SCOPES)
    ApiClient.objects.filter(pk=client.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    return http(token)


@pytest.fixture
def anonymous(http) -> APIClient:
    return http(None)


@pytest.fixture
def phone_model(db):
    return DeviceModelFactory(
        manufacturer__name="Crosscall", manufacturer__slug="crosscall", name="Core-Z5", slug="core-z5"
    )


@pytest.fixture
def public_build(phone_model):
    return OSBuildFactory(model=phone_model, build_number="UQ1A.240105.004")


@pytest.fixture
def fleet_a(org_a):
    return FleetFactory(organisation=org_a, name="North", slug="north")


@pytest.fixture
def fleet_b(org_b):
    return FleetFactory(organisation=org_b, name="B South", slug="south")


@pytest.fixture
def device_a(org_a, fleet_a, phone_model):
    return DeviceFactory(organisation=org_a, fleet=fleet_a, model=phone_model, serial="A-0001")


@pytest.fixture
def device_b(org_b, fleet_b, phone_model):
    return DeviceFactory(organisation=org_b, fleet=fleet_b, model=phone_model, serial="B-0001")
