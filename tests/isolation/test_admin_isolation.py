"""Tenant isolation of the admin: every ModelAdmin's pages, custom views, autocompletes and actions.

The tables below say, for every model in ``admin.site._registry``, who may add, change and delete
its rows, which custom views and actions it has and what they need. The coverage tests compare them
with the URL resolver and the registry, so a new admin page, view or action fails with
"not covered: ..." until it has an expectation here.

Personas: ``manager_a`` and ``viewer_a`` (organisation A), ``manager_b`` (B), ``superuser``.
Another organisation's row is as absent as a missing one: the admin's "does not exist" redirect to
the index (or a 404), never a 403, and nothing of it on any page.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from fleet.scoping import CatalogueAdmin, OrganisationScopedAdmin
from fleet.selectors import organisation_ids_for_user
from tests.isolation.conftest import World, assert_no_marker, organisation_rows, other
from tests.isolation.routes import admin_routes

MANAGER, SUPERUSER, NOBODY = "manager", "superuser", "nobody"
#: The persona's organisation (None: the superuser, who belongs to none and sees all).
PERSONAS = {"manager_a": "a", "viewer_a": "a", "manager_b": "b", "superuser": None}
MEMBERS = ("manager_a", "viewer_a", "manager_b")


@dataclass(frozen=True)
class Expect:
    """Who may do what with one ModelAdmin's rows."""

    #: The world's row of each organisation (None: no tenant rows, e.g. the operators' models).
    row: str | None
    add: str
    change: str
    delete: str
    #: "tenant": rows of one organisation; "catalogue": shared, every member views; "operator": superusers only.
    kind: str = "tenant"


def tenant(row: str, add: str, change: str, delete: str) -> Expect:
    return Expect(row, add, change, delete)


OPERATOR = Expect(None, SUPERUSER, SUPERUSER, SUPERUSER, kind="operator")
READ_ONLY_RECORDS = ("nobody", "nobody", "superuser")

ADMIN = {
    "fleet.organisation": tenant("org", SUPERUSER, MANAGER, SUPERUSER),
    "fleet.fleet": tenant("fleet", MANAGER, MANAGER, MANAGER),
    "fleet.membership": tenant("membership", MANAGER, MANAGER, MANAGER),
    "fleet.compliancepolicy": tenant("policy", MANAGER, MANAGER, MANAGER),
    "fleet.apiclient": tenant("api_client", MANAGER, MANAGER, MANAGER),
    "alerts.alertsubscription": tenant("subscription", MANAGER, MANAGER, MANAGER),
    "alerts.digestdelivery": tenant("delivery", *READ_ONLY_RECORDS),
    "alerts.unsubscription": tenant("unsubscription", *READ_ONLY_RECORDS),
    "alerts.digestmessage": tenant("digest_message", *READ_ONLY_RECORDS),
    "devices.device": tenant("device", MANAGER, MANAGER, MANAGER),
    "devices.checkin": tenant("check_in", *READ_ONLY_RECORDS),
    "devices.statuschange": tenant("status_change", *READ_ONLY_RECORDS),
    "devices.devicesourceid": tenant("source_id", *READ_ONLY_RECORDS),
    "devices.batteryevent": tenant("battery_event", MANAGER, MANAGER, MANAGER),
    # Revoking keeps the record; deleting one is an operator's clean-up.
    "devices.waiver": tenant("waiver", MANAGER, MANAGER, SUPERUSER),
    "devices.compliancesnapshot": tenant("snapshot", *READ_ONLY_RECORDS),
    "devices.devicetally": tenant("tally", *READ_ONLY_RECORDS),
    "devices.importjob": tenant("import_job", *READ_ONLY_RECORDS),
    "devices.rejectedmessage": tenant("rejected_message", *READ_ONLY_RECORDS),
    "updates.osbuild": tenant("build", MANAGER, MANAGER, MANAGER),
    "updates.buildpin": tenant("pin", MANAGER, MANAGER, MANAGER),
    "devices.buildrollout": tenant("rollout", *READ_ONLY_RECORDS),
    # Recorded by the ingest; managers promote or revoke them (actions), the change page edits nothing.
    "devices.observedbuild": tenant("observed_build", NOBODY, MANAGER, SUPERUSER),
    "updates.manufacturer": Expect(None, SUPERUSER, SUPERUSER, SUPERUSER, kind="catalogue"),
    "updates.devicemodel": Expect(None, SUPERUSER, SUPERUSER, SUPERUSER, kind="catalogue"),
    "updates.modelalias": Expect(None, SUPERUSER, SUPERUSER, SUPERUSER, kind="catalogue"),
    "updates.manufactureralias": Expect(None, SUPERUSER, SUPERUSER, SUPERUSER, kind="catalogue"),
    # Global rows: a sweep covers every organisation at once.
    "devices.sweeprun": OPERATOR,
    "devices.sweeprange": OPERATOR,
    "devices.taskdelivery": OPERATOR,
    # Bookkeeping of redeliveries; the organisations' own record is the rejected messages.
    "devices.pubsubmessage": OPERATOR,
    "auth.user": OPERATOR,
    "auth.group": OPERATOR,
    "django_celery_beat.periodictask": OPERATOR,
    "django_celery_beat.clockedschedule": OPERATOR,
    "django_celery_beat.crontabschedule": OPERATOR,
    "django_celery_beat.solarschedule": OPERATOR,
    "django_celery_beat.intervalschedule": OPERATOR,
}
TENANT_MODELS = sorted(label for label, expect in ADMIN.items() if expect.kind == "tenant")

