"""Secret values seen by this process, so logs can be redacted by value; and, through a
source the authoring app registers (engine never imports it), an owner's current ones.

Two scopes, never mixed: the logs (read by the operator only) are masked with every value
any owner's run brought into this process (`register`, `redactor`); whatever a user sees
(the admin's lists and exports, a block test's answer) is masked with that owner's values
only (`owner_redactor`). Masking a user's page with another owner's values would make it
an oracle: a guess equal to someone else's secret would come back `[redacted]`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engine.core.redaction import Redactor

_lock = threading.Lock()
_values: set[str] = set()
_redactor = Redactor()
_owner_source: Callable[[Any], Mapping[str, str]] | None = None
# Per owner, the values their runs read in this process (insertion order, oldest first):
# a secret rotated or deleted since still masks what those runs wrote.
_seen_by_owner: dict[str, dict[str, None]] = {}
# Earlier values kept per owner: past it the oldest are forgotten.
MAX_SEEN_PER_OWNER = 256


def register(values: Iterable[str]) -> None:
    """Values the logs mask (every owner's: the operator reads the logs, not a user)."""
    global _redactor
    with _lock:
        before = len(_values)
        _values.update(v for v in values if v)
        if len(_values) != before:
            _redactor = Redactor(_values)


def redactor() -> Redactor:
    """The logs' redactor: every value `register` got. Never for what a user reads."""
    return _redactor


def set_owner_source(source: Callable[[Any], Mapping[str, str]]) -> None:
    """What `<env.NAME>` reads for an owner (builder registers it when the apps are ready)."""
    global _owner_source
    _owner_source = source


def _current_env(owner_id: Any) -> dict[str, str]:
    if _owner_source is None:
        from engine.config import allowed_process_env

        return allowed_process_env()
    return dict(_owner_source(owner_id))


def owner_env(owner_id: Any) -> dict[str, str]:
    """What `<env.NAME>` reads for this owner's runs: the registered source's answer, or only
    the allow-listed process variables when no authoring app is installed. The values are
    remembered as this owner's (`owner_redactor` keeps masking them after a rotation)."""
    env = _current_env(owner_id)
    _remember(owner_id, env.values())
    return env


def _remember(owner_id: Any, values: Iterable[str]) -> None:
    with _lock:
        seen = _seen_by_owner.setdefault(str(owner_id), {})
        for value in values:
            if value:
                seen.pop(value, None)
                seen[value] = None  # the most recent last
        while len(seen) > MAX_SEEN_PER_OWNER:
            del seen[next(iter(seen))]


def owner_values(owner_id: Any) -> list[str]:
    """This owner's current secret values and those their runs read earlier in this process
    (a secret rotated or deleted since): theirs only, never another owner's."""
    current = list(_current_env(owner_id).values())
    with _lock:
        earlier = list(_seen_by_owner.get(str(owner_id), ()))
    return [*current, *earlier]


def owner_redactor(owner_id: Any) -> Redactor:
    """Masks what the owner's data may hold of their own secrets (`owner_values`)."""
    return Redactor(owner_values(owner_id))


def forget_owners() -> None:
    """Drop the per-owner memory (tests)."""
    with _lock:
        _seen_by_owner.clear()
