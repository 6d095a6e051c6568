"""Provider governance's settings: each provider key's limits (KLYNTOS_PROVIDER_LIMITS) and
the breaker's policy (KLYNTOS_BREAKER, a loop's `circuit_breaker`), parsed and checked here so
that a wrong value is refused with the part that is wrong named.

A provider key is the upstream host as written in the URL, before host overrides,
lower-cased without a trailing dot (`api.clearbit.com`), or `host/model` for an Agent's model
(`api.openai.com/gpt-4o-mini`): `provider_key`.

Per key (`parse_provider_limits`, `KeyLimits`): a concurrency cap, requests per minute and
tokens per minute, and AIMD's `start` (a fraction of the cap) and `floor`. `ProviderSettings`
holds them with the settings every key shares (what "per minute" means, AIMD's defaults, the
longest Retry-After pause, priority aging, a new run's burst) and the breaker's policy.

The breaker's policy (`parse_breaker`, `breaker_policy`, `BreakerPolicy`): its mode (auto,
manual, off), the count window and the calls and failure rate that open it, its cool-down
and probes, and how long an auto breaker stays open before it gives up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LIMIT_FIELDS = ("concurrency", "rpm", "tpm", "start", "floor")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")
_MODEL_FORBIDDEN = set(",;= \t\r\n")


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """One key's configured limits; None is unlimited (or the global AIMD setting)."""

    concurrency: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    start: float | None = None
    floor: int | None = None