#: Views a ModelAdmin adds with get_urls: "object" views take a row's id, "export" views the changelist's filters.
CUSTOM_VIEWS = {
    "admin:alerts_alertsubscription_preview": ("alerts.alertsubscription", "object"),
    "admin:devices_device_timeline": ("devices.device", "object"),
    "admin:devices_device_export": ("devices.device", "export"),
    "admin:devices_device_export_xlsx": ("devices.device", "export"),
    "admin:devices_checkin_export": ("devices.checkin", "export"),
    "admin:devices_checkin_export_xlsx": ("devices.checkin", "export"),
    "admin:devices_statuschange_export": ("devices.statuschange", "export"),
    "admin:devices_statuschange_export_xlsx": ("devices.statuschange", "export"),
    # Spreadsheet imports: the upload form, and a job's page and result file ("import" views take a job's id).
    "admin:devices_device_import": ("devices.device", "upload"),
    "admin:devices_device_import_job": ("devices.device", "import"),
    "admin:devices_device_import_result": ("devices.device", "import"),
    # Operators' own: Django's password form of any account.
    "admin:auth_user_password_change": ("auth.user", "operator"),
}
SITE_VIEWS = {
    "admin:index",
    "admin:app_list",
    "admin:login",
    "admin:logout",
    "admin:password_change",
    "admin:password_change_done",
    "admin:autocomplete",
    "admin:jsi18n",
    "admin:view_on_site",
}
STANDARD_VIEWS = ("changelist", "add", "change", "delete", "history")

