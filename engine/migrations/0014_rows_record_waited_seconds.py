"""Item and step rows record the seconds their steps waited for a provider (`waited`), which
the run's sequential time leaves out (engine/run_costs.py). Rows stored before have 0: their
waits still count as work, as they did."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("engine", "0013_rows_indexed_by_their_run_once"),
    ]

    operations = [
        migrations.AddField(
            model_name="itemrun",
            name="waited",
            field=models.FloatField(default=0.0),
        ),
        migrations.AddField(
            model_name="steprun",
            name="waited",
            field=models.FloatField(default=0.0),
        ),
    ]
