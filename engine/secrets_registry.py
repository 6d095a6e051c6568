"""Secret values seen by this process, so logs can be redacted by value."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from engine.core.redaction import Redactor

_lock = threading.Lock()
_values: set[str] = set()
_redactor = Redactor()


def register(values: Iterable[str]) -> None:
    global _redactor
    with _lock:
        before = len(_values)
        _values.update(v for v in values if v)
        if len(_values) != before:
            _redactor = Redactor(_values)


def redactor() -> Redactor:
    return _redactor