#: Every action, and the permission Django checks before offering it. Nobody may act on another
#: organisation's rows, and a viewer changes nothing, whatever they post.
ACTIONS = {
    ("fleet.organisation", "delete_selected"): "delete",
    ("fleet.fleet", "delete_selected"): "delete",
    ("fleet.membership", "delete_selected"): "delete",
    ("fleet.compliancepolicy", "delete_selected"): "delete",
    ("fleet.apiclient", "delete_selected"): "delete",
    ("fleet.apiclient", "revoke_selected"): "change",
    ("fleet.apiclient", "rotate_push_secret"): "change",
    ("fleet.apiclient", "revoke_push_secret"): "change",
    ("alerts.alertsubscription", "delete_selected"): "delete",
    ("alerts.alertsubscription", "send_test_digest"): "view",
    ("alerts.digestdelivery", "delete_selected"): "delete",
    ("alerts.unsubscription", "delete_selected"): "delete",
    ("alerts.digestmessage", "delete_selected"): "delete",
    ("devices.device", "export_csv"): "view",
    ("devices.device", "export_xlsx"): "view",
    ("devices.device", "grant_waiver"): "change",
    ("devices.device", "recompute_compliance"): "change",
    ("devices.device", "record_battery_replacement"): "change",
    ("devices.device", "retire"): "change",
    ("devices.batteryevent", "delete_selected"): "delete",
    ("devices.devicesourceid", "delete_selected"): "delete",
    ("devices.waiver", "delete_selected"): "delete",
    ("devices.waiver", "revoke_selected"): "change",
    ("devices.compliancesnapshot", "delete_selected"): "delete",
    ("devices.devicetally", "delete_selected"): "delete",
    ("devices.importjob", "delete_selected"): "delete",
    ("updates.osbuild", "delete_selected"): "delete",
    ("updates.osbuild", "revoke_selected"): "change",
    # Offered to viewers too: it only shows the consequences, and pins for organisations the user manages.
    ("updates.osbuild", "pin_selected"): "view",
    ("updates.buildpin", "delete_selected"): "delete",
    ("devices.buildrollout", "delete_selected"): "delete",
    ("devices.observedbuild", "delete_selected"): "delete",
    ("devices.observedbuild", "promote_selected"): "change",
    ("devices.observedbuild", "revoke_selected"): "change",
    ("updates.manufacturer", "delete_selected"): "delete",
    ("updates.devicemodel", "delete_selected"): "delete",
    ("updates.modelalias", "delete_selected"): "delete",
    ("updates.manufactureralias", "delete_selected"): "delete",
    ("devices.sweeprun", "delete_selected"): "delete",
    ("devices.sweeprange", "delete_selected"): "delete",
    ("devices.taskdelivery", "delete_selected"): "delete",
    ("auth.user", "delete_selected"): "delete",
    ("auth.group", "delete_selected"): "delete",
    ("django_celery_beat.periodictask", "delete_selected"): "delete",
    ("django_celery_beat.periodictask", "disable_tasks"): "change",
    ("django_celery_beat.periodictask", "enable_tasks"): "change",
    ("django_celery_beat.periodictask", "run_tasks"): "change",
    ("django_celery_beat.periodictask", "toggle_tasks"): "change",
    ("django_celery_beat.clockedschedule", "delete_selected"): "delete",
    ("django_celery_beat.crontabschedule", "delete_selected"): "delete",
    ("django_celery_beat.solarschedule", "delete_selected"): "delete",
    ("django_celery_beat.intervalschedule", "delete_selected"): "delete",
}


# --- Helpers -------------------------------------------------------------------------------------


def _model_admin(label: str) -> admin.ModelAdmin:
    return next(ma for model, ma in admin.site._registry.items() if model._meta.label_lower == label)


def _url(label: str, view: str, *args: Any) -> str:
    app_label, model_name = label.split(".")
    return reverse(f"admin:{app_label}_{model_name}_{view}", args=args)


def _login(world: World, persona: str) -> Client:
    client = Client()
    client.force_login(world.users[persona])
    return client


def _row(world: World, label: str, key: str) -> Any:
    """The organisation ``key``'s row of the model ``label`` (the sweep's records are found, not built)."""
    expect = ADMIN[label]
    data = world.org(key)
    if expect.row in data.rows:
        return data.rows[expect.row]
    model_admin = _model_admin(label)
    return model_admin.model._default_manager.filter(model_admin.scope_filter([data.org.pk])).order_by("pk").first()


def _may(persona: str, who: str) -> bool:
    if persona == "superuser":
        return who != NOBODY
    return who == MANAGER and persona.startswith("manager")


def _visible_organisations(world: World, persona: str) -> list[int]:
    return organisation_ids_for_user(world.users[persona])


def _text(response: Any) -> str:
    """A response's text, spreadsheets included (their cells, not the zip bytes)."""
    content = b"".join(response.streaming_content) if response.streaming else response.content
    if response.get("Content-Type", "").startswith("application/vnd.openxmlformats"):
        import openpyxl

        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
        return "\n".join(
            " ".join("" if cell is None else str(cell) for cell in row)
            for sheet in book.worksheets
            for row in sheet.iter_rows(values_only=True)
        )
    return content.decode(errors="replace")


def _is_absent(response: Any) -> bool:
    """The admin's answer for a row that does not exist: a 404, or its redirect to the index."""
    return response.status_code == 404 or (response.status_code == 302 and response.url == reverse("admin:index"))


# --- The tables cover the admin ------------------------------------------------------------------


def test_every_model_admin_has_an_expectation():
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert not registered - set(ADMIN), f"not covered: {sorted(registered - set(ADMIN))}"
    assert not set(ADMIN) - registered, f"no longer registered: {sorted(set(ADMIN) - registered)}"


