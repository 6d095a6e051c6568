"""Per-owner workflow data: each user's database blocks see only that user's tables.

PostgreSQL: one schema per owner (`owner_<id>`) in the data database holding that owner's
workflow tables, and one login role per owner that can read and write rows there and nothing
else (no other schema, no DDL, no temporary objects, no cluster catalogs). SQLite: one file
per owner (`<data dir>/owners/owner-<id>.sqlite3`), opened by the engine under an authorizer.

Everything is provisioned lazily on an owner's first run, idempotently, and the tables are
created from the `leads` models (`WORKFLOW_MODELS`), so they keep the models' shape.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import connections, transaction
from django.db.utils import ConnectionHandler

from engine.core.data import ROLE_ATTRIBUTES_VIEW, DataConnection, PostgresData, SqliteData
from engine.core.data_pools import DataSource
from engine.db_calls import closing_connections
from leads.models import WORKFLOW_MODELS
from leads.tables import LEADS, Table

log = logging.getLogger(__name__)

DATA_ALIAS = "data"
SCHEMA_PATTERN = re.compile(r"^owner_(\d+)$")
FILE_PATTERN = re.compile(r"^owner-(\d+)\.sqlite3$")


class OwnerStore(Protocol):
    vendor: str

    def provision(self, owner_id: int) -> None: ...

    def source(self, owner_id: int) -> DataSource: ...

    def owner_ids(self, table: Table = LEADS) -> list[int]: ...

    def rows(
        self, owner_ids: Sequence[int], search: str, offset: int, limit: int, table: Table = LEADS
    ) -> tuple[list[dict[str, Any]], int]: ...


def store() -> OwnerStore:
    """The owner store of the `data` database as Django sees it now (tests rename it)."""
    config = connections[DATA_ALIAS].settings_dict
    if config["ENGINE"] == "django.db.backends.sqlite3":
        return SqliteOwners(Path(str(config["NAME"])).parent / "owners")
    if config["ENGINE"] == "django.db.backends.postgresql":
        return PostgresOwners(DATA_ALIAS)
    raise ValueError(f"unsupported data database engine {config['ENGINE']}")


def owner_source(owner_id: int, *, provision_now: bool = True) -> DataSource:
    """Where one owner's runs connect, provisioning the owner on first use: now, or (not
    `provision_now`: a run's load) as the source's `prepare`, on a thread from the run's
    lease of it on, which only the run's first statement waits for (engine/core/data_pools.py)."""
    owners = store()
    if provision_now:
        owners.provision(owner_id)
        return owners.source(owner_id)
    return dataclasses.replace(
        owners.source(owner_id),
        # On a pool thread: its connections are closed after, none is left open behind.
        prepare=functools.partial(closing_connections, owners.provision, owner_id),
    )


def owner_connection(owner_id: int) -> DataConnection:
    """A connection of one's own (not shared through the engine's pools) to an owner's data."""
    return owner_source(owner_id).open()


def schema_name(owner_id: int) -> str:
    return f"owner_{int(owner_id)}"


def role_name(database: str, owner_id: int) -> str:
    # Roles are cluster-wide; the database's digest keeps two installations (or two test
    # databases) on one server from sharing an owner's role.
    digest = hashlib.sha256(database.encode()).hexdigest()[:8]
    return f"klyntos_{digest}_{int(owner_id)}"


def role_password(role: str) -> str:
    """Derived from SECRET_KEY, so `make run` needs no extra setting; re-set on provisioning."""
    return hmac.new(
        settings.SECRET_KEY.encode(), f"klyntos-data-role:{role}".encode(), hashlib.sha256
    ).hexdigest()


def _search_terms(search: str) -> tuple[str, str]:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return search, f"%{escaped}%"


# --- PostgreSQL ------------------------------------------------------------------------

