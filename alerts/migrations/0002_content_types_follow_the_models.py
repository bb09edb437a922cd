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

MODELS = ("alertsubscription", "digestdelivery")


def _relabel(apps, schema_editor, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    LogEntry = apps.get_model("admin", "LogEntry")
    db = schema_editor.connection.alias
    for model in MODELS:
        old = ContentType.objects.using(db).filter(app_label=source, model=model).first()
        if old is None:
            continue
        new = ContentType.objects.using(db).filter(app_label=target, model=model).first()
        if new is None:
            old.app_label = target
            old.save(update_fields=["app_label"])
            continue
        for permission in Permission.objects.using(db).filter(content_type=old):
            twin = Permission.objects.using(db).filter(content_type=new, codename=permission.codename).first()
            if twin is None:
                permission.content_type = new
                permission.save(update_fields=["content_type"])
            else:
                twin.group_set.add(*permission.group_set.all())
                twin.user_set.add(*permission.user_set.all())
        LogEntry.objects.using(db).filter(content_type=old).update(content_type=new)
        old.delete()
    ContentType.objects.clear_cache()


def to_alerts(apps, schema_editor):
    _relabel(apps, schema_editor, "fleet", "alerts")


def to_fleet(apps, schema_editor):
    _relabel(apps, schema_editor, "alerts", "fleet")


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = [migrations.RunPython(to_alerts, to_fleet)]