def test_every_admin_url_has_an_expectation():
    standard = {f"admin:{label.replace('.', '_')}_{view}" for label in ADMIN for view in STANDARD_VIEWS}
    # Unnamed admin routes are Django's redirect of "<id>/" to "<id>/change/" and its catch-all.
    named = {route.name for route in admin_routes() if route.name not in ("", "admin:")}
    uncovered = named - standard - set(CUSTOM_VIEWS) - SITE_VIEWS
    assert not uncovered, f"not covered: {sorted(uncovered)}"
    assert not set(CUSTOM_VIEWS) - named, f"no longer served: {sorted(set(CUSTOM_VIEWS) - named)}"


def test_every_admin_action_has_an_expectation(world, rf):
    request = rf.get("/admin/")
    request.user = world.users["superuser"]
    offered = {
        (model._meta.label_lower, name)
        for model, model_admin in admin.site._registry.items()
        for name in model_admin.get_actions(request)
    }
    assert not offered - set(ACTIONS), f"not covered: {sorted(offered - set(ACTIONS))}"
    assert not set(ACTIONS) - offered, f"no longer offered: {sorted(set(ACTIONS) - offered)}"


def test_the_tables_agree_with_the_admins_classes(world):
    """The kinds in ADMIN are the admin classes' own (a tenant model under a catalogue admin is a mistake)."""
    for label, expect in ADMIN.items():
        model_admin = _model_admin(label)
        if expect.kind == "tenant":
            assert isinstance(model_admin, OrganisationScopedAdmin), label
            assert _row(world, label, "a") is not None and _row(world, label, "b") is not None, label
        elif expect.kind == "catalogue":
            assert isinstance(model_admin, CatalogueAdmin), label
        else:
            assert not isinstance(model_admin, OrganisationScopedAdmin | CatalogueAdmin), label


# --- Lists ---------------------------------------------------------------------------------------


# A superuser's pages of the operators' models and the catalogue: tests/fleet/test_admin_scoping.py renders them all.
CHANGELISTS = [
    (label, persona)
    for label in sorted(ADMIN)
    for persona in PERSONAS
    if persona != "superuser" or ADMIN[label].kind == "tenant"
]


@pytest.mark.parametrize(("label", "persona"), CHANGELISTS)
def test_a_changelist_lists_the_personas_organisations_rows_only(world, label, persona):
    expect = ADMIN[label]
    client = _login(world, persona)
    response = client.get(_url(label, "changelist"))
    if expect.kind == "operator" and persona != "superuser":
        assert response.status_code == 403, label
        return
    assert response.status_code == 200, label
    if expect.kind != "tenant":
        for key in ("a", "b"):
            if persona != "superuser" and PERSONAS[persona] != key:
                assert_no_marker(response.content, key, f"{label} changelist")
        return
    model_admin = _model_admin(label)
    listed = response.context["cl"].queryset
    own, foreign = PERSONAS[persona], None if persona == "superuser" else other(PERSONAS[persona])
    if foreign is None:
        assert {_row(world, label, "a").pk, _row(world, label, "b").pk} <= set(listed.values_list("pk", flat=True))
        return
    assert listed.filter(pk=_row(world, label, own).pk).exists(), f"{label}: own row missing"
    outside = listed.exclude(model_admin.scope_filter(_visible_organisations(world, persona)))
    assert not outside.exists(), f"{label}: lists rows of other organisations"
    assert_no_marker(response.content, foreign, f"{label} changelist")
    if model_admin.search_fields:
        # Searching for the other organisation's row by its own words finds nothing either.
        response = client.get(_url(label, "changelist"), {"q": str(_row(world, label, foreign))})
        assert response.status_code == 200
        # (The page repeats the words searched for: only what it lists matters.)
        assert not response.context["cl"].queryset.filter(pk=_row(world, label, foreign).pk).exists(), label


# --- One row's pages -----------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["manager_a", "manager_b"])
@pytest.mark.parametrize("label", TENANT_MODELS)
def test_the_other_organisations_row_is_as_absent_as_a_missing_one_and_cannot_be_changed(world, label, persona):
    client = _login(world, persona)
    foreign = other(PERSONAS[persona])
    row = _row(world, label, foreign)
    before = organisation_rows(world.org(foreign).org)
    for view in ("change", "history", "delete"):
        response = client.get(_url(label, view, row.pk))
        assert _is_absent(response), f"{label} {view}: {response.status_code}"
        assert_no_marker(response.content, foreign, f"{label} {view}")
    assert _is_absent(client.post(_url(label, "change", row.pk), {"name": "Mallory"})), label
    assert _is_absent(client.post(_url(label, "delete", row.pk), {"post": "yes"})), label
    assert organisation_rows(world.org(foreign).org) == before


