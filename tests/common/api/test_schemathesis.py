"""Schemathesis against the OpenAPI schema the API serves: for every operation, generated requests (valid
ones, and ones that break the schema on purpose) never get a 5xx, and every answer is one the schema
documents (status code, content type, body), with a token that has every scope and an organisation
whose rows the generated ids and serials really hit.

The schema says exactly what the API does, both ways: a request the schema allows is accepted
(``positive_data_acceptance``) and one it forbids is refused (``negative_data_rejection``,
``missing_required_header``). Two exceptions, both checked as strictly as they can be:
- a 400 the schema cannot express, naming the field: a reference to a row that does not exist (or is
  another organisation's), a placeholder serial, a serial or alias already taken (``SEMANTIC_FIELDS``);
- a batch of reports is answered item by item (one bad item never loses the good ones): a list holding an
  item the schema forbids is a 200 whose results report errors (``batch_items_answered_one_by_one``).
A value that breaks the edge's rules (a control character, a date outside 2000-2099: docs/api.md, "What the
API stores") is refused naming its field wherever it is sent; such a refusal is excused too.
Text never holds NUL (every JSON string and query value with one is a 400, tests/common/api/test_errors.py),
which the schema does not spell out on every string: none is generated here.

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
from django.utils.dateparse import parse_date, parse_datetime
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from rest_framework.views import APIView
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.specs.openapi.checks import (
    RejectedPositiveData,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from common.dates import EARLIEST_DATE, EARLIEST_PATCH_LEVEL, out_of_range
from common.text import forbidden_character
from tests.api_personas import ALL_SCOPES, make_client
from tests.factories import (
    BatteryEventFactory,
    DeviceFactory,
    DeviceModelFactory,
    FleetFactory,
    OrganisationFactory,
    OSBuildFactory,
)

# 15 fuzzed examples per operation, on top of the coverage phase's boundary cases (which max_examples does not
# bound), keep the file near 60 s of CPU on SQLite; FUZZ_EXAMPLES=500 for a longer local run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))

# Loaded from the running application, as a client would: the schema under test is the one served.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
schema.config.generation.update(allow_x00=False)

# What organisation B owns, which nothing organisation A's client receives may ever contain.
B_SECRETS = ("B-SECRET-SERIAL", "b-secret-fleet", "B.SECRET.BUILD")

# Rows the generated path parameters are pointed at, filled by the ``world`` fixture before any example
# is drawn: {"devices": [ids...], "serial": [...], ...}, organisation A's first, then B's (which must 404).
KNOWN: dict[str, list[Any]] = {}
# Body field -> organisation A's values for it (ids, serials, slugs), filled by ``world`` too.
GOOD_REFERENCES: dict[str, list[Any]] = {}

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


# Per operation, the fields whose schema-valid value may still be refused with a 400 naming them, because
# the value names no row of the client's organisation (or one already taken). The rest must be accepted.
# Rules across fields (a replacement carries no reading; say whose check-ins; a serial or an IMEI) and
# uniqueness ("non_field_errors": already enrolled, already published) are there too.
SEMANTIC_FIELDS = {
    ("GET", "/api/v1/compliance/time-to-patch/"): {"model"},
    ("GET", "/api/v1/checkins/"): {"device"},
    ("POST", "/api/v1/battery-events/"): {"device", "health_pct", "occurred_at"},
    ("POST", "/api/v1/builds/"): {"model", "non_field_errors", "security_patch_level", "released_at"},
    ("POST", "/api/v1/checkins/"): {"serial", "imei", "reported_at", "security_patch_level"},
    ("POST", "/api/v1/ingest/headwind/"): {"serial", "imei", "deviceId", "number", "timestamp"},
    ("POST", "/api/v1/ingest/amapi/"): {
        "hardwareInfo.serialNumber",
        "networkInfo.imei",
        "name",
        "lastStatusReportTime",
        "softwareInfo.securityPatchLevel",
    },
    ("POST", "/api/v1/devices/"): {"model", "fleet", "serial", "imei", "non_field_errors"},
    ("PATCH", "/api/v1/devices/{id}/"): {"model", "fleet"},
    # An observed build on which no device reported a patch level (the check-ins the examples post record
    # such builds) cannot be promoted: the catalogue needs one.
    ("POST", "/api/v1/observed-builds/{id}/promote/"): {"security_patch_level"},
    ("POST", "/api/v1/models/{id}/aliases/"): {"__all__", "name"},
    ("POST", "/api/v1/models/{id}/manufacturer-aliases/"): {"__all__", "name"},
}

# Body fields that name a row, and the values (organisation A's rows) a positive example is pointed at.
REFERENCE_FIELDS = {"device": "devices", "model": "models", "fleet": "fleets"}


def _sent(case: Any, name: str) -> Any:
    if isinstance(case.body, dict):
        value: Any = case.body
        for part in name.split("."):  # "hardwareInfo.serialNumber": the ingestion names nested fields so
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            return value
    return (case.query or {}).get(name)


def _breaks_an_edge_rule(field: str, value: Any) -> bool:
    """Whether the value breaks a rule every way in applies and the schema does not spell out on every string
    (docs/api.md, "What the API stores"): a character text cannot hold, a date outside 2000-2099 (a security
    patch level before 2010)."""
    if not isinstance(value, str):
        return False
    if forbidden_character(value) is not None:
        return True
    try:
        moment = parse_datetime(value) if "T" in value else None
        day = moment or parse_date(value)
    except ValueError:
        return False
    earliest = EARLIEST_PATCH_LEVEL if "patch" in field.lower() else EARLIEST_DATE
    return day is not None and out_of_range(day, earliest=earliest) is not None


# Moments and dates refused when they are in the future (a report, an event, a patch level): the schema has
# no "at most now". Such a field is excused only when the value sent is really after now.
NOT_IN_THE_FUTURE = {"occurred_at", "reported_at", "security_patch_level", "released_at"}


def _in_the_future(value: Any) -> bool:
    if not isinstance(value, str):
        return True  # the reading an ingestion parser gives a value it could not parse is not the schema's
    moment = parse_datetime(value) if "T" in value else None
    if moment is not None:
        return timezone.is_naive(moment) or moment > timezone.now()
    day = parse_date(value)
    return day is None or day > timezone.now().date()


def _names_a_known_row(field: str, value: Any) -> bool:
    """Whether the value is one of organisation A's rows (an id, a serial, a slug), which must be accepted."""
    if field in NOT_IN_THE_FUTURE:
        return not _in_the_future(value)
    if field == "serial":
        return False  # an enrolment's serial is refused when taken, accepted when new: both are right
    return value in GOOD_REFERENCES.get(field, ())


