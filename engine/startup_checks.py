"""What a production process checks before it serves or takes jobs: both databases answer
and every migration is applied. A worker started before the web side migrated would fail on
every statement (`column … does not exist`) and a database it cannot reach would print a
traceback twice a second for ever; both refuse to start instead, saying what to do."""

from __future__ import annotations

from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

DATABASES = ("default", "data")


class NotReady(Exception):  # noqa: N818 -- a verdict, shown as it is
    """The process must not start: the message says why and what to run."""


def unapplied_migrations() -> list[str]:
    """`alias: app.migration` for each migration not applied, on both databases."""
    pending: list[str] = []
    for alias in DATABASES:
        executor = MigrationExecutor(connections[alias])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        pending += [f"{alias}: {migration.app_label}.{migration.name}" for migration, _ in plan]
    return pending


def ensure_ready() -> None:
    """Raise NotReady unless both databases answer and have every migration applied."""
    try:
        pending = unapplied_migrations()
    except DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotReady(
            f"cannot reach the database: {first} (check DATABASE_URL and DATA_DATABASE_URL)"
        ) from None
    if pending:
        shown = ", ".join(pending[:5]) + (
            f" and {len(pending) - 5} more" if len(pending) > 5 else ""
        )
        raise NotReady(
            f"{len(pending)} migration(s) not applied ({shown}): run "
            "`python manage.py ensure_databases` first"
        )
