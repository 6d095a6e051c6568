"""Simulator configuration: latency, jitter, injected failures and holds.

The same dict shape is accepted by `POST /_sim/config`, `POST /_sim/reset`, the testing
helpers' keyword arguments and `SimulatorConfig.from_dict`, so a test can move a scenario
between an in-thread and an out-of-process simulator without rewriting it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENDPOINTS: tuple[str, ...] = ("openai", "clearbit", "linkedin", "slack", "sources")
CONFIG_KEYS: tuple[str, ...] = (
    "latency_ms",
    "jitter_ms",
    "seed",
    "record",
    "failures",
    "hold",
    "limits",
)
ANY_ENDPOINT = "*"


class ConfigError(ValueError):
    """A config payload that cannot be applied (reported as HTTP 400 by the control API)."""


@dataclass
class FailureRule:
    """Answer matching requests with `status` instead of the real answer.

    `times=None` fails every matching request; an int fails only the first N of them
    (`remaining` counts down as they are served). `after=N` lets the first N matching
    requests through before the rule starts; `rate` fails only that share of the matching
    requests (drawn from the seeded generator); `for_s` ends the rule that many seconds
    after it started (its first matching request past `after`): an outage window.
    """

    endpoint: str = ANY_ENDPOINT
    match: dict[str, Any] = field(default_factory=dict)
    status: int = 500
    times: int | None = None
    retry_after: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    remaining: int | None = None
    after: int = 0
    rate: float = 1.0
    for_s: float | None = None
    seen: int = 0  # matching requests so far
    started: float | None = None  # time.monotonic() when the rule started

    def __post_init__(self) -> None:
        if self.remaining is None:
            self.remaining = self.times

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "match": self.match,
            "status": self.status,
            "times": self.times,
            "retry_after": self.retry_after,
            "body": self.body,
            "headers": self.headers,
            "remaining": self.remaining,
            "after": self.after,
            "rate": self.rate,
            "for_s": self.for_s,
        }


@dataclass
class HoldRule:
    """Park matching requests (in flight) until `POST /_sim/release` lets them go."""

    endpoint: str = ANY_ENDPOINT
    match: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "match": self.match}


@dataclass
class LimitRule:
    """A provider's own rate limits on one endpoint, answered with 429 like the real ones.

    `max_in_flight`: a request arriving while more than this many are in flight gets 429.
    `tokens_per_window` (openai): an answer that would bring the tokens answered in the last
    `window_s` seconds past it gets 429 instead. The stats report the peak either way.
    """

    max_in_flight: int | None = None
    tokens_per_window: int | None = None
    window_s: float = 60.0
    retry_after: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_in_flight": self.max_in_flight,
            "tokens_per_window": self.tokens_per_window,
            "window_s": self.window_s,
            "retry_after": self.retry_after,
        }


@dataclass
class SimulatorConfig:
    latency_ms: dict[str, float] = field(default_factory=lambda: {"default": 0.0})
    jitter_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    seed: int | None = None
    record: bool = True
    failures: list[FailureRule] = field(default_factory=list)
    hold: list[HoldRule] = field(default_factory=list)
    limits: dict[str, LimitRule] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None) -> SimulatorConfig:
        config = cls()
        config.update(data or {})
        return config

    def update(self, data: Mapping[str, Any]) -> None:
        """Apply the keys present in `data`; absent keys keep their current value.

        Everything is parsed before anything is assigned, so a bad payload changes nothing.
        """
        if not isinstance(data, Mapping):
            raise ConfigError("config must be a JSON object")
        unknown = sorted(set(data) - set(CONFIG_KEYS))
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        parsed: dict[str, Any] = {}
        if "latency_ms" in data:
            parsed["latency_ms"] = parse_latency(data["latency_ms"])
        if "jitter_ms" in data:
            parsed["jitter_ms"] = parse_jitter(data["jitter_ms"])
        elif "latency_ms" in data:
            # Asking for a latency means that latency: a jitter set earlier (e.g. by the
            # launcher) would otherwise win and the new setting would seem to do nothing.
            parsed["jitter_ms"] = parse_jitter(None)
        if "seed" in data:
            seed = data["seed"]
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise ConfigError("seed must be an integer or null")
            parsed["seed"] = seed
        if "record" in data:
            parsed["record"] = bool(data["record"])
        if "failures" in data:
            parsed["failures"] = [parse_failure(item) for item in data["failures"] or []]
        if "hold" in data:
            parsed["hold"] = [parse_hold(item) for item in data["hold"] or []]
        if "limits" in data:
            parsed["limits"] = parse_limits(data["limits"])
        for key, value in parsed.items():
            setattr(self, key, value)

    def copy(self) -> SimulatorConfig:
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": dict(self.latency_ms),
            "jitter_ms": {k: list(v) for k, v in self.jitter_ms.items()},
            "seed": self.seed,
            "record": self.record,
            "failures": [rule.to_dict() for rule in self.failures],
            "hold": [rule.to_dict() for rule in self.hold],
            "limits": {name: rule.to_dict() for name, rule in self.limits.items()},
        }


def _check_endpoint(name: Any, *, allow_default: bool = False, allow_any: bool = False) -> str:
    valid = set(ENDPOINTS)
    if allow_default:
        valid.add("default")
    if allow_any:
        valid.add(ANY_ENDPOINT)
    if name not in valid:
        raise ConfigError(f"unknown endpoint {name!r}; expected one of {sorted(valid)}")
    return str(name)


def _non_negative(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{what} must be a non-negative number, got {value!r}")
    return float(value)


def parse_latency(value: Any) -> dict[str, float]:
    """`12` → every endpoint 12 ms; `{"default": 5, "openai": 40}` → per endpoint."""
    if value is None:
        return {"default": 0.0}
    if isinstance(value, Mapping):
        result = {"default": 0.0}
        for name, ms in value.items():
            result[_check_endpoint(name, allow_default=True)] = _non_negative(ms, "latency_ms")
        return result
    return {"default": _non_negative(value, "latency_ms")}


def _pair(value: Any) -> tuple[float, float]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"jitter_ms must be [lo, hi], got {value!r}")
    lo, hi = (_non_negative(float(v) if isinstance(v, str) else v, "jitter_ms") for v in value)
    if lo > hi:
        raise ConfigError(f"jitter_ms lo must be <= hi, got {value!r}")
    return lo, hi


def parse_jitter(value: Any) -> dict[str, tuple[float, float]]:
    """`[lo, hi]` → every endpoint; `{"default": [lo, hi], "slack": [lo, hi]}` → per endpoint."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {_check_endpoint(k, allow_default=True): _pair(v) for k, v in value.items()}
    return {"default": _pair(value)}