@schemathesis.check
def positive_data_accepted_unless_it_names_no_row(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance, except a 400 naming only fields of SEMANTIC_FIELDS whose values name no row."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        allowed = SEMANTIC_FIELDS.get((case.method.upper(), case.operation.path), set())
        body = response.json() if response.status_code == 400 else None
        if isinstance(body, dict) and body.get("status") == "error":
            body = body["errors"]  # a single report's result (the ingestion endpoints)
        if isinstance(body, dict) and body:
            # Each field named is excused by the edge's rules (its value really breaks one), or is one whose
            # value really names no row; any other refusal of schema-valid data fails.
            semantic = {field for field in body if not _breaks_an_edge_rule(field, _sent(case, field))}
            if semantic <= allowed and not any(_names_a_known_row(field, _sent(case, field)) for field in semantic):
                return None
        raise


@schemathesis.check
def negative_data_refused_or_answered_item_by_item(ctx: Any, response: Any, case: Any) -> bool | None:
    """negative_data_rejection, except a list of reports (answered 200, item by item) must report an error
    for at least one item, and for every item that is not an object."""
    try:
        return negative_data_rejection(ctx, response, case)
    except AcceptedNegativeData:
        if response.status_code != 200 or not isinstance(case.body, list):
            raise
        answer = response.json()
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(case.body) or not answer.get("errors"):
            raise
        for item, result in zip(case.body, results, strict=True):
            if not isinstance(item, dict) and result["status"] != "error":
                raise
        return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
    unsupported_method,
    missing_required_header,
    positive_data_accepted_unless_it_names_no_row,
    negative_data_refused_or_answered_item_by_item,
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
    GOOD_REFERENCES.clear()
    GOOD_REFERENCES.update(
        device=[reported.pk, silent.pk, "A-0001", "A-0002"],
        model=[model.pk, other_model.pk, "core-z5", "eol-phone"],
        fleet=[fleet_a.pk, "north"],
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
    if case.meta is not None and case.meta.generation.mode.is_positive and isinstance(case.body, dict):
        # Two positive examples in three name organisation A's rows, so the accepted path is exercised too.
        for field in REFERENCE_FIELDS.keys() & case.body.keys():
            drawn = case.body[field]
            # Of the drawn value's type: a pk-only field stays a number, a name stays text.
            good = [v for v in GOOD_REFERENCES[field] if type(v) is type(drawn)]
            if good and len(str(drawn)) % 3:
                case.body[field] = good[len(str(drawn)) % len(good)]
    case.call_and_validate(headers={"Authorization": f"Bearer {world}"}, checks=CHECKS)
