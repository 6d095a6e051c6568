"""A provider breaker's row keeps when its outage began (`outage_since`, epoch seconds), the
earliest any worker wrote while it stays open: every worker gives up `give_up_after` from
it (engine/breaker_sharing.py). Rows written before have none: their workers keep their own
clocks until the breaker next opens."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("engine", "0014_rows_record_waited_seconds"),
    ]

    operations = [
        migrations.AddField(
            model_name="providerbreaker",
            name="outage_since",
            field=models.FloatField(blank=True, null=True),
        ),
    ]