def _match(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("match must be an object")
    return dict(value)


def parse_failure(item: Any) -> FailureRule:
    if isinstance(item, FailureRule):
        return copy.deepcopy(item)
    if not isinstance(item, Mapping):
        raise ConfigError("each failure must be an object")
    unknown = set(item) - {
        "endpoint",
        "match",
        "status",
        "times",
        "retry_after",
        "body",
        "headers",
        "after",
        "rate",
        "for_s",
    }
    if unknown:
        raise ConfigError(f"unknown failure keys: {', '.join(sorted(unknown))}")
    status = item.get("status", 500)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ConfigError(f"failure status must be an HTTP status code, got {status!r}")
    times = item.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 0):
        raise ConfigError(f"failure times must be null or a non-negative integer, got {times!r}")
    retry_after = item.get("retry_after")
    headers = item.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ConfigError("failure headers must be an object")
    after = item.get("after", 0)
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ConfigError(f"failure after must be a non-negative integer, got {after!r}")
    rate = item.get("rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        raise ConfigError(f"failure rate must be a number in (0, 1], got {rate!r}")
    for_s = item.get("for_s")
    if for_s is not None:
        for_s = _non_negative(for_s, "failure for_s")
    return FailureRule(
        after=after,
        rate=float(rate),
        for_s=for_s,
        endpoint=_check_endpoint(item.get("endpoint", ANY_ENDPOINT), allow_any=True),
        match=_match(item.get("match")),
        status=status,
        times=times,
        retry_after=None if retry_after is None else str(retry_after),
        body=item.get("body"),
        headers={str(k): str(v) for k, v in headers.items()},
    )


def parse_hold(item: Any) -> HoldRule:
    if isinstance(item, HoldRule):
        return copy.deepcopy(item)
    if not isinstance(item, Mapping):
        raise ConfigError("each hold must be an object")
    unknown = set(item) - {"endpoint", "match"}
    if unknown:
        raise ConfigError(f"unknown hold keys: {', '.join(sorted(unknown))}")
    return HoldRule(
        endpoint=_check_endpoint(item.get("endpoint", ANY_ENDPOINT), allow_any=True),
        match=_match(item.get("match")),
    )


def _positive_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be null or a positive integer, got {value!r}")
    return value


def parse_limits(value: Any) -> dict[str, LimitRule]:
    """`{"clearbit": {"max_in_flight": 6}, "openai": {"tokens_per_window": 20000,
    "window_s": 60}}`; null or {} lifts every limit."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("limits must be an object of endpoint → limits")
    rules: dict[str, LimitRule] = {}
    for name, item in value.items():
        endpoint = _check_endpoint(name)
        if isinstance(item, LimitRule):
            rules[endpoint] = copy.deepcopy(item)
            continue
        if not isinstance(item, Mapping):
            raise ConfigError(f"limits for {endpoint} must be an object")
        unknown = set(item) - {"max_in_flight", "tokens_per_window", "window_s", "retry_after"}
        if unknown:
            raise ConfigError(f"unknown limit keys: {', '.join(sorted(unknown))}")
        window = _non_negative(item.get("window_s", 60.0), "window_s")
        if window <= 0:
            raise ConfigError("window_s must be positive")
        retry_after = item.get("retry_after")
        rules[endpoint] = LimitRule(
            max_in_flight=_positive_int(item.get("max_in_flight"), "max_in_flight"),
            tokens_per_window=_positive_int(item.get("tokens_per_window"), "tokens_per_window"),
            window_s=window,
            retry_after=None if retry_after is None else str(retry_after),
        )
    return rules
