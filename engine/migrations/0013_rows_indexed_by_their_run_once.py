"""Item and step rows lose the index of their run alone: `unique_item_per_run`,
`item_page_order`, `item_by_status` and `unique_step_per_item` all start with the run, so it
answered nothing they do not, and every row written paid an entry in it.

Only the indexes go: the foreign keys stay as they are (Django's own AlterField would drop
and re-add them, checking every row again under a lock). On SQLite there is none to drop.
"""

import django.db.models.deletion
from django.db import migrations, models

# (model, its related name on Run, the index of its run alone that goes)
ROWS = [
    ("itemrun", "items", "engine_itemrun_run_id_3ef65987"),
    ("steprun", "steps", "engine_steprun_run_id_e528d99d"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("engine", "0012_provider_limits_and_grants"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{index}"',
                    reverse_sql=(
                        f'CREATE INDEX IF NOT EXISTS "{index}" ON "engine_{model}" ("run_id")'
                    ),
                )
                for model, _, index in ROWS
            ],
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name=related_name,
                        to="engine.run",
                    ),
                )
                for model, related_name, _ in ROWS
            ],
        ),
    ]
