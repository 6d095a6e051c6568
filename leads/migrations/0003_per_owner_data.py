"""Workflow data moves to one schema (PostgreSQL) or file (SQLite) per owner.

The shared `enriched_leads` table goes: dropped when empty, otherwise renamed to
`enriched_leads_unowned` (its rows belong to no known owner; an operator can copy them into an
owner's table). The former shared role loses every privilege it had in this database.
"""

import os

from django.db import migrations

LEGACY_ROLE = os.environ.get("KLYNTOS_DATA_ROLE", "klyntos_workflow")


def retire_shared_table(apps, schema_editor):
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if "enriched_leads" in connection.introspection.table_names(cursor):
            cursor.execute("SELECT count(*) FROM enriched_leads")
            if cursor.fetchone()[0]:
                cursor.execute(f"ALTER TABLE enriched_leads RENAME TO {quote('enriched_leads_unowned')}")
            else:
                cursor.execute("DROP TABLE enriched_leads")
        if connection.vendor != "postgresql":
            return
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [LEGACY_ROLE])
        if cursor.fetchone() is None:
            return
        role, database = quote(LEGACY_ROLE), quote(connection.settings_dict["NAME"])
        for statement in [
            f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {role}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {role}",
            f"REVOKE ALL ON SCHEMA public FROM {role}",
            f"REVOKE ALL ON DATABASE {database} FROM {role}",
        ]:
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("leads", "0002_workflow_role")]

    operations = [
        migrations.AlterModelOptions(
            name="enrichedlead",
            options={"managed": False, "ordering": ["-qualification_score", "lead_id"]},
        ),
        migrations.RunPython(retire_shared_table, migrations.RunPython.noop),
    ]
