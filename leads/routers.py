"""Workflow data (the `leads` app) lives on the `data` connection; everything else on default."""

from typing import Any

DATA_APPS = {"leads"}


class DataRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "data" if model._meta.app_label in DATA_APPS else "default"

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return self.db_for_read(model)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return (db == "data") == (app_label in DATA_APPS)
