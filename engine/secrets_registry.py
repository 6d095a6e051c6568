"""Secret values seen by this process, so logs can be redacted by value; and, through a
source the authoring app registers (engine never imports it), an owner's current ones."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engine.core.redaction import Redactor

_lock = threading.Lock()
_values: set[str] = set()
_redactor = Redactor()
_owner_source: Callable[[Any], Mapping[str, str]] | None = None


def register(values: Iterable[str]) -> None:
    global _redactor
    with _lock:
        before = len(_values)
        _values.update(v for v in values if v)
        if len(_values) != before:
            _redactor = Redactor(_values)


def redactor() -> Redactor:
    return _redactor


def set_owner_source(source: Callable[[Any], Mapping[str, str]]) -> None:
    """What `<env.NAME>` reads for an owner (builder registers it when the apps are ready)."""
    global _owner_source
    _owner_source = source


def owner_env(owner_id: Any) -> dict[str, str]:
    """What `<env.NAME>` reads for this owner's runs: the registered source's answer, or only
    the allow-listed process variables when no authoring app is installed."""
    if _owner_source is None:
        from engine.config import allowed_process_env

        return allowed_process_env()
    return dict(_owner_source(owner_id))


def owner_redactor(owner_id: Any) -> Redactor:
    """Masks the owner's current secret values and every value this process has seen."""
    owned = _owner_source(owner_id).values() if _owner_source is not None else ()
    with _lock:
        seen = list(_values)
    return Redactor([*owned, *seen])
