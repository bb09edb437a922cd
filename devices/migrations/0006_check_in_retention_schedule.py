"""Schedules the check-in retention job daily at 03:30 UTC (a quiet hour for most fleets), in django-celery-beat's
tables so operators can move or disable it in the admin (Periodic tasks) without a deploy."""

from django.db import migrations

RETENTION_NAME = "Check-in retention"


def schedule_retention(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=RETENTION_NAME,
        defaults={
            "task": "devices.prune_check_ins",
            "crontab": nightly,
            "description": "Deletes check-ins older than CHECKIN_RETENTION_DAYS in batches, keeping each device's "
            "build transitions. Status history is never deleted.",
        },
    )


def unschedule_retention(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=RETENTION_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0005_fewer_device_indexes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_retention, unschedule_retention)]
