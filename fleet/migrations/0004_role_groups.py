"""The two roles as Django groups, "Fleet manager" and "Fleet viewer", with the model permissions they imply.

FleetPatch's admin decides from a user's Membership role (which also says *which* organisation); these
groups carry the same rights as Django permissions, for anything that asks ``user.has_perm`` and for
operators used to groups. ``fleet.services.membership_sync_groups`` keeps a user's groups in line with
their memberships.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_GROUPS = {"Fleet manager": ("view", "add", "change", "delete"), "Fleet viewer": ("view",)}
APPS = ("devices", "fleet", "updates")


def create_role_groups(apps, schema_editor):
    # Permissions are normally created after all migrations; create them now so the groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, actions in ROLE_GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = Permission.objects.filter(
            content_type__app_label__in=APPS, codename__regex=rf"^({'|'.join(actions)})_"
        )
        group.permissions.add(*permissions)


def remove_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0003_digest_dispatcher_schedule"),
        ("devices", "0005_fewer_device_indexes"),
        ("updates", "0003_sweep_schedule"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
