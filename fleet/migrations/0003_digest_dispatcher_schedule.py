"""Schedules the digest dispatcher at the top of every hour, in django-celery-beat's tables so operators can change
it in the admin (Periodic tasks) without a deploy. On the hour, so a digest due at 08:00 local leaves at 08:00."""

from django.db import migrations

DISPATCHER_NAME = "Email digest dispatcher"


def schedule_dispatcher(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    hourly, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=DISPATCHER_NAME,
        defaults={
            "task": "fleet.dispatch_digests",
            "crontab": hourly,
            "description": "Finds the alert subscriptions that are due and sends each period's digest once.",
        },
    )


def unschedule_dispatcher(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=DISPATCHER_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0002_alert_subscriptions"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_dispatcher, unschedule_dispatcher)]
