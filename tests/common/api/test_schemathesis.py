"""Schemathesis against the OpenAPI schema the API serves: for every operation, generated requests (valid
ones, and ones that break the schema on purpose) never get a 5xx, and every answer is one the schema
documents (status code, content type, body), with a token that has every scope and an organisation
whose rows the generated ids and serials really hit.

Reproducible: the hypothesis profile ``ci`` (tests/conftest.py) derandomizes generation, so a failure in
CI fails the same way on a laptop. ``FUZZ_EXAMPLES`` raises the number of examples per operation, and
``HYPOTHESIS_PROFILE=explore`` draws new ones on every run (README "Running the tests").
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from rest_framework.views import APIView
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.api_personas import ALL_SCOPES, make_client
from tests.factories import (
    BatteryEventFactory,
    DeviceFactory,
    DeviceModelFactory,
    FleetFactory,
    OrganisationFactory,
    OSBuildFactory,
)

# 25 examples per operation keep the whole file near 20 s on SQLite (CI's budget is 60 s per run).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

# Loaded from the running application, as a client would: the schema under test is the one served.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())

# What organisation B owns, which nothing organisation A's client receives may ever contain.
B_SECRETS = ("B-SECRET-SERIAL", "b-secret-fleet", "B.SECRET.BUILD")

# Rows the generated path parameters are pointed at, filled by the ``world`` fixture before any example
# is drawn: {"devices": [ids...], "serial": [...], ...}, organisation A's first, then B's (which must 404).
KNOWN: dict[str, list[Any]] = {}

# Path segment of an operation -> KNOWN key of the ids that segment's {id} names.
RESOURCES = {
    "devices": "devices",
    "fleets": "fleets",
    "models": "models",
    "builds": "builds",
    "battery-events": "events",
}


@schema.hook
def map_path_parameters(context: schemathesis.HookContext, path_parameters: dict[str, Any]) -> dict[str, Any]:
    """Two generated ids in three, and one serial or IMEI in three, become a real row's (A's or B's),
    chosen by the generated value itself so the choice stays reproducible. Ids that are not numbers
    (drawn to break the schema: "%0A", "null") are left alone: they test the URL routing."""
    if not path_parameters:
        return path_parameters
    segments = context.operation.path.strip("/").split("/") if context.operation else []
    mapped = dict(path_parameters)
    for name, value in path_parameters.items():
        if name == "id" and isinstance(value, int) and not isinstance(value, bool) and value % 3:
            resource = next((RESOURCES[s] for s in segments if s in RESOURCES), "")
            candidates = KNOWN.get(resource, [])
        elif name in ("serial", "imei") and len(str(value)) % 3 == 1:
            candidates = KNOWN.get(name, [])
        else:
            continue
        if candidates:
            mapped[name] = candidates[(value if isinstance(value, int) else len(str(value))) % len(candidates)]
    return mapped


@schemathesis.check
def never_shows_another_organisations_rows(ctx: Any, response: Any, case: Any) -> bool | None:
    """Tenancy under fuzzing: organisation A's client never receives anything of B's."""
    body = response.text or ""
    leaked = [secret for secret in B_SECRETS if secret in body]
    if leaked:
        raise AssertionError(f"Organisation B's {leaked} in the answer to {case.method} {case.formatted_path}")
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
    unsupported_method,
    never_shows_another_organisations_rows,
]


@pytest.fixture
def world(db, monkeypatch) -> Iterator[str]:
    """Organisation A (whose client has every scope) with fleets, models, public and private builds,
    devices in every state (checked in, never reported, no model, retired), check-ins and battery events;
    organisation B with the same kinds of rows. Returns A's token."""
    # The throttle counts requests per client in the cache: a long local run must not turn into 429s.
    monkeypatch.setattr(APIView, "throttle_classes", [])
    org_a = OrganisationFactory(slug="org-a")
    org_b = OrganisationFactory(slug="org-b")
    model = DeviceModelFactory(manufacturer__name="Crosscall", name="Core-Z5", slug="core-z5")
    other_model = DeviceModelFactory(
        slug="eol-phone",
        launched_on=dt.date(2018, 1, 1),
        security_support_until=dt.date(2021, 1, 1),
        os_support_until=dt.date(2020, 1, 1),
    )
    public = OSBuildFactory(model=model, build_number="UQ1A.240105.004")
    newer = OSBuildFactory(model=model, build_number="UQ1A.240205.002", released_at=timezone.now())
    private_a = OSBuildFactory(model=model, organisation=org_a, build_number="INHOUSE.1")
    private_b = OSBuildFactory(model=model, organisation=org_b, build_number=B_SECRETS[2])
    fleet_a = FleetFactory(organisation=org_a, slug="north")
    fleet_b = FleetFactory(organisation=org_b, slug=B_SECRETS[1])
    reported = DeviceFactory(organisation=org_a, fleet=fleet_a, model=model, serial="A-0001")
    silent = DeviceFactory(organisation=org_a, fleet=None, model=None, imei=None, serial="A-0002")
    retired = DeviceFactory(organisation=org_a, model=other_model, serial="A-0003", retired_at=timezone.now())
    device_b = DeviceFactory(organisation=org_b, fleet=fleet_b, model=model, serial=B_SECRETS[0])
    event_a = BatteryEventFactory(device=reported)
    event_b = BatteryEventFactory(device=device_b)
    token = make_client(org_a, "Fuzzer", ALL_SCOPES)[1]
    # Real check-ins through the API, so devices carry a computed compliance status and a history.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    now = timezone.now()
    reports = [
        {"serial": "A-0001", "reported_at": (now - dt.timedelta(days=d)).isoformat(), "build_number": build}
        for d, build in ((3, public.build_number), (1, newer.build_number))
    ]
    reports.append({"serial": "A-0003", "reported_at": now.isoformat(), "build_number": "UNKNOWN.1"})
    assert client.post("/api/v1/checkins/", reports, format="json").status_code == 200
    KNOWN.clear()
    KNOWN.update(
        devices=[reported.pk, silent.pk, retired.pk, device_b.pk],
        fleets=[fleet_a.pk, fleet_b.pk],
        models=[model.pk, other_model.pk],
        builds=[public.pk, private_a.pk, newer.pk, private_b.pk],
        events=[event_a.pk, event_b.pk],
        serial=["A-0001", "A-0002", B_SECRETS[0]],
        imei=[reported.imei, device_b.imei],
    )
    # Requests go through the real WSGI handler (CSRF and all, as a client meets them), which closes the
    # database connection after each one: in a test, the connection holding the test's transaction.
    # Django's test client detaches the same receiver around each of its requests (and reattaches it,
    # hence here, after the check-ins above).
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield token
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    # One database per operation, shared by its examples: that is the point (ids hit real rows).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_answers_as_its_schema_says_and_never_with_a_5xx(case: schemathesis.Case, world: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {world}"}, checks=CHECKS)
