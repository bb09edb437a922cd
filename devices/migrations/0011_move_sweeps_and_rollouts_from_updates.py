"""BuildRollout, SweepRun and SweepRange move from updates to devices: the state only, the tables stay.

They are what the compliance engine (``devices/compliance/``) writes, not catalogue data (issue #13).
Their tables keep the names ``updates_buildrollout``, ``updates_sweeprun`` and ``updates_sweeprange``, with every
constraint and index name unchanged, so nothing is created, copied or dropped:
``updates.0007_move_sweeps_and_rollouts_to_devices`` removes them from updates' state once they are here, and
``devices.0012_content_types_follow_the_models`` relabels their content types.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("devices", "0010_check_in_partitions_schedule"),
        ("updates", "0006_sweep_runs"),
        ("fleet", "0004_role_groups"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='SweepRun',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('task_id', models.CharField(blank=True, help_text='The Celery task that started the sweep: a redelivered task resumes its run.', max_length=255, null=True, unique=True, verbose_name='task id')),
                        ('started_at', models.DateTimeField(verbose_name='started at')),
                        ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished at')),
                        ('status', models.CharField(choices=[('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='running', max_length=10, verbose_name='status')),
                        ('range_size', models.PositiveIntegerField(verbose_name='devices per range')),
                        ('ranges_planned', models.PositiveIntegerField(default=0, verbose_name='ranges planned')),
                        ('ranges_done', models.PositiveIntegerField(default=0, verbose_name='ranges done')),
                        ('ranges_failed', models.PositiveIntegerField(default=0, help_text='Ranges given up after their last retry.', verbose_name='ranges failed')),
                        ('range_retries', models.PositiveIntegerField(default=0, help_text='Failed attempts of a range, each retried alone.', verbose_name='range retries')),
                        ('devices_updated', models.PositiveBigIntegerField(default=0, verbose_name='devices updated')),
                        ('transitions', models.JSONField(blank=True, default=dict, help_text='By the status entered.', verbose_name='transitions')),
                    ],
                    options={
                        'verbose_name': 'sweep run',
                        'verbose_name_plural': 'sweep runs',
                        'db_table': 'updates_sweeprun',
                        'ordering': ['-started_at'],
                        'indexes': [models.Index(fields=['finished_at'], name='sweeprun_finished_idx'), models.Index(fields=['started_at'], name='sweeprun_started_idx')],
                    },
                ),
                migrations.CreateModel(
                    name='BuildRollout',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('days_since_release', models.PositiveSmallIntegerField(verbose_name='days since release')),
                        ('installed', models.PositiveIntegerField(verbose_name='devices that installed it')),
                        ('eligible', models.PositiveIntegerField(verbose_name='devices of the model')),
                        ('computed_at', models.DateTimeField(verbose_name='computed at')),
                        ('build', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='rollouts', to='updates.osbuild', verbose_name='build')),
                        ('organisation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='fleet.organisation', verbose_name='organisation')),
                    ],
                    options={
                        'verbose_name': 'build rollout',
                        'verbose_name_plural': 'build rollouts',
                        'db_table': 'updates_buildrollout',
                        'constraints': [models.UniqueConstraint(fields=('organisation', 'build', 'days_since_release'), name='rollout_one_point_per_day')],
                    },
                ),
                migrations.CreateModel(
                    name='SweepRange',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('lo', models.BigIntegerField(verbose_name='first device id')),
                        ('hi', models.BigIntegerField(verbose_name='last device id')),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('done', 'Done'), ('failed', 'Failed')], default='pending', max_length=10, verbose_name='status')),
                        ('attempts', models.PositiveSmallIntegerField(default=0, verbose_name='failed attempts')),
                        ('last_error', models.TextField(blank=True, verbose_name='last error')),
                        ('devices_updated', models.PositiveIntegerField(default=0, verbose_name='devices updated')),
                        ('transitions', models.JSONField(blank=True, default=dict, verbose_name='transitions')),
                        ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished at')),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='ranges', to='devices.sweeprun', verbose_name='sweep run')),
                    ],
                    options={
                        'verbose_name': 'sweep range',
                        'verbose_name_plural': 'sweep ranges',
                        'db_table': 'updates_sweeprange',
                        'ordering': ['run', 'lo'],
                        'constraints': [models.UniqueConstraint(fields=('run', 'lo'), name='sweeprange_unique_start')],
                    },
                ),
            ],
        ),
    ]