# Catalogs that name other databases, roles, sessions and settings; PUBLIC can read them by
# default. Revoked in the data database only (catalog ACLs are per database) and only where
# the provisioning user may (a superuser); otherwise a warning says so.
CLUSTER_CATALOGS = [
    "pg_database",
    "pg_roles",
    "pg_user",
    "pg_group",
    "pg_auth_members",
    "pg_db_role_setting",
    "pg_shdescription",
    "pg_shseclabel",
    "pg_tablespace",
    "pg_stat_activity",
    "pg_stat_database",
    "pg_stat_database_conflicts",
    "pg_stat_replication",
    "pg_stat_ssl",
    "pg_stat_gssapi",
    "pg_stat_subscription",
    "pg_replication_slots",
    "pg_prepared_xacts",
]
# Functions behind those views, and the large-object constructors (objects anyone may create).
PUBLIC_FUNCTIONS = [
    "pg_stat_get_activity(integer)",
    "lo_create(oid)",
    "lo_creat(integer)",
    "lo_from_bytea(oid, bytea)",
]

_provisioned: set[tuple[str, int]] = set()
_hardened: set[str] = set()
_provision_lock = threading.Lock()


def forget_provisioned() -> None:
    """Provision again on next use (after someone dropped owner data under this process)."""
    _provisioned.clear()


