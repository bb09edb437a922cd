"""The content types of BuildRollout, SweepRun and SweepRange follow them from app label "updates" to "devices".

The existing rows are relabelled in place, not replaced by new ones, so what points at them keeps pointing at
them: the permissions (``updates.view_sweeprun`` becomes ``devices.view_sweeprun`` for every group and user
holding it) and the admin's history of each row. Left under "updates", the rows would be stale, and
``remove_stale_contenttypes`` would delete them with their permissions.

Should both labels have a row (``post_migrate`` ran between ``devices.0011`` and this migration and created the
"devices" ones), the "devices" row is kept: each permission of the "updates" row moves to it, or hands its groups
and users to the same codename there; the admin history is repointed; the "updates" row is deleted.
Reversing does the same from "devices" back to "updates".
"""

from django.db import migrations

MOVED = ("buildrollout", "sweeprun", "sweeprange")


def _move_content_types(apps, schema_editor, *, from_label: str, to_label: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    LogEntry = apps.get_model("admin", "LogEntry")
    content_types = ContentType.objects.using(schema_editor.connection.alias)
    permissions = Permission.objects.using(schema_editor.connection.alias)
    for model in MOVED:
        source = content_types.filter(app_label=from_label, model=model).first()
        if source is None:
            continue  # a fresh database: post_migrate creates the row under its new label
        target = content_types.filter(app_label=to_label, model=model).first()
        if target is None:
            source.app_label = to_label
            source.save(update_fields=["app_label"])
            continue
        for permission in permissions.filter(content_type=source):
            same = permissions.filter(content_type=target, codename=permission.codename).first()
            if same is None:
                permission.content_type = target
                permission.save(update_fields=["content_type"])
                continue
            same.group_set.add(*permission.group_set.all())
            same.user_set.add(*permission.user_set.all())
        LogEntry.objects.using(schema_editor.connection.alias).filter(content_type=source).update(
            content_type=target
        )
        source.delete()
    ContentType.objects.clear_cache()


def to_devices(apps, schema_editor):
    _move_content_types(apps, schema_editor, from_label="updates", to_label="devices")


def to_updates(apps, schema_editor):
    _move_content_types(apps, schema_editor, from_label="devices", to_label="updates")


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0011_move_sweeps_and_rollouts_from_updates"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = [migrations.RunPython(to_devices, to_updates)]
