"""One message per recipient: DigestMessage, claimed per (subscription, period, recipient); every unsubscribe recorded
(Unsubscription); a period sent to some recipients only is "partly_sent". Rows already there are untouched: a delivery
without messages gets them on its next attempt."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('alerts', '0002_content_types_follow_the_models'),
    ]

    operations = [
        migrations.AlterField(
            model_name='digestdelivery',
            name='status',
            field=models.CharField(choices=[('claimed', 'Claimed, waiting for a worker'), ('sending', 'Being sent'), ('retrying', 'Send failed, will retry'), ('sent', 'Sent'), ('partly_sent', 'Sent to some recipients only'), ('failed', 'Failed'), ('skipped_empty', 'Skipped: nothing new')], default='claimed', max_length=20, verbose_name='status'),
        ),
        migrations.CreateModel(
            name='DigestMessage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('address', models.EmailField(max_length=254, verbose_name='address')),
                ('status', models.CharField(choices=[('pending', 'Waiting to be sent'), ('sending', 'Being sent'), ('retrying', 'Refused, will retry'), ('sent', 'Sent'), ('failed', 'Failed'), ('unsubscribed', 'Not sent: unsubscribed meanwhile')], default='pending', max_length=20, verbose_name='status')),
                ('attempts', models.PositiveSmallIntegerField(default=0, verbose_name='attempts')),
                ('claimed_at', models.DateTimeField(blank=True, null=True, verbose_name='claimed by a worker at')),
                ('sent_at', models.DateTimeField(blank=True, null=True, verbose_name='sent at')),
                ('error', models.TextField(blank=True, verbose_name='error')),
                ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='alerts.digestdelivery', verbose_name='delivery')),
            ],
            options={
                'verbose_name': 'digest message',
                'verbose_name_plural': 'digest messages',
                'ordering': ['delivery', 'address'],
                'constraints': [models.UniqueConstraint(fields=('delivery', 'address'), name='digestmessage_once_per_recipient', violation_error_message='This recipient already has a message for this period.')],
            },
        ),
        migrations.CreateModel(
            name='Unsubscription',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('address', models.EmailField(max_length=254, verbose_name='address')),
                ('at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='at')),
                ('via', models.CharField(choices=[('one_click', 'One-click (mail client)'), ('page', 'Unsubscribe page'), ('admin', 'Admin')], max_length=20, verbose_name='via')),
                ('link_signed_at', models.DateTimeField(blank=True, help_text='When the link that was followed was made.', null=True, verbose_name='link signed at')),
                ('client_address', models.GenericIPAddressField(blank=True, null=True, verbose_name='client address')),
                ('user_agent', models.CharField(blank=True, max_length=255, verbose_name='user agent')),
                ('subscription', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='unsubscriptions', to='alerts.alertsubscription', verbose_name='subscription')),
            ],
            options={
                'verbose_name': 'unsubscription',
                'verbose_name_plural': 'unsubscriptions',
                'ordering': ['-at'],
                'indexes': [models.Index(fields=['subscription', '-at'], name='unsubscription_recent_idx')],
            },
        ),
    ]
