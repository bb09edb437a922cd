"""Schedules the compliance sweep every 15 minutes, in django-celery-beat's tables so managers can change
it in the admin (Periodic tasks) without a deploy. Editing or disabling it there is kept across restarts."""

from django.db import migrations

SWEEP_NAME = "Compliance sweep"


def schedule_sweep(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_15_minutes, _ = IntervalSchedule.objects.get_or_create(every=15, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=SWEEP_NAME,
        defaults={
            "task": "updates.sweep_compliance",
            "interval": every_15_minutes,
            "description": "Recomputes every device whose compliance can change with time (grace, patch age, "
            "silence, end of support, waiver expiry).",
        },
    )


def unschedule_sweep(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SWEEP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("updates", "0002_pins_and_waivers"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_sweep, unschedule_sweep)]
