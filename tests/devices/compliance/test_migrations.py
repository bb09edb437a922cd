"""BuildRollout, SweepRun and SweepRange moved from updates to devices: same tables, same constraint and index
names, their rows kept, and their content types (so their permissions and admin history) relabelled, on a fresh
database and on one upgraded from before the move, and back again when the move is reversed."""

from __future__ import annotations

import datetime as dt
import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps as global_apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from devices.models import BuildRollout, SweepRange, SweepRun
from tests.factories import UserFactory

MOVED = ("buildrollout", "sweeprun", "sweeprange")
#: Each table, as updates created it, and the constraint and index names it must still have.
TABLES = {
    "updates_buildrollout": {"rollout_one_point_per_day"},
    "updates_sweeprun": {"sweeprun_finished_idx", "sweeprun_started_idx"},
    "updates_sweeprange": {"sweeprange_unique_start"},
}
#: Main's last migrations before the move: updates owns the three models.
BEFORE_THE_MOVE = [("devices", "0010_check_in_partitions_schedule"), ("updates", "0006_sweep_runs")]

relabelling = importlib.import_module("devices.migrations.0012_content_types_follow_the_models")


def _content_type_ids(app_label: str) -> dict[str, int]:
    rows = ContentType.objects.filter(app_label=app_label, model__in=MOVED).values_list("model", "pk")
    return dict(rows)


def test_the_models_keep_the_catalogues_tables_and_their_constraint_names(db):
    assert {model._meta.db_table for model in (BuildRollout, SweepRun, SweepRange)} == set(TABLES)
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        assert set(TABLES) <= tables
        assert not {f"devices_{model}" for model in MOVED} & tables
        for table, names in TABLES.items():
            assert names <= set(connection.introspection.get_constraints(cursor, table)), table


def test_on_a_fresh_database_the_content_types_are_the_devices_ones(db):
    assert set(_content_type_ids("devices")) == set(MOVED)
    assert _content_type_ids("updates") == {}
    user = UserFactory(username="given-the-sweeps")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="devices", codename="view_sweeprun"))
    assert get_user_model()._default_manager.get(pk=user.pk).has_perm("devices.view_sweeprun")


def test_when_both_labels_have_content_types_the_old_ones_are_merged_into_the_new(db):
    # As if post_migrate had created devices' rows while updates' were still there.
    new = ContentType.objects.get(app_label="devices", model="sweeprun")
    old = ContentType.objects.create(app_label="updates", model="sweeprun")
    twin = Permission.objects.create(content_type=old, codename="view_sweeprun", name="Can view sweep run")
    only_old = Permission.objects.create(content_type=old, codename="rerun_sweeprun", name="Can rerun sweep run")
    operators = Group.objects.create(name="Sweep watchers")
    operators.permissions.add(twin)
    user = UserFactory(username="given-by-hand")
    user.user_permissions.add(twin)
    entry = LogEntry.objects.create(
        user=user, content_type=old, object_id="1", object_repr="A sweep", action_flag=CHANGE
    )

    relabelling.to_devices(global_apps, SimpleNamespace(connection=connection))

    assert not ContentType.objects.filter(app_label="updates", model="sweeprun").exists()
    view = Permission.objects.get(content_type=new, codename="view_sweeprun")
    assert list(operators.permissions.all()) == [view]
    assert list(user.user_permissions.all()) == [view]
    only_old.refresh_from_db()
    entry.refresh_from_db()
    assert (only_old.content_type_id, entry.content_type_id) == (new.pk, new.pk)