BREAKER_MODES = ("auto", "manual", "off")
# The longest count window a breaker keeps (a bound on its memory per key).
MAX_BREAKER_WINDOW = 1000
# The longest `give_up_after` (a week): past it, 0 (never) says what is meant.
MAX_GIVE_UP_AFTER = 604_800


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a provider's breaker opens and how it closes (KLYNTOS_BREAKER; a loop's
    `circuit_breaker` for the calls of its items)."""

    mode: str = "auto"  # auto: cool-down then probes | manual: until resumed | off
    window: int = 20  # the last N counted calls
    min_calls: int = 10  # counted calls before it may open
    failure_rate: float = 0.25  # opens when at least this share of the window failed
    cool_down: float = 5.0  # seconds open after a first trip (auto), doubled on each trip
    cool_down_max: float = 120.0
    probes: int = 3  # half-open calls that must succeed to close
    # Seconds not closed (auto) after which the calls waiting on it fail, and new ones fail at
    # once until it closes (a provider down for good must not leave a run paused forever);
    # 0: never.
    give_up_after: float = 900.0


BREAKER_FIELDS = tuple(BreakerPolicy.__dataclass_fields__)


def parse_breaker(text: str, base: BreakerPolicy | None = None) -> BreakerPolicy:
    """`mode:auto;window:20;min_calls:10;failure_rate:0.25;cool_down:5;cool_down_max:120;
    probes:3;give_up_after:900` (any subset, over `base`); raises ValueError naming the part
    that is wrong."""
    values: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, value = (x.strip() for x in part.partition(":"))
        if not sep or name not in BREAKER_FIELDS:
            raise ValueError(
                f"KLYNTOS_BREAKER: {part!r} is not one of "
                f"{', '.join(f + ':…' for f in BREAKER_FIELDS)}"
            )
        values[name] = value
    return breaker_policy(values, base, "KLYNTOS_BREAKER")


def breaker_policy(
    values: Mapping[str, Any], base: BreakerPolicy | None = None, where: str = "breaker"
) -> BreakerPolicy:
    """A policy from named values (text or numbers) over `base`; ValueError on a bad one."""
    base = base or BreakerPolicy()
    parsed: dict[str, Any] = {}
    for name, value in values.items():
        if name == "mode":
            if value not in BREAKER_MODES:
                raise ValueError(f"{where}: mode must be one of {', '.join(BREAKER_MODES)}")
            parsed[name] = value
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if name in ("window", "min_calls", "probes"):
            if not number.is_integer() or not 1 <= number <= MAX_BREAKER_WINDOW:
                raise ValueError(
                    f"{where}: {name} must be a whole number from 1 to {MAX_BREAKER_WINDOW}, "
                    f"got {value!r}"
                )
            parsed[name] = int(number)
        elif name == "failure_rate":
            if not 0 < number <= 1:
                raise ValueError(f"{where}: failure_rate must be in (0, 1], got {value!r}")
            parsed[name] = number
        elif name in ("cool_down", "cool_down_max"):
            if not 0 < number <= 86_400:
                raise ValueError(f"{where}: {name} must be seconds in (0, 86400], got {value!r}")
            parsed[name] = number
        elif name == "give_up_after":
            if not 0 <= number <= MAX_GIVE_UP_AFTER:
                raise ValueError(
                    f"{where}: give_up_after must be seconds from 0 (never) to "
                    f"{MAX_GIVE_UP_AFTER}, got {value!r}"
                )
            parsed[name] = number
        else:
            raise ValueError(f"{where}: unknown setting {name!r}")
    merged = {**policy_dict(base), **parsed}
    if "cool_down_max" not in parsed:  # a longer first cool-down raises the longest one
        merged["cool_down_max"] = max(merged["cool_down_max"], merged["cool_down"])
    policy = BreakerPolicy(**merged)
    if policy.min_calls > policy.window:
        raise ValueError(
            f"{where}: min_calls ({policy.min_calls}) must not exceed window ({policy.window})"
        )
    if policy.cool_down > policy.cool_down_max:
        raise ValueError(
            f"{where}: cool_down ({policy.cool_down:g}) must not exceed cool_down_max "
            f"({policy.cool_down_max:g})"
        )
    return policy


def policy_dict(policy: BreakerPolicy) -> dict[str, Any]:
    """`policy` as named values (what `breaker_policy` reads, what workers share)."""
    return {name: getattr(policy, name) for name in BREAKER_FIELDS}


@dataclass(frozen=True)
class ProviderSettings:
    limits: Mapping[str, KeyLimits] = field(default_factory=dict)
    # What "per minute" means in seconds (tests and benchmarks shorten it).
    window: float = 60.0
    aimd_start: float = 0.5  # of the cap, for keys with one
    aimd_floor: int = 1
    # How long the limit stays under the one that last failed before it may probe past it.
    probe_seconds: float = 30.0
    # An Agent call's completion estimate before its key has answered (no max_tokens).
    completion_tokens: int = 256
    # The longest a Retry-After pauses a key (KLYNTOS_RETRY_AFTER_MAX).
    max_pause: float = 60.0
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    # A call that has waited this many seconds competes as an equal of the highest priority
    # waiting (0: strict priority, a lower-priority run waits as long as a higher one has
    # calls waiting).
    priority_aging: float = 60.0
    # A run new to a key (fewer calls let through there lately than this many times the
    # key's concurrency limit) goes before the runs already using it: a small run's first
    # calls do not wait for its fair share to build up (0: no such burst).
    new_run_burst: float = 1.0


def parse_provider_limits(text: str) -> dict[str, KeyLimits]:
    """`host=10,host2=concurrency:5;rpm:600;tpm:100000,host/model=tpm:20000`.

    A bare number is a concurrency cap. Fields: concurrency, rpm, tpm (positive integers),
    start (a fraction in (0, 1]) and floor (a positive integer) for AIMD. Raises ValueError
    naming the entry and what is wrong with it.
    """
    limits: dict[str, KeyLimits] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        key, sep, spec = entry.partition("=")
        if not sep or not spec.strip():
            raise ValueError(
                f"KLYNTOS_PROVIDER_LIMITS entry {entry!r}: expected 'host=N' or "
                "'host=concurrency:N;rpm:N;tpm:N'"
            )
        key = provider_key(key)
        if not _valid_key(key):
            raise ValueError(
                f"KLYNTOS_PROVIDER_LIMITS entry {entry!r}: {key!r} is not a host name "
                "(or host/model)"
            )
        if key in limits:
            raise ValueError(f"KLYNTOS_PROVIDER_LIMITS entry {entry!r}: {key} is listed twice")
        limits[key] = _parse_spec(spec.strip(), entry)
    return limits


def _parse_spec(spec: str, entry: str) -> KeyLimits:
    if spec.isdigit():
        return KeyLimits(concurrency=_positive(spec, "concurrency", entry))
    values: dict[str, Any] = {}
    for part in spec.split(";"):
        name, sep, value = (p.strip() for p in part.partition(":"))
        if not sep or name not in LIMIT_FIELDS:
            raise ValueError(
                f"KLYNTOS_PROVIDER_LIMITS entry {entry!r}: {part.strip()!r} is not one of "
                f"{', '.join(f + ':N' for f in LIMIT_FIELDS)}"
            )
        if name in values:
            raise ValueError(f"KLYNTOS_PROVIDER_LIMITS entry {entry!r}: {name} given twice")
        if name == "start":
            try:
                fraction = float(value)
            except ValueError:
                fraction = -1.0
            if not 0 < fraction <= 1:
                raise ValueError(
                    f"KLYNTOS_PROVIDER_LIMITS entry {entry!r}: start must be a fraction "
                    f"in (0, 1], got {value!r}"
                )
            values[name] = fraction
        else:
            values[name] = _positive(value, name, entry)
    return KeyLimits(**values)


def _positive(value: str, name: str, entry: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(
            f"KLYNTOS_PROVIDER_LIMITS entry {entry!r}: {name} must be a positive integer, "
            f"got {value!r}"
        )
    return int(value)


def provider_key(host: str, model: str | None = None) -> str:
    """`host` lower-cased without a trailing dot, `/model` appended when given."""
    host, _, named = host.strip().partition("/")
    host = host.lower().rstrip(".")
    model = model if model is not None else (named or None)
    return f"{host}/{model.strip()}" if model else host


def _valid_key(key: str) -> bool:
    host, _, model = key.partition("/")
    if not _HOST.match(host):
        return False
    return "/" not in key or bool(model) and not _MODEL_FORBIDDEN.intersection(model)
