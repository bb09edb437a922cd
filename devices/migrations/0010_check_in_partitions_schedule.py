"""Schedules the job keeping the check-in history's monthly partitions ahead of the calendar daily at 02:45
UTC, before retention (03:30), in django-celery-beat's tables so operators can move it in the admin. On SQLite
the job finds no partitioned table and does nothing."""

from django.db import migrations

PARTITIONS_NAME = "Check-in partitions ahead"


def schedule_partitions(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="45", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=PARTITIONS_NAME,
        defaults={
            "task": "devices.ensure_check_in_partitions",
            "crontab": daily,
            "description": "Creates the check-in history's monthly partitions (PostgreSQL) for the next months, "
            "so reports never pile up in the default partition. Idempotent.",
        },
    )


def unschedule_partitions(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=PARTITIONS_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0009_partition_check_ins_by_month"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_partitions, unschedule_partitions)]
