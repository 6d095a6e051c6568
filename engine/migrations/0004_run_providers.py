from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("engine", "0003_run_counters"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="providers",
            field=models.JSONField(default=dict),
        ),
    ]
