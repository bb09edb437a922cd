"""AlertSubscription and DigestDelivery move from fleet to alerts: the state only, the tables stay.

Their tables keep the names ``fleet_alertsubscription``, ``fleet_digestdelivery`` (and the many-to-many
``fleet_alertsubscription_fleets``), with every constraint and index name unchanged, so nothing is created,
copied or dropped: ``fleet.0005_move_digests_to_alerts`` removes them from fleet's state once they are here.
"""

import datetime

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("fleet", "0004_role_groups"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='AlertSubscription',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=200, verbose_name='name')),
                        ('is_active', models.BooleanField(default=True, verbose_name='active')),
                        ('send_to_managers', models.BooleanField(default=True, verbose_name='send to the managers')),
                        ('send_to_viewers', models.BooleanField(default=False, verbose_name='send to the viewers')),
                        ('extra_recipients', models.TextField(blank=True, help_text='One email address per line, for people without an account.', verbose_name='other addresses')),
                        ('unsubscribed', models.JSONField(blank=True, default=list, help_text='Members who followed the unsubscribe link; remove an address to send to it again.', verbose_name='unsubscribed addresses')),
                        ('frequency', models.CharField(choices=[('daily', 'Daily'), ('weekly', 'Weekly'), ('cron', 'Cron expression')], default='daily', max_length=10, verbose_name='frequency')),
                        ('weekday', models.PositiveSmallIntegerField(choices=[(0, 'Monday'), (1, 'Tuesday'), (2, 'Wednesday'), (3, 'Thursday'), (4, 'Friday'), (5, 'Saturday'), (6, 'Sunday')], default=0, help_text='For weekly digests.', verbose_name='day of the week')),
                        ('cron', models.CharField(blank=True, help_text='For cron digests: minute hour day-of-month month day-of-week, in the time zone below.', max_length=100, verbose_name='cron expression')),
                        ('send_at', models.TimeField(default=datetime.time(8, 0), verbose_name='local send time')),
                        ('time_zone', models.CharField(default='Europe/Paris', help_text='An IANA name such as Europe/Paris.', max_length=64, verbose_name='time zone')),
                        ('language', models.CharField(choices=[('en', 'English'), ('fr', 'French')], default='en', max_length=10, verbose_name='language')),
                        ('report_behind', models.BooleanField(default=True, verbose_name='newly behind')),
                        ('report_critical', models.BooleanField(default=True, verbose_name='newly critical')),
                        ('report_unsupported', models.BooleanField(default=True, verbose_name='newly unsupported')),
                        ('report_silent', models.BooleanField(default=True, verbose_name='newly silent')),
                        ('report_battery', models.BooleanField(default=True, verbose_name='batteries due or to replace now')),
                        ('report_end_of_support', models.BooleanField(default=True, verbose_name='models reaching end of support')),
                        ('report_waivers', models.BooleanField(default=True, verbose_name='waivers expiring')),
                        ('send_when_empty', models.BooleanField(default=False, help_text='Otherwise a period without news sends nothing.', verbose_name='send when nothing is new')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name='created at')),
                        ('last_sent_period', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='last period sent')),
                        ('fleets', models.ManyToManyField(blank=True, help_text='Empty: every device of the organisation.', related_name='alert_subscriptions', to='fleet.fleet', verbose_name='fleets')),
                        ('organisation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alert_subscriptions', to='fleet.organisation', verbose_name='organisation')),
                    ],
                    options={
                        'verbose_name': 'alert subscription',
                        'verbose_name_plural': 'alert subscriptions',
                        'db_table': 'fleet_alertsubscription',
                        'ordering': ['organisation__name', 'name'],
                    },
                ),
                migrations.CreateModel(
                    name='DigestDelivery',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('period', models.DateTimeField(help_text='The scheduled send moment this digest stands for.', verbose_name='period')),
                        ('status', models.CharField(choices=[('claimed', 'Claimed, waiting for a worker'), ('sending', 'Being sent'), ('retrying', 'Send failed, will retry'), ('sent', 'Sent'), ('failed', 'Failed'), ('skipped_empty', 'Skipped: nothing new')], default='claimed', max_length=20, verbose_name='status')),
                        ('attempts', models.PositiveSmallIntegerField(default=0, verbose_name='attempts')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name='created at')),
                        ('claimed_at', models.DateTimeField(blank=True, null=True, verbose_name='claimed by a worker at')),
                        ('sent_at', models.DateTimeField(blank=True, null=True, verbose_name='sent at')),
                        ('window_start', models.DateTimeField(blank=True, null=True, verbose_name='changes after')),
                        ('window_end', models.DateTimeField(blank=True, null=True, verbose_name='changes until')),
                        ('recipients', models.JSONField(blank=True, default=list, verbose_name='recipients')),
                        ('subject', models.CharField(blank=True, max_length=255, verbose_name='subject')),
                        ('error', models.TextField(blank=True, verbose_name='error')),
                        ('counts', models.JSONField(blank=True, default=dict, help_text='Devices by status when built; the next digest compares.', verbose_name='counts')),
                        ('subscription', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='alerts.alertsubscription', verbose_name='subscription')),
                    ],
                    options={
                        'verbose_name': 'digest delivery',
                        'verbose_name_plural': 'digest deliveries',
                        'db_table': 'fleet_digestdelivery',
                        'ordering': ['-period'],
                    },
                ),
                migrations.AddConstraint(
                    model_name='alertsubscription',
                    constraint=models.UniqueConstraint(fields=('organisation', 'name'), name='alertsubscription_unique_name', violation_error_message='This organisation already has an alert subscription with this name.'),
                ),
                migrations.AddIndex(
                    model_name='digestdelivery',
                    index=models.Index(fields=['status', 'created_at'], name='digestdelivery_status_idx'),
                ),
                migrations.AddConstraint(
                    model_name='digestdelivery',
                    constraint=models.UniqueConstraint(fields=('subscription', 'period'), name='digestdelivery_once_per_period', violation_error_message='This period of this subscription already has a delivery.'),
                ),
            ],
        ),
    ]
