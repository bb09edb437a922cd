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

from common.contenttypes import relabel_content_types

MOVED = ("buildrollout", "sweeprun", "sweeprange")


def to_devices(apps, schema_editor):
    relabel_content_types(apps, schema_editor, models=MOVED, from_label="updates", to_label="devices")


def to_updates(apps, schema_editor):
    relabel_content_types(apps, schema_editor, models=MOVED, from_label="devices", to_label="updates")


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0011_move_sweeps_and_rollouts_from_updates"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = [migrations.RunPython(to_devices, to_updates)]