@pytest.mark.parametrize("persona", ["manager_a", "viewer_a"])
@pytest.mark.parametrize("label", TENANT_MODELS)
def test_an_own_rows_pages_follow_the_personas_role(world, label, persona):
    expect = ADMIN[label]
    client = _login(world, persona)
    row = _row(world, label, "a")
    before = organisation_rows(world.a.org)
    for view in ("change", "history"):
        response = client.get(_url(label, view, row.pk))
        assert response.status_code == 200, f"{label} {view}"
        assert_no_marker(response.content, "b", f"{label} {view}")
    response = client.get(_url(label, "change", row.pk))
    assert response.context["has_change_permission"] is _may(persona, expect.change), label
    response = client.get(_url(label, "delete", row.pk))
    assert response.status_code == (200 if _may(persona, expect.delete) else 403), label
    response = client.get(_url(label, "add"))
    assert response.status_code == (200 if _may(persona, expect.add) else 403), label
    if response.status_code == 200:
        assert_no_marker(response.content, "b", f"{label} add form")
    if not _may(persona, expect.change):
        assert client.post(_url(label, "change", row.pk), {"name": "Mallory"}).status_code == 403, label
    if not _may(persona, expect.delete):
        assert client.post(_url(label, "delete", row.pk), {"post": "yes"}).status_code == 403, label
    if not _may(persona, expect.add):
        assert client.post(_url(label, "add"), {"name": "Mallory"}).status_code == 403, label
    assert organisation_rows(world.a.org) == before


@pytest.mark.parametrize("label", sorted(label for label, expect in ADMIN.items() if expect.kind != "tenant"))
def test_operators_models_and_the_catalogue_are_read_only_or_closed_to_members(world, label):
    expect = ADMIN[label]
    model = _model_admin(label).model
    row = model._default_manager.order_by("pk").first()
    for persona in ("manager_a", "viewer_a"):
        client = _login(world, persona)
        if expect.kind == "operator":
            assert client.get(_url(label, "add")).status_code == 403, label
            if row is not None:
                assert client.get(_url(label, "change", row.pk)).status_code in (302, 403), label
            continue
        assert client.get(_url(label, "change", row.pk)).status_code == 200, label
        assert client.get(_url(label, "add")).status_code == 403, label
        assert client.post(_url(label, "change", row.pk), {"name": "Mallory"}).status_code == 403, label
        assert client.post(_url(label, "delete", row.pk), {"post": "yes"}).status_code == 403, label


def test_a_public_build_is_visible_to_members_and_written_only_by_superusers(world):
    client = _login(world, "manager_a")
    build = world.public_build
    response = client.get(_url("updates.osbuild", "change", build.pk))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert client.post(_url("updates.osbuild", "change", build.pk), {"notes": "Mallory"}).status_code == 403
    assert client.post(_url("updates.osbuild", "delete", build.pk), {"post": "yes"}).status_code == 403


# --- Forms that point at the other organisation's rows -------------------------------------------


def _today() -> str:
    return timezone.now().date().isoformat()


