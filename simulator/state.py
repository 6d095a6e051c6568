"""Live simulator state: counters, recorded requests, failure budgets and parked holds.

Everything runs on the server's single event loop, so plain ints are exact (no locks):
`enter`/`exit` bracket each provider handler, which makes `peak_in_flight` a precise
measure of the concurrency a client actually achieved.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import ANY_ENDPOINT, ENDPOINTS, FailureRule, HoldRule, SimulatorConfig


@dataclass
class Call:
    """One provider request as the simulator saw it (parsed once, used everywhere)."""

    endpoint: str
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    raw_query: str = ""  # exactly as sent (still percent-encoded)
    json: dict[str, Any] | None = None
    body_error: str | None = None  # set when the body could not be parsed
    prompt: str | None = None  # openai: all message contents joined with "\n"
    text: str | None = None  # slack: the message text
    fields: dict[str, Any] = field(default_factory=dict)  # what `match` compares against


@dataclass
class _ActiveHold:
    rule: HoldRule
    event: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0


def matches(match: Mapping[str, Any], call: Call) -> bool:
    """Every key of `match` must equal the request field (`prompt_contains`: substring)."""
    for key, expected in match.items():
        if key == "prompt_contains":
            if str(expected) not in (call.prompt or ""):
                return False
            continue
        if key not in call.fields:
            return False
        actual = call.fields[key]
        # Query strings and form fields are text, so "3" must match 3.
        if actual != expected and str(actual) != str(expected):
            return False
    return True


def _applies(rule_endpoint: str, endpoint: str) -> bool:
    return rule_endpoint in (ANY_ENDPOINT, endpoint)


class SimulatorState:
    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = (config or SimulatorConfig()).copy()
        self.rng = random.Random(self.config.seed)
        self._holds: list[_ActiveHold] = [_ActiveHold(rule) for rule in self.config.hold]
        self.in_flight: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self.in_flight_total = 0
        self.held: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)  # parked right now
        self._clear_stats()

    # ---------------------------------------------------------------- config

    def _clear_stats(self) -> None:
        self.requests: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self.injected: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        # Requests still in flight across a reset keep counting, so peaks restart from them.
        self.peak_in_flight: dict[str, int] = dict(self.in_flight)
        self.peak_in_flight_total = self.in_flight_total
        self.received: list[dict[str, Any]] = []
        self.slack_counter = 0
        # Provider rate limits (config `limits`): 429s answered, tokens answered, and the
        # most tokens answered within any one window.
        self.throttled: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self.tokens: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self.peak_tokens_in_window: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self._token_log: dict[str, deque[tuple[float, int]]] = {e: deque() for e in ENDPOINTS}
        self._token_sum: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        # Orders every request's start and end on the one event loop: clock readings can tie,
        # these never do, so concurrency over any subset of `received` is exact.
        self.sequence = 0

    def configure(self, data: Mapping[str, Any]) -> None:
        updated = self.config.copy()
        updated.update(data)  # raises before anything changes if the payload is invalid
        if "hold" in data:
            # Replaced holds must not strand the requests parked on them.
            self.release_all()
            self._holds = [_ActiveHold(rule) for rule in updated.hold]
        self.config = updated
        if "seed" in data:
            self.rng.seed(self.config.seed)

    def reset(self, data: Mapping[str, Any] | None = None) -> None:
        """Clear stats, failures, holds and limits; latency/jitter/seed/record stay unless
        given."""
        self.release_all()
        self.config.failures = []
        self.config.hold = []
        self.config.limits = {}
        self._clear_stats()
        self.rng.seed(self.config.seed)  # same seed → same jitter sequence after every reset
        if data:
            self.configure(data)

    # ---------------------------------------------------------------- flight

    def enter(self, endpoint: str) -> None:
        self.requests[endpoint] += 1
        self.in_flight[endpoint] += 1
        self.in_flight_total += 1
        if self.in_flight[endpoint] > self.peak_in_flight[endpoint]:
            self.peak_in_flight[endpoint] = self.in_flight[endpoint]
        if self.in_flight_total > self.peak_in_flight_total:
            self.peak_in_flight_total = self.in_flight_total

    def exit(self, endpoint: str) -> None:
        self.in_flight[endpoint] -= 1
        self.in_flight_total -= 1

    def latency_ms(self, endpoint: str) -> float:
        """Endpoint jitter > endpoint fixed latency > default jitter > default latency."""
        jitter, fixed = self.config.jitter_ms, self.config.latency_ms
        if endpoint in jitter:
            return self.rng.uniform(*jitter[endpoint])
        if endpoint in fixed:
            return fixed[endpoint]
        if "default" in jitter:
            return self.rng.uniform(*jitter["default"])
        return fixed.get("default", 0.0)

    # ---------------------------------------------------------------- rate limits

    def over_in_flight(self, endpoint: str) -> bool:
        """More requests in flight on `endpoint` (this one counted) than its limit allows."""
        rule = self.config.limits.get(endpoint)
        if rule is None or rule.max_in_flight is None:
            return False
        if self.in_flight[endpoint] > rule.max_in_flight:
            self.throttled[endpoint] += 1
            return True
        return False

    def take_tokens(self, endpoint: str, tokens: int) -> bool:
        """Count an answer of `tokens`; False (and nothing counted) when it would pass the
        endpoint's tokens per window."""
        rule = self.config.limits.get(endpoint)
        window = rule.window_s if rule is not None else 60.0
        now = time.monotonic()
        log, total = self._token_log[endpoint], self._token_sum[endpoint]
        while log and log[0][0] <= now - window:
            total -= log.popleft()[1]
        self._token_sum[endpoint] = total
        if rule is not None and rule.tokens_per_window is not None:
            if total + tokens > rule.tokens_per_window:
                self.throttled[endpoint] += 1
                return False
        log.append((now, tokens))
        self._token_sum[endpoint] = total + tokens
        self.tokens[endpoint] += tokens
        self.peak_tokens_in_window[endpoint] = max(
            self.peak_tokens_in_window[endpoint], total + tokens
        )
        return True

    def retry_after(self, endpoint: str) -> str | None:
        rule = self.config.limits.get(endpoint)
        return rule.retry_after if rule is not None else None

    # ---------------------------------------------------------------- recording

    def record_start(self, call: Call) -> dict[str, Any] | None:
        if not self.config.record:
            return None
        entry = {
            "endpoint": call.endpoint,
            "method": call.method,
            "path": call.path,
            "query": call.query,
            "raw_query": call.raw_query,
            "json": call.json,
            "prompt": call.prompt,
            "text": call.text,
            "authorization": call.authorization,
            "started": time.time(),
            "start_seq": self.next_seq(),
            "end_seq": None,
            "finished": None,
            "latency_ms": None,
            "status": None,
        }
        self.received.append(entry)
        return entry

    def next_seq(self) -> int:
        self.sequence += 1
        return self.sequence

    # ---------------------------------------------------------------- failures

    def take_failure(self, call: Call) -> FailureRule | None:
        """First matching failure rule with budget left (consuming one use of it)."""
        for rule in self.config.failures:
            if not _applies(rule.endpoint, call.endpoint) or rule.remaining == 0:
                continue
            if not matches(rule.match, call):
                continue
            rule.seen += 1
            if rule.seen <= rule.after:
                continue
            now = time.monotonic()
            if rule.started is None:
                rule.started = now
            if rule.for_s is not None and now - rule.started >= rule.for_s:
                continue  # the outage window is over
            if rule.rate < 1 and self.rng.random() >= rule.rate:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            self.injected[call.endpoint] += 1
            return rule
        return None

    # ---------------------------------------------------------------- holds

    async def wait_hold(self, call: Call) -> None:
        for hold in self._holds:
            if _applies(hold.rule.endpoint, call.endpoint) and matches(hold.rule.match, call):
                hold.waiting += 1
                self.held[call.endpoint] += 1
                try:
                    await hold.event.wait()
                finally:
                    hold.waiting -= 1
                    self.held[call.endpoint] -= 1
                return

    def release(self, endpoint: str | None = None, match: Mapping[str, Any] | None = None) -> int:
        """Lift holds with this endpoint/match (None = any); returns requests woken."""
        woken = 0
        kept: list[_ActiveHold] = []
        for hold in self._holds:
            if (endpoint is None or hold.rule.endpoint == endpoint) and (
                match is None or hold.rule.match == dict(match)
            ):
                woken += hold.waiting
                hold.event.set()
            else:
                kept.append(hold)
        self._holds = kept
        self.config.hold = [hold.rule for hold in kept]
        return woken

    def release_all(self) -> int:
        return self.release()

    # ---------------------------------------------------------------- stats

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "in_flight": dict(self.in_flight),
            "in_flight_total": self.in_flight_total,
            "peak_in_flight": dict(self.peak_in_flight),
            "peak_in_flight_total": self.peak_in_flight_total,
            "held": dict(self.held),
            "injected": dict(self.injected),
            "throttled": dict(self.throttled),
            "tokens": dict(self.tokens),
            "peak_tokens_in_window": dict(self.peak_tokens_in_window),
            "received": list(self.received),
        }