class PostgresOwners:
    vendor = "postgresql"

    def __init__(self, alias: str = DATA_ALIAS) -> None:
        self.alias = alias

    @property
    def database(self) -> str:
        return str(connections[self.alias].settings_dict["NAME"])

    def role(self, owner_id: int) -> str:
        return role_name(self.database, owner_id)

    def provision(self, owner_id: int) -> None:
        key = (self.database, int(owner_id))
        if key in _provisioned:
            return
        with _provision_lock, transaction.atomic(using=self.alias):
            connection = connections[self.alias]
            with connection.cursor() as cursor:
                # Serialises provisioning across processes on a table no workflow role may
                # lock (advisory locks could be taken, and held, by a workflow).
                cursor.execute("LOCK TABLE django_migrations IN SHARE UPDATE EXCLUSIVE MODE")
            if self.database not in _hardened:
                self._harden()
            self._provision(int(owner_id))
            transaction.on_commit(lambda: _provisioned.add(key), using=self.alias)
            if self.database not in _hardened:
                transaction.on_commit(lambda: _hardened.add(self.database), using=self.alias)

    def _raw(self) -> Any:
        connection = connections[self.alias]
        connection.ensure_connection()
        return connection.connection  # psycopg: composed SQL needs the driver's connection

    def _harden(self) -> None:
        """Database-wide: nobody but granted roles connects, nobody creates temporary or
        public objects, and (as a superuser) the cluster catalogs are closed to PUBLIC."""
        from psycopg import sql

        database = sql.Identifier(self.database)
        raw = self._raw()
        with raw.cursor() as cursor:
            cursor.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
            cursor.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            cursor.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(ROLE_ATTRIBUTES_VIEW.split(".")[0])
                )
            )
            # The engine's check of its own role, now that pg_roles is closed: a view runs
            # with its owner's rights and shows the caller's row only.
            cursor.execute(
                sql.SQL(
                    "CREATE OR REPLACE VIEW {} AS SELECT rolname, rolsuper, rolcreaterole, "
                    "rolcreatedb, rolreplication, rolbypassrls FROM pg_catalog.pg_roles "
                    "WHERE rolname = current_user"
                ).format(sql.Identifier(*ROLE_ATTRIBUTES_VIEW.split(".")))
            )
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            superuser = bool(cursor.fetchone()[0])
            if not superuser:
                log.warning(
                    "the data database's user is not a superuser: workflow roles can still "
                    "read the cluster catalogs (pg_database, pg_roles, pg_stat_activity)"
                )
                return
            for name in CLUSTER_CATALOGS:
                cursor.execute(
                    sql.SQL("REVOKE ALL ON pg_catalog.{} FROM PUBLIC").format(sql.Identifier(name))
                )
            for signature in PUBLIC_FUNCTIONS:
                cursor.execute(
                    sql.SQL("REVOKE EXECUTE ON FUNCTION pg_catalog.{} FROM PUBLIC").format(
                        sql.SQL(signature)
                    )
                )

    def _provision(self, owner_id: int) -> None:
        from psycopg import sql

        role, schema = self.role(owner_id), schema_name(owner_id)
        r, s = sql.Identifier(role), sql.Identifier(schema)
        meta_schema, meta_view = ROLE_ATTRIBUTES_VIEW.split(".")
        raw = self._raw()
        with raw.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            verb = "ALTER" if cursor.fetchone() else "CREATE"
            cursor.execute(
                sql.SQL(
                    "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                    "NOREPLICATION NOBYPASSRLS PASSWORD {}"
                ).format(sql.SQL(verb), r, sql.Literal(role_password(role)))
            )
            cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))
            cursor.execute(
                sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}").format(
                    r, sql.Identifier(self.database), s
                )
            )
            cursor.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(self.database), r
                )
            )
            cursor.execute(
                sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM {}").format(
                    sql.Identifier(self.database), r
                )
            )
            cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r))
            cursor.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(meta_schema), r)
            )
            cursor.execute(
                sql.SQL("GRANT SELECT ON {} TO {}").format(
                    sql.Identifier(meta_schema, meta_view), r
                )
            )
        self._create_tables(schema)
        with raw.cursor() as cursor:
            cursor.execute(
                sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}"
                ).format(s, r)
            )
            cursor.execute(
                sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(s, r)
            )

    def _create_tables(self, schema: str) -> None:
        connection = connections[self.alias]
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL search_path TO %s", [schema])
            existing = set(connection.introspection.table_names(cursor))
        with connection.schema_editor(atomic=False) as editor:
            for model in WORKFLOW_MODELS:
                if model._meta.db_table not in existing:
                    editor.create_model(model)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL search_path TO public")

    def source(self, owner_id: int) -> DataSource:
        from psycopg.conninfo import make_conninfo

        config = connections[self.alias].settings_dict
        role = self.role(owner_id)
        parts = {
            "dbname": config["NAME"],
            "user": role,
            "password": role_password(role),
            "host": config.get("HOST") or None,
            "port": str(config["PORT"]) if config.get("PORT") else None,
            "options": f"-c search_path={schema_name(owner_id)}",
        }
        conninfo = make_conninfo(**{k: v for k, v in parts.items() if v})
        return DataSource(f"postgresql:{self.database}:{owner_id}", lambda: PostgresData(conninfo))

    def owner_ids(self, table: Table = LEADS) -> list[int]:
        """Owners whose schema has `table` (an owner provisioned before a table was added
        gets it on their next run)."""
        with connections[self.alias].cursor() as cursor:
            cursor.execute(
                "SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid "
                "WHERE c.relname = %s AND n.nspname ~ '^owner_[0-9]+$'",
                [table.name],
            )
            names = [row[0] for row in cursor.fetchall()]
        return sorted(int(SCHEMA_PATTERN.match(name).group(1)) for name in names)  # type: ignore[union-attr]

    def rows(
        self, owner_ids: Sequence[int], search: str, offset: int, limit: int, table: Table = LEADS
    ) -> tuple[list[dict[str, Any]], int]:
        from psycopg import sql

        present = set(self.owner_ids(table))
        chosen = [o for o in owner_ids if o in present]
        if not chosen:
            return [], 0
        text, pattern = _search_terms(search)
        where = sql.SQL(" OR ").join(
            sql.SQL("{} ILIKE {}").format(sql.Identifier(c), sql.Placeholder())
            for c in table.searched
        )
        parts, params = [], []
        for owner in chosen:
            parts.append(
                sql.SQL("SELECT {} AS owner_id, {} FROM {} WHERE {} = '' OR {}").format(
                    sql.Literal(owner),
                    sql.SQL(", ").join(sql.Identifier(c) for c in table.columns),
                    sql.Identifier(schema_name(owner), table.name),
                    sql.Placeholder(),
                    where,
                )
            )
            params += [text] + [pattern] * len(table.searched)
        union = sql.SQL(" UNION ALL ").join(parts)
        order = sql.SQL(", ").join(
            sql.SQL("{} {} NULLS LAST").format(
                sql.Identifier(column), sql.SQL("DESC" if descending else "ASC")
            )
            for column, descending in table.order
        )
        raw = self._raw()
        with raw.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT count(*) FROM ({}) t").format(union), params)
            total = int(cursor.fetchone()[0])
            cursor.execute(
                sql.SQL("SELECT * FROM ({}) t ORDER BY {}, owner_id LIMIT %s OFFSET %s").format(
                    union, order
                ),
                [*params, limit, offset],
            )
            names = [c.name for c in cursor.description]
            found = [dict(zip(names, record, strict=True)) for record in cursor.fetchall()]
        return found, total


