"""AlertSubscription and DigestDelivery now belong to alerts (``alerts.0001_initial``): fleet forgets them.

State only: the tables ``fleet_alertsubscription``, ``fleet_digestdelivery`` and
``fleet_alertsubscription_fleets`` stay where they are, with their rows, now as the alerts models' tables.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0004_role_groups"),
        ("alerts", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="DigestDelivery"),
                migrations.DeleteModel(name="AlertSubscription"),
            ],
        ),
    ]
