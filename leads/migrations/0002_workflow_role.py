"""On PostgreSQL, the role database blocks connect as: it can read and write the workflow
tables of this database and nothing else (no superuser, no other databases, no DDL)."""

import logging

from django.conf import settings
from django.db import migrations

log = logging.getLogger(__name__)


def grant_workflow_role(apps, schema_editor):
    connection = schema_editor.connection
    role = settings.KLYNTOS_DATA_ROLE
    if connection.vendor != "postgresql" or not role:
        return
    from psycopg import sql

    name = sql.Identifier(role)
    statements = [
        sql.SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) THEN "
            "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT; END IF; END $$"
        ).format(sql.Literal(role), name),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(connection.settings_dict["NAME"]), name),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(name),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(name),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(name),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {}").format(name),
    ]
    if settings.KLYNTOS_DATA_ROLE_PASSWORD:
        statements.append(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(settings.KLYNTOS_DATA_ROLE_PASSWORD))
        )
    raw = connection.connection  # psycopg: composed SQL needs the driver's own connection
    with raw.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("leads", "0001_initial")]

    operations = [migrations.RunPython(grant_workflow_role, migrations.RunPython.noop)]
