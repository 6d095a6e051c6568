"""Reading settings from environment variables, refusing values that cannot work.

Every number has a range: a value outside it, or not a number at all, stops start-up with
ImproperlyConfigured naming the variable, what it expects and the value given, e.g.
`KLYNTOS_RUN_LEASE_SECONDS must be a number of seconds from 3 to 3600, got '0'`. A variable
set to the empty string counts as unset (its default).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})

# What a number is, in the messages.
COUNT = "a whole number"
BYTES = "a number of bytes"
SECONDS = "a number of seconds"


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or not value.strip() else value


def _shown(number: float) -> str:
    """1000000 rather than 1e+06, 0.05 rather than 0.05000000000000000277."""
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def expected(what: str, low: float, high: float, *, zero: str = "", high_name: str = "") -> str:
    """`a number of seconds from 3 to 3600`; `zero` says what 0 means when 0 is the low end,
    `high_name` the setting the high end comes from."""
    low_text = _shown(low) + (f" ({zero})" if zero else "")
    high_text = f"{high_name} ({_shown(high)})" if high_name else _shown(high)
    return f"{what} from {low_text} to {high_text}"


def refuse(name: str, expects: str, raw: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name} must be {expects}, got {raw!r}")


def env_bool(name: str, default: bool) -> bool:
    """1/0, true/false, yes/no, on/off in any case; anything else stops start-up (a typo in
    KLYNTOS_SANDBOX must not send traffic to the real providers)."""
    raw = _raw(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise refuse(name, "1/0, true/false, yes/no or on/off", raw)


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


def env_int(
    name: str,
    default: int,
    low: int,
    high: int,
    *,
    what: str = COUNT,
    zero: str = "",
    high_name: str = "",
) -> int:
    """A whole number from `low` to `high` (both included)."""
    raw = _raw(name)
    if raw is None:
        return default
    expects = expected(what, low, high, zero=zero, high_name=high_name)
    return int(_number(name, raw, int, low, high, expects))


def env_float(
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    what: str = SECONDS,
    zero: str = "",
    high_name: str = "",
) -> float:
    """A finite number from `low` to `high` (both included)."""
    raw = _raw(name)
    if raw is None:
        return float(default)
    expects = expected(what, low, high, zero=zero, high_name=high_name)
    return float(_number(name, raw, float, low, high, expects))


def env_optional_float(
    name: str, low: float, high: float, *, what: str, unset: str
) -> float | None:
    """Like env_float, but unset (or empty) is None; `unset` says what that means."""
    raw = _raw(name)
    if raw is None:
        return None
    expects = f"{expected(what, low, high)} (or unset: {unset})"
    return float(_number(name, raw, float, low, high, expects))


def _number(
    name: str, raw: str, cast: Callable[[str], float], low: float, high: float, expects: str
) -> float:
    try:
        value = cast(raw.strip())
    except ValueError:
        raise refuse(name, expects, raw) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise refuse(name, expects, raw)
    return value


def env_checked(name: str, parse: Callable[[str], object]) -> str:
    """The variable's text (empty when unset), parsed once now by `parse` (a callable that
    raises ValueError naming the bad part) so a malformed value stops start-up rather than
    the first call that reads it."""
    raw = os.environ.get(name, "")
    if raw.strip():
        try:
            parse(raw)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {exc}") from None
    return raw
