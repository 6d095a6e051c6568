"""`manage.py ensure_databases`: create the PostgreSQL databases the settings name when they
do not exist yet, then migrate both (what `make cluster` does before starting processes)."""

from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from psycopg import sql
from psycopg.conninfo import make_conninfo


class Command(BaseCommand):
    help = "Create the PostgreSQL databases of DATABASE_URL / DATA_DATABASE_URL if missing, and migrate."

    def handle(self, *args: Any, **options: Any) -> None:
        for alias, db in settings.DATABASES.items():
            if db["ENGINE"] != "django.db.backends.postgresql":
                continue
            # The server's maintenance database, with the same credentials.
            conninfo = make_conninfo(
                dbname="postgres",
                user=db.get("USER") or None,
                host=db.get("HOST") or None,
                port=db.get("PORT") or None,
                password=db.get("PASSWORD") or None,
            )
            with psycopg.connect(conninfo, autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
                ).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
                    self.stdout.write(f"created database {db['NAME']} ({alias})")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("migrate", database="data", interactive=False, verbosity=0)
        self.stdout.write("databases ready")
