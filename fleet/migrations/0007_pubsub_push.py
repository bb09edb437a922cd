from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0006_policy_observed_builds"),
    ]

    operations = [
        migrations.AddField(
            model_name="apiclient",
            name="push_id",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="Names the client's Pub/Sub push endpoint; empty while push is not enabled.",
                max_length=32,
                null=True,
                unique=True,
                verbose_name="push endpoint id",
            ),
        ),
        migrations.AddField(
            model_name="apiclient",
            name="push_secret_hash",
            field=models.CharField(blank=True, editable=False, max_length=64, verbose_name="push secret hash"),
        ),
        migrations.AddField(
            model_name="apiclient",
            name="push_service_account",
            field=models.EmailField(
                blank=True,
                help_text=(
                    "The service account whose OIDC token Pub/Sub sends (--push-auth-service-account); "
                    "empty: OIDC tokens are refused."
                ),
                max_length=254,
                verbose_name="push service account",
            ),
        ),
        migrations.AddField(
            model_name="apiclient",
            name="push_audience",
            field=models.CharField(
                blank=True,
                help_text="The OIDC token's audience (--push-auth-token-audience); empty: the push endpoint's URL.",
                max_length=500,
                verbose_name="push token audience",
            ),
        ),
    ]
