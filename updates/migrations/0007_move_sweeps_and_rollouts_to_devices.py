"""BuildRollout, SweepRun and SweepRange now belong to devices (``devices.0011_move_sweeps_and_rollouts_from_updates``):
the catalogue forgets them.

State only: the tables ``updates_buildrollout``, ``updates_sweeprun`` and ``updates_sweeprange`` stay where they are,
with their rows, now as the devices models' tables. The beat schedules of ``0003_sweep_schedule`` and
``0005_rollout_schedule`` name Celery tasks, not these models, and are unchanged.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("updates", "0006_sweep_runs"),
        ("devices", "0011_move_sweeps_and_rollouts_from_updates"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="SweepRange"),
                migrations.DeleteModel(name="SweepRun"),
                migrations.DeleteModel(name="BuildRollout"),
            ],
        ),
    ]
