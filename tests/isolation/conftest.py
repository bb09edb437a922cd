"""Two organisations with one of everything, built once per module, and the personas who use them.

Every row of organisation A carries the word ALPHA in its text and every row of B the word BRAVO
(users included: ``alpha-manager``, ``bravo-manager``), and nothing shared (the public catalogue,
the superuser) carries either. A page or a response of A's personas that contains "bravo", in any
case, has leaked something of B, whatever the page: the suites assert that on every answer.

The world is built once per test module inside an outer transaction that is rolled back at the end;
each test runs in a savepoint inside it (pytest-django's ``db``), so what a test writes is undone
before the next one, and the rows cost one build per module instead of one per test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib import admin
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import AlertSubscription, DigestDelivery, DigestMessage, Unsubscription
from devices.compliance.rollouts import rollouts_refresh
from devices.compliance.tallies import snapshot_statuses, tally_devices
from devices.models import BuildRollout, RejectedMessage, Waiver
from fleet.choices import Role, Scope
from fleet.models import ApiClient, Organisation
from fleet.scoping import OrganisationScopedAdmin
from fleet.services import api_client_create, api_client_push_enable, membership_sync_groups
from tests.factories import (
    BatteryEventFactory,
    CheckInFactory,
    CompliancePolicyFactory,
    DeviceFactory,
    DeviceModelFactory,
    DeviceSourceIdFactory,
    FleetFactory,
    MembershipFactory,
    ObservedBuildFactory,
    OrganisationFactory,
    OSBuildFactory,
    StatusChangeFactory,
    UserFactory,
    imei_with_check_digit,
)
from updates.models import BuildPin, ManufacturerAlias, ModelAlias

MARKERS = {"a": "ALPHA", "b": "BRAVO"}
SINGLE_SCOPES = [Scope.READ, Scope.REPORT, Scope.ENROL, Scope.CATALOGUE]


def other(key: str) -> str:
    return "b" if key == "a" else "a"


@dataclass
class OrgData:
    """One organisation's rows (one of everything) and its API tokens."""

    key: str
    marker: str
    rows: dict[str, Any] = field(default_factory=dict)
    #: token of a client with only that scope; "all" has every scope; "revoked" and "expired" every scope too.
    tokens: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["rows"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class World:
    a: OrgData
    b: OrgData
    users: dict[str, Any]
    phone_model: Any
    public_build: Any

    def org(self, key: str) -> OrgData:
        return self.a if key == "a" else self.b


def _build_organisation(key: str, phone_model: Any, public_build: Any, now: dt.datetime) -> OrgData:
    marker = MARKERS[key]
    data = OrgData(key=key, marker=marker)
    org = OrganisationFactory(name=f"{marker} Organisation", slug=f"{marker.lower()}-org")
    fleet = FleetFactory(organisation=org, name=f"{marker} Fleet", slug=f"{marker.lower()}-fleet")
    build = OSBuildFactory(
        model=phone_model,
        organisation=org,
        build_number=f"{marker}.PRIV.1",
        released_at=now - dt.timedelta(days=10),
        security_patch_level=now.date() - dt.timedelta(days=20),
    )
    device = DeviceFactory(
        organisation=org,
        fleet=fleet,
        model=phone_model,
        serial=f"{marker}-0001",
        imei=imei_with_check_digit("35" + ("1" if key == "a" else "2") * 12),
        asset_tag=f"{marker}-TAG",
        assignee=f"{marker} Assignee",
        current_build=build,
        reported_build_number=build.build_number,
        security_patch_level=build.security_patch_level,
        last_check_in_at=now - dt.timedelta(hours=2),
    )
    check_in = CheckInFactory(
        device=device,
        build=build,
        build_number=build.build_number,
        reported_at=now - dt.timedelta(hours=2),
        agent_version=f"{marker}-agent",
    )
    subscription = AlertSubscription.objects.create(
        organisation=org, name=f"{marker} digest", extra_recipients=f"ops@{marker.lower()}.example.org"
    )
    subscription.fleets.add(fleet)
    data.rows.update(
        org=org,
        fleet=fleet,
        build=build,
        device=device,
        check_in=check_in,
        battery_event=BatteryEventFactory(device=device, part_serial=f"{marker}-BAT", reason=f"{marker} swap"),
        status_change=StatusChangeFactory(device=device, reason=f"{marker} moved"),
        source_id=DeviceSourceIdFactory(device=device, external_id=f"{marker}-HW-ID"),
        waiver=Waiver.objects.create(
            organisation=org, device=device, reason=f"{marker} field trial", expires_at=now + dt.timedelta(days=30)
        ),
        policy=CompliancePolicyFactory(organisation=org),
        fleet_policy=CompliancePolicyFactory(organisation=org, fleet=fleet),
        subscription=subscription,
        delivery=DigestDelivery.objects.create(
            subscription=subscription, period=now - dt.timedelta(days=1), subject=f"{marker} weekly digest"
        ),
        unsubscription=Unsubscription.objects.create(
            subscription=subscription, address=f"left@{marker.lower()}.example.org", via="page"
        ),
        pin=BuildPin.objects.create(
            organisation=org, model=phone_model, build=build, pinned_at=now, note=f"{marker} validated"
        ),
        observed_build=ObservedBuildFactory(organisation=org, model=phone_model, build_number=f"{marker}.OBS.1"),
    )
    data.rows["digest_message"] = DigestMessage.objects.create(
        delivery=data.rows["delivery"], address=f"reader@{marker.lower()}.example.org"
    )
    import_job = _import_job(org, marker)
    if import_job is not None:
        data.rows["import_job"] = import_job
    for scope in SINGLE_SCOPES:
        _client, data.tokens[scope] = api_client_create(organisation=org, name=f"{marker} MDM {scope}", scopes=[scope])
    client, data.tokens["all"] = api_client_create(
        organisation=org, name=f"{marker} MDM", scopes=[s.value for s in SINGLE_SCOPES]
    )
    data.rows["api_client"] = client
    # Pub/Sub pushes authenticate by the secret in their push URL, not by a token.
    push_client, _token = api_client_create(
        organisation=org, name=f"{marker} MDM push", scopes=[s.value for s in SINGLE_SCOPES]
    )
    data.rows["push_client"], data.tokens["push"] = api_client_push_enable(api_client=push_client)
    reporting_only, _token = api_client_create(organisation=org, name=f"{marker} MDM push read", scopes=[Scope.READ])
    data.rows["push_reader"], data.tokens["push_reader"] = api_client_push_enable(api_client=reporting_only)
    data.rows["rejected_message"] = RejectedMessage.objects.create(
        organisation=org,
        api_client=push_client,
        notification_type="STATUS_REPORT",
        message_id=f"{marker}-MSG-1",
        kind="device",
        errors={"hardwareInfo.serialNumber": [f"{marker} serial refused"]},
        raw={"name": f"enterprises/{marker}/devices/1"},
    )
    revoked, data.tokens["revoked"] = api_client_create(
        organisation=org, name=f"{marker} MDM revoked", scopes=[s.value for s in SINGLE_SCOPES]
    )
    ApiClient.objects.filter(pk=revoked.pk).update(revoked_at=now - dt.timedelta(minutes=1))
    expired, data.tokens["expired"] = api_client_create(
        organisation=org, name=f"{marker} MDM expired", scopes=[s.value for s in SINGLE_SCOPES]
    )
    ApiClient.objects.filter(pk=expired.pk).update(expires_at=now - dt.timedelta(seconds=1))
    return data


def import_job_model() -> type | None:
    """The spreadsheet imports' job model, when the imports are installed (they arrived with their own work)."""
    try:
        return django_apps.get_model("devices", "ImportJob")
    except LookupError:
        return None


def _import_job(org: Organisation, marker: str) -> Any:
    """An import waiting for its confirmation, with a preview naming the organisation's device."""
    model = import_job_model()
    if model is None:
        return None
    return model.objects.create(
        organisation=org,
        kind="devices",
        status="previewed",
        filename=f"{marker.lower()}-devices.csv",
        content=f"serial\n{marker}-0002\n".encode(),
        result_csv=f"row,serial,outcome\n2,{marker}-0002,created\n",
        summary={"counts": {"created": 1}},
    )


def build_world() -> World:
    """Both organisations, their members, and the records the sweep writes (snapshots, tallies, rollouts)."""
    now = timezone.now()
    # The shared catalogue: neither marker appears in it.
    phone_model = DeviceModelFactory(
        manufacturer__name="Crosscall", manufacturer__slug="crosscall", name="Core-Z5", slug="core-z5"
    )
    public_build = OSBuildFactory(
        model=phone_model, build_number="UQ1A.PUBLIC.1", released_at=now - dt.timedelta(days=60)
    )
    # The catalogue's other names (shared, like the models).
    ModelAlias.objects.create(model=phone_model, name="CZ5")
    ManufacturerAlias.objects.create(manufacturer=phone_model.manufacturer, name="Crosscall SAS")
    a = _build_organisation("a", phone_model, public_build, now)
    b = _build_organisation("b", phone_model, public_build, now)
    users = {"superuser": UserFactory(username="root", is_superuser=True, email="root@example.org")}
    for name, org, role in (
        ("manager_a", a.org, Role.MANAGER),
        ("viewer_a", a.org, Role.VIEWER),
        ("manager_b", b.org, Role.MANAGER),
    ):
        marker = MARKERS[name[-1]].lower()
        user = UserFactory(username=f"{marker}-{name[:-2]}", email=f"{name[:-2]}@{marker}.example.org")
        membership = MembershipFactory(user=user, organisation=org, role=role)
        membership_sync_groups(user=user)
        (a if org == a.org else b).rows.setdefault("membership", membership)
        users[name] = user
    snapshot_statuses()
    tally_devices()
    rollouts_refresh()
    for data in (a, b):
        if not BuildRollout.objects.filter(organisation=data.org).exists():
            BuildRollout.objects.create(
                organisation=data.org,
                build=data.build,
                days_since_release=0,
                installed=1,
                eligible=1,
                computed_at=now,
            )
    return World(a=a, b=b, users=users, phone_model=phone_model, public_build=public_build)


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    with django_db_blocker.unblock(), transaction.atomic():
        built = build_world()
        yield built
        transaction.set_rollback(True)


@pytest.fixture(autouse=True)
def _each_test_in_a_savepoint(db: None) -> None:
    """Every test of the package runs in pytest-django's per-test transaction, inside the world's."""


@pytest.fixture(autouse=True)
def _fresh_throttle_history() -> Iterator[None]:
    """API throttling counts per client id in the cache; the personas send many requests per module."""
    cache.clear()
    yield
    cache.clear()


def api(token: str | None) -> APIClient:
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def organisation_rows(organisation: Organisation) -> dict[str, list[dict]]:
    """Every row the admin scopes to ``organisation`` (public catalogue rows included), as plain values.

    Taken before and after a refused write: equal snapshots mean nothing of the organisation changed.
    """
    snapshot: dict[str, list[dict]] = {}
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, OrganisationScopedAdmin):
            continue
        rows = model._default_manager.filter(model_admin.scope_filter([organisation.pk])).order_by("pk")
        # When a client last authenticated is bookkeeping, not the organisation's data.
        snapshot[model._meta.label] = [
            {name: value for name, value in row.items() if name != "last_used_at"} for row in rows.values()
        ]
    import_jobs = import_job_model()
    if import_jobs is not None:
        snapshot[import_jobs._meta.label] = list(
            import_jobs.objects.filter(organisation=organisation).order_by("pk").values()
        )
    snapshot["alerts.AlertSubscription.fleets"] = list(
        AlertSubscription.fleets.through.objects.filter(alertsubscription__organisation=organisation)
        .order_by("pk")
        .values()
    )
    return snapshot


def assert_no_marker(body: str | bytes, key: str, where: str) -> None:
    """Nothing of the organisation ``key`` in ``body`` (a page, a JSON answer, a CSV file)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    marker = MARKERS[key]
    assert marker.lower() not in text.lower(), f"{where}: shows {marker} (organisation {key.upper()}'s data)"
