"""AlertSubscription and DigestDelivery moved from fleet to alerts: their rows, their permissions (and so the role
groups holding them) and their admin history survive the move, on a fresh database and on an upgraded one."""

from __future__ import annotations

import datetime as dt
import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps as global_apps
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from alerts.models import AlertSubscription, DigestDelivery
from tests.factories import UserFactory

MODELS = ("alertsubscription", "digestdelivery")
ACTIONS = ("view", "add", "change", "delete")
#: Main's last migration before the move: fleet owns the models, alerts is not migrated.
MAINS_LAST = ("fleet", "0004_role_groups")

relabelling = importlib.import_module("alerts.migrations.0002_content_types_follow_the_models")


def _alerts_codenames(group: Group) -> set[str]:
    return set(group.permissions.filter(content_type__app_label="alerts").values_list("codename", flat=True))


def test_on_a_fresh_database_the_role_groups_hold_the_alerts_permissions(db):
    manager, viewer = Group.objects.get(name="Fleet manager"), Group.objects.get(name="Fleet viewer")

    assert _alerts_codenames(manager) == {f"{action}_{model}" for action in ACTIONS for model in MODELS}
    assert _alerts_codenames(viewer) == {"view_alertsubscription", "view_digestdelivery"}
    assert not ContentType.objects.filter(app_label="fleet", model__in=MODELS).exists()
    user = UserFactory(username="in-the-manager-group")
    user.groups.add(manager)
    assert user.has_perm("alerts.view_alertsubscription") and user.has_perm("alerts.change_digestdelivery")


def test_when_both_labels_have_content_types_the_old_ones_are_merged_into_the_new(db):
    # As if post_migrate had created alerts' rows while fleet's were still there.
    new = ContentType.objects.get(app_label="alerts", model="alertsubscription")
    old = ContentType.objects.create(app_label="fleet", model="alertsubscription")
    twin = Permission.objects.create(content_type=old, codename="change_alertsubscription", name="Can change")
    only_old = Permission.objects.create(content_type=old, codename="export_alertsubscription", name="Can export")
    editors = Group.objects.create(name="Digest editors")
    editors.permissions.add(twin)
    user = UserFactory(username="given-by-hand")
    user.user_permissions.add(twin)
    entry = LogEntry.objects.create(
        user=user, content_type=old, object_id="1", object_repr="Morning digest", action_flag=ADDITION
    )

    relabelling.to_alerts(global_apps, SimpleNamespace(connection=connection))

    assert not ContentType.objects.filter(app_label="fleet", model="alertsubscription").exists()
    change = Permission.objects.get(content_type=new, codename="change_alertsubscription")
    assert list(editors.permissions.all()) == [change]
    assert list(user.user_permissions.all()) == [change]
    only_old.refresh_from_db()
    entry.refresh_from_db()
    assert (only_old.content_type_id, entry.content_type_id) == (new.pk, new.pk)


@pytest.mark.django_db(transaction=True)
def test_upgrading_a_database_keeps_the_rows_their_permissions_and_their_admin_history():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    # Back to before the role groups (a transactional test's flush removed them), then migrated as main did.
    executor.migrate([("fleet", "0003_digest_dispatcher_schedule"), ("alerts", None)])
    try:
        MigrationExecutor(connection).migrate([MAINS_LAST])
        # The database as main left it: fleet's models, fleet's content types.
        old_apps = MigrationExecutor(connection).loader.project_state([MAINS_LAST]).apps
        organisation = old_apps.get_model("fleet", "Organisation").objects.create(name="Upgraded", slug="upgraded")
        north = old_apps.get_model("fleet", "Fleet").objects.create(organisation=organisation, name="North", slug="n")
        subscription = old_apps.get_model("fleet", "AlertSubscription").objects.create(
            organisation=organisation, name="Morning digest", extra_recipients="ops@example.org"
        )
        subscription.fleets.add(north)
        old_apps.get_model("fleet", "DigestDelivery").objects.create(
            subscription=subscription, period=dt.datetime(2026, 12, 1, 7, tzinfo=dt.UTC), subject="Sent before"
        )
        ContentType.objects.clear_cache()
        content_type = ContentType.objects.get(app_label="fleet", model="alertsubscription")
        permissions = set(Permission.objects.filter(content_type=content_type).values_list("pk", flat=True))
        assert len(permissions) == 4
        carol = UserFactory(username="carol-before-the-move")
        carol.groups.add(Group.objects.get(name="Fleet manager"))
        victor = UserFactory(username="victor-before-the-move")
        victor.user_permissions.add(
            Permission.objects.get(content_type=content_type, codename="change_alertsubscription")
        )
        LogEntry.objects.create(
            user=carol, content_type=content_type, object_id=str(subscription.pk), object_repr="x", action_flag=ADDITION
        )
    finally:
        MigrationExecutor(connection).migrate(latest)
    ContentType.objects.clear_cache()

    moved = AlertSubscription.objects.get(pk=subscription.pk)
    assert (moved.name, moved.extra_addresses) == ("Morning digest", ["ops@example.org"])
    assert list(moved.fleets.values_list("name", flat=True)) == ["North"]
    assert list(DigestDelivery.objects.filter(subscription=moved).values_list("subject", flat=True)) == ["Sent before"]
    relabelled = ContentType.objects.get_for_model(AlertSubscription)
    assert (relabelled.pk, relabelled.app_label) == (content_type.pk, "alerts")
    assert set(Permission.objects.filter(content_type=relabelled).values_list("pk", flat=True)) == permissions
    assert not ContentType.objects.filter(app_label="fleet", model__in=MODELS).exists()
    users = get_user_model()._default_manager
    assert users.get(pk=carol.pk).has_perm("alerts.delete_alertsubscription")
    assert users.get(pk=victor.pk).has_perm("alerts.change_alertsubscription")
    assert LogEntry.objects.get(user=carol).content_type_id == relabelled.pk