@pytest.mark.django_db(transaction=True)
def test_upgrading_a_database_keeps_the_rows_their_permissions_and_their_admin_history():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    before = _content_type_ids("devices")
    try:
        executor.migrate(BEFORE_THE_MOVE)
        ContentType.objects.clear_cache()
        # Reversing the move put the content types back under "updates", the same rows.
        assert (_content_type_ids("updates"), _content_type_ids("devices")) == (before, {})

        # The database as main left it: updates' models, updates' content types.
        old_apps = MigrationExecutor(connection).loader.project_state(BEFORE_THE_MOVE).apps
        organisation = old_apps.get_model("fleet", "Organisation").objects.create(name="Upgraded", slug="upgraded")
        maker = old_apps.get_model("updates", "Manufacturer").objects.create(name="Crosscall", slug="crosscall")
        model = old_apps.get_model("updates", "DeviceModel").objects.create(
            manufacturer=maker, name="Core-Z5", slug="core-z5"
        )
        build = old_apps.get_model("updates", "OSBuild").objects.create(
            model=model,
            build_number="CZ5-2026-11",
            security_patch_level=dt.date(2026, 11, 1),
            released_at=dt.datetime(2026, 11, 10, tzinfo=dt.UTC),
        )
        old_apps.get_model("updates", "BuildRollout").objects.create(
            organisation=organisation,
            build=build,
            days_since_release=7,
            installed=40,
            eligible=50,
            computed_at=dt.datetime(2026, 11, 17, 2, tzinfo=dt.UTC),
        )
        run = old_apps.get_model("updates", "SweepRun").objects.create(
            task_id="sweep-before-the-move",
            started_at=dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC),
            finished_at=dt.datetime(2026, 11, 30, 12, 1, tzinfo=dt.UTC),
            status="succeeded",
            range_size=100,
            ranges_planned=1,
            ranges_done=1,
            devices_updated=3,
            transitions={"behind": 3},
        )
        old_apps.get_model("updates", "SweepRange").objects.create(
            run=run, lo=1, hi=100, status="done", devices_updated=3, transitions={"behind": 3}
        )
        sweeps = ContentType.objects.get(app_label="updates", model="sweeprun")
        rollouts = ContentType.objects.get(app_label="updates", model="buildrollout")
        permissions = set(Permission.objects.filter(content_type__in=[sweeps, rollouts]).values_list("pk", flat=True))
        assert len(permissions) == 8
        watchers = Group.objects.create(name="Rollout watchers")
        watchers.permissions.add(Permission.objects.get(content_type=rollouts, codename="view_buildrollout"))
        olga = UserFactory(username="olga-before-the-move")
        olga.groups.add(watchers)
        olga.user_permissions.add(Permission.objects.get(content_type=sweeps, codename="view_sweeprun"))
        LogEntry.objects.create(
            user=olga, content_type=sweeps, object_id=str(run.pk), object_repr="x", action_flag=CHANGE
        )
    finally:
        MigrationExecutor(connection).migrate(latest)
    ContentType.objects.clear_cache()

    moved = SweepRun.objects.get(pk=run.pk)
    assert (moved.task_id, moved.status, moved.transitions) == ("sweep-before-the-move", "succeeded", {"behind": 3})
    assert list(moved.ranges.values_list("lo", "hi", "status")) == [(1, 100, "done")]
    assert list(BuildRollout.objects.values_list("build__build_number", "days_since_release", "installed")) == [
        ("CZ5-2026-11", 7, 40)
    ]
    assert _content_type_ids("devices") == before
    assert _content_type_ids("updates") == {}
    relabelled = ContentType.objects.get_for_model(SweepRun)
    assert (relabelled.pk, relabelled.app_label) == (sweeps.pk, "devices")
    assert (
        set(
            Permission.objects.filter(
                content_type__in=[relabelled, ContentType.objects.get_for_model(BuildRollout)]
            ).values_list("pk", flat=True)
        )
        == permissions
    )
    olga = get_user_model()._default_manager.get(pk=olga.pk)
    assert olga.has_perm("devices.view_sweeprun") and olga.has_perm("devices.view_buildrollout")
    assert LogEntry.objects.get(user=olga).content_type_id == relabelled.pk