# --- SQLite ----------------------------------------------------------------------------


class SqliteOwners:
    vendor = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, owner_id: int) -> Path:
        return self.directory / f"owner-{int(owner_id)}.sqlite3"

    def provision(self, owner_id: int) -> None:
        key = (str(self.directory), int(owner_id))
        if key in _provisioned:
            return
        with _provision_lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            _create_sqlite_tables(self.path(owner_id), WORKFLOW_MODELS)
            _provisioned.add(key)

    def source(self, owner_id: int) -> DataSource:
        path = str(self.path(owner_id))
        return DataSource(f"sqlite:{path}", lambda: SqliteData(path))

    def owner_ids(self, table: Table = LEADS) -> list[int]:
        # Every file has every table: `rows` provisions a file's missing tables first.
        if not self.directory.is_dir():
            return []
        found = (FILE_PATTERN.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def rows(
        self, owner_ids: Sequence[int], search: str, offset: int, limit: int, table: Table = LEADS
    ) -> tuple[list[dict[str, Any]], int]:
        present = set(self.owner_ids(table))
        text, pattern = _search_terms(search)
        where = " OR ".join(f"\"{c}\" LIKE ? ESCAPE '\\'" for c in table.searched)
        columns = ", ".join(f'"{c}"' for c in table.columns)
        order = ", ".join(
            f'"{c}" IS NULL, "{c}" {"DESC" if descending else "ASC"}'
            for c, descending in table.order
        )
        found: list[dict[str, Any]] = []
        total = 0
        for owner in (o for o in owner_ids if o in present):
            self.provision(owner)  # a file made before `table` existed gets it now
            uri = f"{self.path(owner).as_uri()}?mode=ro"
            with closing(sqlite3.connect(uri, uri=True)) as conn:
                params = [text, *([pattern] * len(table.searched))]
                filtered = f"FROM \"{table.name}\" WHERE ? = '' OR {where}"
                total += conn.execute(f"SELECT count(*) {filtered}", params).fetchone()[0]
                cursor = conn.execute(
                    f"SELECT {columns} {filtered} ORDER BY {order} LIMIT ?",
                    [*params, offset + limit],
                )
                names = [c[0] for c in cursor.description]
                found += [{"owner_id": owner, **dict(zip(names, r, strict=True))} for r in cursor]
        found.sort(key=table.sort_key)
        return found[offset : offset + limit], total


def _create_sqlite_tables(path: Path, models: Iterable[Any]) -> None:
    """Creates the models' tables in one owner's file with Django's own schema editor."""
    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}}
    )
    connection = handler["default"]
    try:
        existing = set(connection.introspection.table_names())
        with connection.schema_editor() as editor:
            for model in models:
                if model._meta.db_table not in existing:
                    editor.create_model(model)
    finally:
        connection.close()
