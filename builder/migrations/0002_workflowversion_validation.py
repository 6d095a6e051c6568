from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("builder", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="workflowversion",
            name="validation",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
