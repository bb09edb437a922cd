import devices.models.checkins
from django.db import migrations


class Migration(migrations.Migration):
    """CheckIn.raw becomes an AuditCopyField: the same jsonb column, read safely. State only: on SQLite an
    AlterField would copy the whole check-in table for a change that has no SQL."""

    dependencies = [
        ("devices", "0013_task_deliveries"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="checkin",
                    name="raw",
                    field=devices.models.checkins.AuditCopyField(
                        blank=True, help_text="The report as received, for audit.", null=True, verbose_name="raw payload"
                    ),
                ),
            ],
        ),
    ]