FOREIGN_FORMS = [
    # (model, view on A's row or "add", data aimed at B, the field that must refuse it)
    (
        "devices.device",
        "change",
        lambda w: {
            "organisation": w.a.org.pk,
            "serial": w.a.device.serial,
            "fleet": w.b.fleet.pk,
            "channel": "stable",
            "enrolled_at_0": _today(),
            "enrolled_at_1": "10:00:00",
        },
        "fleet",
    ),
    (
        "devices.device",
        "change",
        lambda w: {
            "organisation": w.b.org.pk,
            "serial": w.a.device.serial,
            "channel": "stable",
            "enrolled_at_0": _today(),
            "enrolled_at_1": "10:00:00",
        },
        "organisation",
    ),
    (
        "devices.device",
        "add",
        lambda w: {
            "organisation": w.b.org.pk,
            "serial": "NEW-1",
            "channel": "stable",
            "enrolled_at_0": _today(),
            "enrolled_at_1": "10:00:00",
        },
        "organisation",
    ),
    ("fleet.fleet", "add", lambda w: {"organisation": w.b.org.pk, "name": "Sneaky", "slug": "sneaky"}, "organisation"),
    (
        "fleet.fleet",
        "change",
        lambda w: {"organisation": w.b.org.pk, "name": w.a.fleet.name, "slug": w.a.fleet.slug},
        "organisation",
    ),
    (
        "fleet.membership",
        "add",
        lambda w: {"organisation": w.b.org.pk, "user": w.users["manager_a"].pk, "role": "manager"},
        "organisation",
    ),
    (
        "fleet.membership",
        "add",
        lambda w: {"organisation": w.a.org.pk, "user": w.users["manager_b"].pk, "role": "viewer"},
        "user",
    ),
    ("fleet.compliancepolicy", "add", lambda w: {"organisation": w.a.org.pk, "fleet": w.b.fleet.pk}, "fleet"),
    (
        "fleet.apiclient",
        "add",
        lambda w: {"organisation": w.b.org.pk, "name": "Sneaky", "scopes": ["read"]},
        "organisation",
    ),
    (
        "alerts.alertsubscription",
        "add",
        lambda w: {"organisation": w.a.org.pk, "name": "Sneaky", "fleets": [w.b.fleet.pk]},
        "fleets",
    ),
    ("alerts.alertsubscription", "add", lambda w: {"organisation": w.b.org.pk, "name": "Sneaky"}, "organisation"),
    (
        "devices.batteryevent",
        "add",
        lambda w: {
            "device": w.b.device.pk,
            "kind": "replacement",
            "occurred_at_0": _today(),
            "occurred_at_1": "10:00:00",
        },
        "device",
    ),
    ("devices.waiver", "add", lambda w: {"organisation": w.a.org.pk, "device": w.b.device.pk, "reason": "x"}, "device"),
    ("devices.waiver", "add", lambda w: {"organisation": w.a.org.pk, "fleet": w.b.fleet.pk, "reason": "x"}, "fleet"),
    ("updates.buildpin", "add", lambda w: {"organisation": w.a.org.pk, "build": w.b.build.pk}, "build"),
    ("updates.buildpin", "add", lambda w: {"organisation": w.b.org.pk, "build": w.public_build.pk}, "organisation"),
    (
        "updates.osbuild",
        "add",
        lambda w: {
            "organisation": w.b.org.pk,
            "model": w.phone_model.pk,
            "build_number": "SNEAKY.1",
            "security_patch_level": "2024-01-05",
            "released_at_0": _today(),
            "released_at_1": "10:00:00",
            "channel": "stable",
            "confirm_publication": "on",
        },
        "organisation",
    ),
]


@pytest.mark.parametrize(
    ("label", "view", "data", "field"), FOREIGN_FORMS, ids=[f"{f[0]}-{f[1]}-{f[3]}" for f in FOREIGN_FORMS]
)
def test_a_form_pointing_at_the_other_organisations_rows_is_refused_on_that_field(world, label, view, data, field):
    client = _login(world, "manager_a")
    url = _url(label, "add") if view == "add" else _url(label, "change", _row(world, label, "a").pk)
    before_a, before_b = organisation_rows(world.a.org), organisation_rows(world.b.org)
    response = client.post(url, data(world))
    assert response.status_code == 200, f"{label} {view}: {response.status_code}"
    assert field in response.context["adminform"].form.errors, response.context["adminform"].form.errors
    assert organisation_rows(world.b.org) == before_b
    assert organisation_rows(world.a.org) == before_a


# --- Custom views, site pages, autocomplete ------------------------------------------------------


@pytest.mark.parametrize("persona", list(PERSONAS))
def test_custom_views_show_the_personas_rows_only(world, persona):
    client = _login(world, persona)
    own = PERSONAS[persona]
    for name, (label, kind) in CUSTOM_VIEWS.items():
        if kind == "operator":
            user_pk = world.users["superuser"].pk
            expected = 200 if persona == "superuser" else 403
            assert client.get(reverse(name, args=[user_pk])).status_code == expected, name
            continue
        if kind == "export":
            response = client.get(reverse(name))
            assert response.status_code == 200, name
            text = _text(response)
            if own is not None:
                assert_no_marker(text, other(own), name)
                assert world.org(own).device.serial in text, f"{name}: own rows missing"
            continue
        if kind == "upload":
            response = client.get(reverse(name, args=["devices"]))
            if own is None:
                assert response.status_code == 200, name  # a superuser imports into any organisation
            elif persona.startswith("manager"):
                assert response.status_code == 200, name
                assert_no_marker(response.content, other(own), name)
            else:
                assert response.status_code == 403, name  # a viewer imports nothing
            continue
        if kind == "import":
            # Imports are their managers' business: a job is found only by a manager of its organisation.
            for key in ("a", "b"):
                response = client.get(reverse(name, args=[world.org(key).import_job.pk]))
                if persona in (f"manager_{key}", "superuser"):
                    assert response.status_code == 200, f"{name} of {key}"
                    assert_no_marker(_text(response), other(key), name)
                else:
                    assert response.status_code == 404, f"{name} of {key}: {response.status_code}"
                    assert_no_marker(_text(response), key, name)
            continue
        for key in ("a", "b"):
            response = client.get(reverse(name, args=[_row(world, label, key).pk]))
            if own is None or own == key:
                assert response.status_code == 200, f"{name} of {key}"
                if own is not None:
                    assert_no_marker(_text(response), other(own), name)
            else:
                assert _is_absent(response), f"{name} of {key}: {response.status_code}"
                assert_no_marker(_text(response), key, name)


