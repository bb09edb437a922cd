"""The content types of the two moved models follow them from app label "fleet" to "alerts".

Relabelling the existing rows (rather than letting Django create new ones) keeps everything that points at
them: the permissions (and so the "Fleet manager" and "Fleet viewer" groups of ``fleet.0004_role_groups``,
and any user given one by hand) and the admin's history of each subscription. Left under "fleet", the old
rows would be stale: ``remove_stale_contenttypes`` would delete them, and their permissions with them.

If both rows exist (``post_migrate`` ran between the state move and this migration, creating the new
label's rows), the old row's permissions move to the new one or give their holders to its twin, its admin
history is repointed, and the old row goes. Reversible the same way, from "alerts" back to "fleet".
"""

from django.db import migrations

from common.contenttypes import relabel_content_types

MODELS = ("alertsubscription", "digestdelivery")


def to_alerts(apps, schema_editor):
    relabel_content_types(apps, schema_editor, models=MODELS, from_label="fleet", to_label="alerts")


def to_fleet(apps, schema_editor):
    relabel_content_types(apps, schema_editor, models=MODELS, from_label="alerts", to_label="fleet")


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = [migrations.RunPython(to_alerts, to_fleet)]