@pytest.mark.parametrize("persona", MEMBERS)
def test_site_pages_show_nothing_of_the_other_organisation(world, persona):
    client = _login(world, persona)
    foreign = other(PERSONAS[persona])
    pages = [
        reverse("admin:index"),
        # The dashboard's organisation picker, aimed at the other organisation by hand.
        f"{reverse('admin:index')}?organisation={world.org(foreign).org.pk}",
        reverse("admin:password_change"),
        reverse("admin:jsi18n"),
        *(reverse("admin:app_list", args=[app]) for app in ("fleet", "devices", "updates", "alerts")),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        assert_no_marker(response.content, foreign, page)
    assert PERSONAS[persona] and world.org(PERSONAS[persona]).marker in client.get(pages[0]).content.decode()
    for app in ("auth", "django_celery_beat"):
        assert client.get(reverse("admin:app_list", args=[app])).status_code == 404


@pytest.mark.parametrize("persona", ["manager_a", "manager_b"])
def test_view_on_site_of_the_other_organisations_rows_is_a_404(world, persona):
    client = _login(world, persona)
    foreign = other(PERSONAS[persona])
    for label in TENANT_MODELS:
        row = _row(world, label, foreign)
        content_type = ContentType.objects.get_for_model(row)
        response = client.get(reverse("admin:view_on_site", args=[content_type.pk, row.pk]))
        assert response.status_code == 404, f"{label}: {response.status_code}"
        assert_no_marker(response.content, foreign, label)


def _autocompletes() -> list[tuple[str, str]]:
    return sorted(
        (model._meta.label_lower, field)
        for model, model_admin in admin.site._registry.items()
        for field in model_admin.autocomplete_fields
    )


@pytest.mark.parametrize("persona", list(PERSONAS))
def test_autocomplete_offers_the_personas_rows_only(world, persona):
    client = _login(world, persona)
    own = PERSONAS[persona]
    assert _autocompletes(), "no autocomplete field found"
    for label, field in _autocompletes():
        app_label, model_name = label.split(".")
        for term in ("", "a", "b"):
            response = client.get(
                reverse("admin:autocomplete"),
                {"app_label": app_label, "model_name": model_name, "field_name": field, "term": term},
            )
            where = f"{label}.{field} ({term!r})"
            if persona == "viewer_a" and response.status_code == 403:
                continue  # a viewer writes no form: the admin may refuse them the choices
            assert response.status_code == 200, where
            if own is not None:
                assert_no_marker(response.content, other(own), where)


# --- Actions -------------------------------------------------------------------------------------


def _action_data(world: World, action: str, selected: list[int], *, foreign: str) -> dict[str, Any]:
    """Every field any action's intermediate page asks for, filled in and confirmed, aimed at ``foreign``."""
    return {
        "action": action,
        ACTION_CHECKBOX_NAME: selected,
        "index": 0,
        "post": "yes",
        "confirm": "yes",
        "apply": "1",
        "occurred_on": _today(),
        "expires_on": (timezone.now().date() + dt.timedelta(days=10)).isoformat(),
        "reason": "Mallory",
        "performed_by": "Mallory",
        "note": "Mallory",
        "organisation": world.org(foreign).org.pk,
    }


TENANT_ACTIONS = sorted(key for key in ACTIONS if ADMIN[key[0]].kind == "tenant")


@pytest.mark.parametrize(("label", "action"), TENANT_ACTIONS)
@pytest.mark.parametrize("persona", ["manager_a", "manager_b"])
def test_an_action_posted_by_hand_on_the_other_organisations_rows_changes_nothing_of_it(world, label, action, persona):
    """Selected by id, or "select all" across the list: the other organisation is untouched, no mail leaves."""
    client = _login(world, persona)
    own = PERSONAS[persona]
    foreign = other(own)
    before = organisation_rows(world.org(foreign).org)
    selected = [_row(world, label, foreign).pk]
    mail.outbox = []
    for data in (
        _action_data(world, action, selected, foreign=foreign),
        {**_action_data(world, action, selected, foreign=foreign), "select_across": "1"},
    ):
        response = client.post(_url(label, "changelist"), data)
        assert response.status_code in (200, 302, 403), f"{label} {action}: {response.status_code}"
        assert_no_marker(_text(response), foreign, f"{label} {action}")
    assert organisation_rows(world.org(foreign).org) == before, f"{label} {action} changed {foreign.upper()}'s rows"
    assert not [m for m in mail.outbox if world.org(foreign).marker in m.subject + m.body]


@pytest.mark.parametrize(("label", "action"), TENANT_ACTIONS)
def test_a_viewer_running_any_action_on_own_rows_changes_nothing(world, label, action):
    client = _login(world, "viewer_a")
    before = organisation_rows(world.a.org)
    data = _action_data(world, action, [_row(world, label, "a").pk], foreign="a")
    response = client.post(_url(label, "changelist"), data)
    assert response.status_code in (200, 302, 403), f"{label} {action}: {response.status_code}"
    assert organisation_rows(world.a.org) == before, f"{label} {action}: a viewer changed rows"


def test_a_manager_cannot_confirm_the_other_organisations_import_nor_upload_into_it(world):
    client = _login(world, "manager_a")
    before = organisation_rows(world.b.org)
    job = world.b.import_job
    assert client.post(reverse("admin:devices_device_import_job", args=[job.pk])).status_code == 404
    upload = SimpleUploadedFile("devices.csv", b"serial\nSNEAKY-1\n", content_type="text/csv")
    response = client.post(
        reverse("admin:devices_device_import", args=["devices"]), {"organisation": world.b.org.pk, "file": upload}
    )
    assert response.status_code == 400
    assert "organisation" in response.context["form"].errors
    assert organisation_rows(world.b.org) == before


def test_a_manager_cannot_pin_a_public_build_for_the_other_organisation(world):
    client = _login(world, "manager_a")
    before = organisation_rows(world.b.org)
    data = _action_data(world, "pin_selected", [world.public_build.pk], foreign="b")
    response = client.post(_url("updates.osbuild", "changelist"), data)
    assert response.status_code == 200
    assert organisation_rows(world.b.org) == before


@pytest.mark.parametrize(("label", "action"), sorted(key for key in ACTIONS if ADMIN[key[0]].kind != "tenant"))
def test_operators_and_catalogue_actions_are_refused_to_members(world, label, action):
    model = _model_admin(label).model
    row = model._default_manager.order_by("pk").first()
    count = model._default_manager.count()
    client = _login(world, "manager_a")
    data = _action_data(world, action, [row.pk] if row else [], foreign="b")
    response = client.post(_url(label, "changelist"), data)
    assert response.status_code in (200, 302, 403)
    assert model._default_manager.count() == count


@pytest.mark.parametrize(
    "params",
    [
        lambda w: {"organisation__id__exact": w.b.org.pk},
        lambda w: {"fleet__id__exact": w.b.fleet.pk},
        lambda w: {"q": w.b.device.serial},
        lambda w: {"q": w.b.device.imei},
    ],
    ids=["organisation", "fleet", "serial", "imei"],
)
def test_a_device_list_or_export_filtered_by_hand_on_the_other_organisation_shows_none_of_it(world, params):
    client = _login(world, "manager_a")
    response = client.get(_url("devices.device", "changelist"), params(world))
    assert response.status_code == 200
    # (A filter with a single choice, the user's one organisation, is not applied: still only A's rows.)
    assert not response.context["cl"].queryset.exclude(organisation=world.a.org).exists()
    assert_no_marker(response.content.replace(str(params(world).get("q", "")).encode(), b""), "b", "device list")
    response = client.get(reverse("admin:devices_device_export"), params(world))
    assert response.status_code == 200
    text = _text(response)
    assert world.b.device.serial not in text and world.b.marker not in text
