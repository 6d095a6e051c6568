"""Provider governance: caps, rates and AIMD per provider, shared by every run on a loop.

A provider key is the upstream host as written in the URL, before host overrides
(`api.clearbit.com`); an Agent's call also counts against `host/model`
(`api.openai.com/gpt-4o-mini`), the key its adaptive limit lives on (`provider_key`). Every
outbound call of a block goes through `ProviderRegistry.call` (fetch.py for the HTTP block,
the Agent and Slack blocks themselves), so two runs started together share one budget
instead of each getting the provider's whole cap.

Per key (KLYNTOS_PROVIDER_LIMITS, parsed in engine/core/provider_settings.py with the
breaker's policy and the settings every key shares): a concurrency cap, requests per minute
and tokens per minute. A call waits until every key it counts against lets it through (in
the order below); it never holds anything else while it waits (the loop slot it runs in was
taken before, and it takes no loop slot after), so nested loops cannot deadlock on it, and
the wait is not part of the attempt's timeout.

Runs share a key fairly (`RunShare`: each run's weight, priority and owner, `StepTag.share`).
A key's waiting calls queue per run, first come first served within a run (so a loop's item
`priority`, which orders the items it starts, orders its calls too); when the key can let one
through, the owner chosen is the one new to the key (its burst, below), then with the fewest
permits in flight, then the fewest calls let through recently: owners share a key equally,
whatever weight or priority their runs were given. Among that owner's runs, the run chosen
is, in order: the highest priority (a run's `priority`; but a call
that has waited `priority_aging` seconds competes as an equal of the highest priority
waiting, so no run's call waits longer than that behind higher-priority runs, whatever the
gap; 0 is strict priority); then a run new to the key (fewer calls let through there
lately than `new_run_burst` × the key's concurrency limit: like a scheduler's credit to a
task that just woke, a bounded burst); then the fewest permits in flight on the key per
unit of weight; then the fewest calls let through recently per unit of weight (a count that
halves every `window`: what shares a rate when calls are too short to overlap); then the
oldest waiting call. A 10-item run started beside a 1,000-item one therefore takes the next
permits that free until it has had the key's limit's worth, then holds its weight's share,
instead of queueing behind the big run's backlog.

Rates are windows, not buckets (engine/core/rate_window.py): a call's share (1 request, its
tokens) counts from the moment it is let through until `window` seconds after it ended. LLM
tokens are reserved from an estimate and settled from the answer's `usage`.

AIMD runs on the call's most specific key: it starts at `start` × the cap, adds one slot per
window of successes (`limit` successes) while the limit is in use, halves on a 429 or a
timeout (never under `floor`), remembers the limit that failed and stays under it for
`probe_seconds`, shrinks by a tenth on other 5xx and connection failures, and honours
Retry-After for everyone on the key. 4xx answers (the item's own data) count for nothing.
`x-ratelimit-*` headers tighten the configured rates when they say less. A call's outcome and
its headers' numbers are read by engine/core/provider_answers.py.

The breaker (its policy: KLYNTOS_BREAKER, `BreakerPolicy`; its state per key:
engine/core/breaker.py) also lives on the call's most specific key: over its last `window`
counted calls (5xx, 429, timeouts and connection failures count as failed, successes as
succeeded, 4xx and cancels not at all; a 429 on a call let through before AIMD's last cut is
that cut's, not counted), once `min_calls` were counted and at least `failure_rate` of them
failed, it opens. Open, it lets no call through: calls wait (none
is failed by it), each waiting step hears `step.waiting` with the reason and each run with a
waiting step hears `provider.breaker` (state, reason, mode). In auto mode it stays open for a
cool-down that doubles on each trip up to `cool_down_max`, then lets `probes` calls through
(half-open) and closes when they all succeed, or opens again on a failed one; in manual mode
it stays open until `resume(key)`. An auto breaker not closed for `give_up_after` seconds
since it first opened (or this process joined another's open breaker) gives up: while it is
open the calls it holds back fail with `ProviderUnavailable` (final, never retried) instead
of waiting, and so do new ones at once, until it closes (after each cool-down its probes
still go through, the calls after them waiting for their answer); the runs that heard it
hear `provider.breaker` with state `gave_up`, so they are paused no more. A loop's
`circuit_breaker` sets the policy for the calls its items make (`BREAKER_POLICY`).

The `provider.limit` and `provider.breaker` events a run hears are folded into its
`providers` state, and read back, by engine/core/provider_state.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import math
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple, Protocol

from engine.core.breaker import Breaker
from engine.core.errors import BlockError, ProviderUnavailable, TransientError, parse_retry_after
from engine.core.provider_answers import (
    CASELESS_HEADERS,
    FAILED_OUTCOMES,
    OUTCOME_WORDS,
    RATE_HEADERS,
    header_duration,
    header_number,
    outcome_of,
)
from engine.core.provider_settings import (
    BreakerPolicy,
    KeyLimits,
    ProviderSettings,
    policy_dict,
    provider_key,
)
from engine.core.rate_window import RateWindow
from engine.core.retry import ATTEMPT_STATE, ATTEMPT_TIMEOUT
from engine.core.slots import CLUSTER_REASON, Slots, hold_caps

__all__ = [
    "BREAKER_POLICY",
    "CURRENT_STEP",
    "ProviderCall",
    "ProviderPaused",
    "ProviderRegistry",
    "OwnerShare",
    "RunShare",
    "StepTag",
    "forget_registry",
    "owner_share",
    "run_share",
    "registry_for_loop",
]


class BreakerShare(Protocol):
    """Where a process tells the other processes of what it decided for a provider, and hears
    theirs (engine/breaker_sharing.py, with workers); called on the loop. `publish`: a breaker
    change; `publish_limit`: an adaptive limit it set; `wake`: a key's rate wants more than
    this process was granted (`ProviderRegistry.rate_plan`, `rate_granted`)."""

    def publish(self, key: str, change: dict[str, Any]) -> None: ...

    def publish_limit(self, key: str, change: dict[str, Any]) -> None: ...

    def wake(self) -> None: ...


class _Bus(Protocol):
    def emit(self, type_: Any, **data: Any) -> Any: ...


@dataclass(eq=False)
class OwnerShare:
    """The runs of one owner (one object per owner in a process: its identity is the
    owner's). A key is shared between owners first, equally, whatever their runs' weight
    and priority: those only order one owner's runs between themselves."""

    owner: str = ""


# The owner of runs that have none (tests, the core embedded without accounts).
NO_OWNER = OwnerShare()

_owners: weakref.WeakValueDictionary[str, OwnerShare] = weakref.WeakValueDictionary()


def owner_share(owner: str) -> OwnerShare:
    """The share of owner `owner` in this process ('' : `NO_OWNER`); kept while a run of
    theirs holds it."""
    if not owner:
        return NO_OWNER
    share = _owners.get(owner)
    if share is None:
        share = _owners[owner] = OwnerShare(owner)
    return share


@dataclass(eq=False)
class RunShare:
    """A run's claim on the providers it shares with other runs (one object per run: its
    identity is the run's): `weight` (a run with weight 2 gets twice the permits of a run
    of the same owner with weight 1 when both wait), `priority` (higher first among the
    owner's runs) and its `owner` (owners share a key equally, whatever their runs say)."""

    weight: float = 1.0
    priority: int = 0
    owner: OwnerShare = NO_OWNER


# The share of calls made outside any run's step (tests, a block tested alone).
NO_RUN = RunShare()

_shares: weakref.WeakValueDictionary[str, RunShare] = weakref.WeakValueDictionary()


def run_share(run: str, weight: float = 1.0, priority: int = 0, owner: str = "") -> RunShare:
    """The share of run `run` in this process: the executors of one run (its coordinator and
    the chunks of its loops a worker runs) count as one run; kept while one holds it."""
    share = _shares.get(run)
    if share is None:
        share = _shares[run] = RunShare(weight, priority, owner_share(owner))
    return share


class StepTag(NamedTuple):
    """The step a call belongs to (set by the executor for each attempt): who hears that
    it waits and what the provider's limit is, and the run's share of the providers. A named
    tuple (one per attempt): immutable, and built in half a frozen dataclass's time."""

    item: str
    block: str
    name: str
    bus: _Bus
    share: RunShare = NO_RUN


CURRENT_STEP: contextvars.ContextVar[StepTag | None] = contextvars.ContextVar(
    "provider_step", default=None
)


# Workers: the least part of a key's rate a process asks for at once (a grant serves several
# calls, so a call costs no statement of its own).
GRANT_SHARE = 0.1

# The policy of the calls made in this context (a loop's `circuit_breaker`), over the setting.
BREAKER_POLICY: contextvars.ContextVar[BreakerPolicy | None] = contextvars.ContextVar(
    "breaker_policy", default=None
)


# --- state per key -------------------------------------------------------------------------


class _KeyState:
    def __init__(self, key: str, limits: KeyLimits, settings: ProviderSettings) -> None:
        self.key = key
        self.in_flight = 0
        self.paused_until = 0.0
        self.requests = RateWindow()
        self.tokens = RateWindow()
        # Per-minute rates a provider's headers announced (they only ever tighten).
        self.header_rpm: float | None = None
        self.header_tpm: float | None = None
        self.epoch = 0
        self.successes = 0
        # Bumped whenever the adaptive limit is in use (full, or a call queued for it): a
        # call that ends after a bump since it began saw the limit in use.
        self.full = 0
        self.ceiling: int | None = None
        self.ceiling_at = 0.0
        # Learned from answers: the most tokens per prompt character, recent completions.
        self.tokens_per_char = 0.25
        self.completions: deque[int] = deque(maxlen=50)
        self.breaker = Breaker()
        # Workers: what this process was granted of the key's requests and tokens per window
        # (its share of the cluster's rates), what its waiting calls lack beyond that, how
        # many processes share the key when others want more than they got (they and this
        # one; else 1), and what the processes that want no more hold (not theirs to share).
        self.held = [0.0, 0.0]
        self.short = [0.0, 0.0]
        self.peers = 1
        self.idle = [0.0, 0.0]
        # Each run's and each owner's use of the key (fair share); forgotten with them.
        self.shares: weakref.WeakKeyDictionary[RunShare, _Use] = weakref.WeakKeyDictionary()
        self.owners: weakref.WeakKeyDictionary[OwnerShare, _Use] = weakref.WeakKeyDictionary()
        # The last run's two uses: nearly every call on a key comes from the run before it,
        # and the weak dictionaries' lookups are Python code. Weak too: a run's use is still
        # forgotten with the run.
        self._last: tuple[weakref.ref[RunShare], _Use, _Use] | None = None
        self.apply(limits, settings)

    def uses(self, share: RunShare) -> tuple[_Use, _Use]:
        """`share`'s use of the key and its owner's."""
        last = self._last
        if last is not None and last[0]() is share:
            return last[1], last[2]
        run_use, owner_use = self.use(share), self.owner_use(share.owner)
        self._last = (weakref.ref(share), run_use, owner_use)
        return run_use, owner_use

    def use(self, share: RunShare) -> _Use:
        use = self.shares.get(share)
        if use is None:
            use = self.shares[share] = _Use()
        return use

    def owner_use(self, owner: OwnerShare) -> _Use:
        use = self.owners.get(owner)
        if use is None:
            use = self.owners[owner] = _Use()
        return use

    def apply(self, limits: KeyLimits, settings: ProviderSettings) -> None:
        self.limits = limits
        self.cap = limits.concurrency
        self.floor = max(1, limits.floor or settings.aimd_floor)
        start = limits.start or settings.aimd_start
        # The adaptive limit; None until a key without a cap meets its first 429.
        self.limit: int | None = (
            None
            if self.cap is None
            else max(min(self.floor, self.cap), math.ceil(self.cap * start))
        )
        self.ceiling = None
        self.successes = 0

    def concurrency(self) -> int | None:
        return self.limit

    def configured(self) -> bool:
        """Whether the key has settings of its own (KLYNTOS_PROVIDER_LIMITS): only those
        share their adaptive limit between workers."""
        return self.limits != KeyLimits()

    def fair(self, kind: int, rate: float) -> float:
        """Workers: this process's fair share of `rate` (`kind` 0: requests, 1: tokens)
        while other processes want more than they got: what the processes that want no more
        leave, over those that do and this one; the whole rate when nobody else wants."""
        if self.peers <= 1:
            return rate
        return max(0.0, rate - self.idle[kind]) / self.peers

    def rpm(self, window: float) -> float | None:
        return _tighter(self.limits.rpm, self.header_rpm, window)

    def tpm(self, window: float) -> float | None:
        return _tighter(self.limits.tpm, self.header_tpm, window)

    def snapshot(self, now: float, window: float) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "cap": self.cap,
            "in_flight": self.in_flight,
            "requests_in_window": self.requests.used(now),
            "tokens_in_window": self.tokens.used(now),
            "rpm": self.rpm(window),
            "tpm": self.tpm(window),
            "paused_for": max(0.0, self.paused_until - now),
            "breaker": self.breaker.state,
            "granted": {"requests": self.held[0], "tokens": self.held[1]},
        }


def _tighter(configured: int | None, announced: float | None, window: float) -> float | None:
    """The rate for one window: the setting (per window: the window is what "a minute"
    means), or less when the provider's headers (per real minute) said less."""
    if announced is None:
        return float(configured) if configured else None
    values = [float(configured)] if configured else []
    if announced is not None:
        values.append(max(1.0, announced * window / 60.0))
    return min(values) if values else None


@dataclass(slots=True)
class _Use:
    """One run's use of one key: its permits in flight, and the calls let through recently
    (a count halving every window, as of `at`)."""

    in_flight: int = 0
    served: float = 0.0
    at: float = 0.0

    def recent(self, now: float, half_life: float) -> float:
        if self.served and now > self.at:
            self.served *= 0.5 ** ((now - self.at) / half_life)
        self.at = now
        return self.served


@dataclass(slots=True)
class _Blocked:
    reason: str  # breaker | gave-up | concurrency | requests/min | tokens/min | retry-after
    key: str
    until: float | None  # when it may pass; None: when a call in flight ends


@dataclass(slots=True)
class Permit:
    states: tuple[_KeyState, ...]
    tokens: int
    epoch: int
    in_flight: int  # on the adaptive key, this call included, when it was let through
    full: int  # the adaptive key's `full` count when it was let through
    policy: BreakerPolicy | None = None  # the call's breaker policy (None: the setting)
    generation: int = 0  # the breaker's generation when it was let through
    probe: bool = False  # one of a half-open breaker's probe calls
    share: RunShare = NO_RUN  # the run it counts for
    # Its run's and owner's uses of each key, counted while it is in flight.
    uses: list[_Use] = field(default_factory=list)


@dataclass(slots=True)
class _Waiter:
    states: tuple[_KeyState, ...]
    tokens: int
    future: asyncio.Future[Permit]
    tag: StepTag | None = None
    policy: BreakerPolicy | None = None
    or_next: bool = False  # give up (ProviderPaused) rather than wait for a paused key
    share: RunShare = NO_RUN
    since: float = 0.0  # when it began to wait (loop time)
    seq: int = 0  # arrival order on the registry


class _Queue:
    """One key's waiting calls: first come first served within each run; which run goes
    next is `ProviderRegistry._next`'s choice (fair share and priority)."""

    __slots__ = ("runs",)

    def __init__(self) -> None:
        self.runs: dict[RunShare, deque[_Waiter]] = {}

    def __bool__(self) -> bool:
        return bool(self.runs)

    def __iter__(self) -> Iterator[_Waiter]:
        """Every waiting call, oldest first."""
        return iter(sorted((w for q in self.runs.values() for w in q), key=lambda w: w.seq))

    def append(self, waiter: _Waiter) -> None:
        self.runs.setdefault(waiter.share, deque()).append(waiter)

    def heads(self) -> list[_Waiter]:
        """The oldest waiting call of each run (calls cancelled while waiting are dropped)."""
        heads = []
        for share in list(self.runs):
            queue = self.runs[share]
            while queue and queue[0].future.done():
                queue.popleft()
            if queue:
                heads.append(queue[0])
            else:
                del self.runs[share]
        return heads

    def oldest(self) -> _Waiter | None:
        heads = self.heads()
        return min(heads, key=lambda w: w.seq) if heads else None

    def remove(self, waiter: _Waiter) -> None:
        """`waiter`, the head of its run's queue, leaves."""
        queue = self.runs[waiter.share]
        queue.popleft()
        if not queue:
            del self.runs[waiter.share]


class ProviderPaused(Exception):
    """A call that may go elsewhere (an Agent's failover) found its provider paused (breaker,
    Retry-After, rates) instead of waiting for it."""


# Why a call is refused rather than held: its breaker gave up on the provider.
GAVE_UP = "gave-up"
# Why a call waits that a failover does not wait for.
_PAUSED_REASONS = frozenset({"breaker", GAVE_UP, "retry-after", "requests/min", "tokens/min"})


# --- the registry --------------------------------------------------------------------------


class ProviderRegistry:
    """Every provider key's limits and state on one event loop."""

    def __init__(self, settings: ProviderSettings | None = None) -> None:
        self.settings = settings or ProviderSettings()
        # Workers: caps held across processes too (engine/core/slots.py, `ProviderCall`).
        self.cluster: Slots | None = None
        # Workers: breakers opened and closed together in every process (`apply_shared`).
        self.sharing: BreakerShare | None = None
        self._applying_shared = False
        self._states: dict[str, _KeyState] = {}
        self._host_keys: dict[str, str] = {}
        self._queues: dict[str, _Queue] = {}
        self._arrivals = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        # The limit each run's bus last heard per key, so each run hears it once per change.
        self._heard: weakref.WeakKeyDictionary[Any, dict[str, int | None]] = (
            weakref.WeakKeyDictionary()
        )

    def configure(self, settings: ProviderSettings) -> None:
        """New settings (a changed setting in tests): keys with new limits start over."""
        if settings == self.settings:
            return
        self.settings = settings
        for key, state in self._states.items():
            limits = self._limits(key)
            if limits != state.limits:
                state.apply(limits, settings)
        self._pump()

    def _limits(self, key: str) -> KeyLimits:
        return self.settings.limits.get(key, KeyLimits())

    def state(self, key: str) -> _KeyState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _KeyState(key, self._limits(key), self.settings)
        return state

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = _now()
        return {k: s.snapshot(now, self.settings.window) for k, s in self._states.items()}

    def call(
        self,
        host: str,
        *,
        model: str | None = None,
        prompt_chars: int = 0,
        max_tokens: int | None = None,
        or_next: bool = False,
    ) -> ProviderCall:
        """One call to `host` (an Agent's: with its model and prompt size), as an async
        context manager: `async with registry.call(host) as call: ... call.observe(...)`.
        `or_next`: raise ProviderPaused instead of waiting for a paused key (a failover has
        somewhere else to go)."""
        states: tuple[_KeyState, ...]
        if model:
            states = (self.state(provider_key(host)), self.state(provider_key(host, model)))
            tokens = self.estimate(states[-1], prompt_chars, max_tokens)
        else:
            states, tokens = (self.state(self._host_key(host)),), 0
        return ProviderCall(self, states, tokens, BREAKER_POLICY.get(), or_next)

    def _host_key(self, host: str) -> str:
        """provider_key(host), remembered: an HTTP block calls the same few hosts."""
        key = self._host_keys.get(host)
        if key is None:
            if len(self._host_keys) >= 1024:
                self._host_keys.clear()
            key = self._host_keys[host] = provider_key(host)
        return key

    def available(self, host: str, model: str | None = None) -> bool:
        """Whether a call to `host` (and `model`) would be let through by its breaker, its
        Retry-After pause and its rates right now (a failover picks the first that is)."""
        keys = [provider_key(host)]
        if model:
            keys.append(provider_key(host, model))
        states = tuple(self._states[k] for k in keys if k in self._states)
        if not states:
            return True
        own = states[-1]
        probing = own.breaker.state != "closed"
        if probing and self._queues.get(own.key):
            return False  # the calls queued there wait for the probes
        blocked = self._blocked(states, 0, _now(), record=False)  # a look: asks for nothing
        if blocked is None:
            return True
        # A slot, or a grant of the cluster's rate, is worth waiting for.
        return blocked.reason in ("concurrency", CLUSTER_REASON) and not probing

    def resume(self, key: str) -> bool:
        """Close `key`'s breaker (a manual one's Resume); False when it was not open."""
        state = self._states.get(provider_key(key))
        if state is None or state.breaker.state == "closed":
            return False
        state.breaker.trips = 0
        self._close(state, _now(), "resumed")
        self._pump()
        return True

    def apply_shared(self, key: str, change: Mapping[str, Any]) -> None:
        """Another process's breaker change for `key` (engine/breaker_sharing.py): `open`
        opens this process's breaker too, with the same policy, reason and end of cool-down
        (so no process keeps calling a provider another found failing); `closed` closes it
        (probes that succeeded there, or a Resume). Told to nobody again."""
        state = self.state(provider_key(key))
        breaker = state.breaker
        self._applying_shared = True
        try:
            if change.get("state") == "open" and breaker.state == "closed":
                try:
                    policy = BreakerPolicy(**(change.get("policy") or {}))
                except TypeError:
                    policy = self.settings.breaker
                now = _now()
                self._open(state, policy, now, str(change.get("reason") or "opened elsewhere"))
                until = change.get("until")  # wall time; None: manual, until a Resume
                if until is not None and policy.mode == "auto":  # the same end of cool-down
                    breaker.until = now + max(0.0, float(until) - time.time())
                breaker.trips = max(breaker.trips, int(change.get("trips") or 1))
                self._adopt_outage_start(breaker, change.get("outage_since"), now)
                self._pump()  # queued calls wake at the end of the cool-down
            elif change.get("state") == "open":  # open here too: the earlier outage start
                if self._adopt_outage_start(breaker, change.get("outage_since"), _now()):
                    self._pump()  # the give-up may come sooner now
            elif change.get("state") == "closed" and breaker.state != "closed":
                self._close(state, _now(), str(change.get("reason") or "closed elsewhere"))
                self._pump()
        finally:
            self._applying_shared = False

    @staticmethod
    def _adopt_outage_start(breaker: Breaker, wall: Any, now: float) -> bool:
        """Take another worker's start of the outage (wall time) when it is earlier than
        this process's: the cluster gives up `give_up_after` from the outage's first start."""
        if wall is None or breaker.outage_since is None:
            return False
        since = now - max(0.0, time.time() - float(wall))
        if since >= breaker.outage_since:
            return False
        breaker.outage_since = since
        return True

    def _share(self, state: _KeyState) -> None:
        """Tell the other processes of a change decided here (not of one heard from them)."""
        if self.sharing is None or self._applying_shared:
            return
        breaker = state.breaker
        until = breaker.until
        self.sharing.publish(
            state.key,
            {
                "state": breaker.state,
                "reason": breaker.reason,
                "trips": breaker.trips,
                "until": None if until is None else time.time() + max(0.0, until - _now()),
                "policy": policy_dict(breaker.policy),
                # The outage's start (wall time): every worker gives up on the same clock.
                "outage_since": None
                if breaker.outage_since is None
                else time.time() - max(0.0, _now() - breaker.outage_since),
            },
        )

    def breaker_changes(self, key: str) -> list[tuple[float, str, str]]:
        """`key`'s breaker's last changes: (time.time(), state, reason), oldest first."""
        state = self._states.get(provider_key(key))
        return list(state.breaker.changes) if state is not None else []

    def breakers(self) -> dict[str, dict[str, Any]]:
        """Every breaker that is not closed: its state, mode and reason."""
        return {
            key: {
                "state": s.breaker.state,
                "mode": s.breaker.policy.mode,
                "reason": s.breaker.reason,
            }
            for key, s in self._states.items()
            if s.breaker.state != "closed"
        }

    def estimate(self, state: _KeyState, prompt_chars: int, max_tokens: int | None) -> int:
        """Tokens to reserve: the prompt at the most tokens per character seen on the key,
        plus `max_tokens`, else the longest recent completion, else the setting."""
        prompt = math.ceil(prompt_chars * state.tokens_per_char)
        if max_tokens:
            completion = max_tokens
        elif state.completions:
            completion = max(state.completions)
        else:
            completion = self.settings.completion_tokens
        return max(1, prompt + completion)

    # -- letting calls through ----------------------------------------------------------

    def grant_now(
        self,
        states: tuple[_KeyState, ...],
        tokens: int = 0,
        policy: BreakerPolicy | None = None,
    ) -> Permit | None:
        """The permit of a call that may start at once (nearly every call), without a
        coroutine; None: it has to wait (`wait_for_permit`). Raises BlockError when `tokens`
        exceed what a key's budget could ever grant."""
        if tokens:
            self._check_fits(states, tokens)
        if self._queues and self._queues.get(states[-1].key):
            return None
        now = _now()
        if self._blocked(states, tokens, now, record=False) is not None:
            return None
        tag = CURRENT_STEP.get()
        return self._grant(states, tokens, policy, NO_RUN if tag is None else tag.share, now)

    async def acquire(
        self,
        states: tuple[_KeyState, ...],
        tokens: int,
        policy: BreakerPolicy | None = None,
        or_next: bool = False,
    ) -> Permit:
        permit = self.grant_now(states, tokens, policy)
        if permit is None:
            permit = await self.wait_for_permit(states, tokens, policy, or_next)
        return permit

    async def wait_for_permit(
        self,
        states: tuple[_KeyState, ...],
        tokens: int,
        policy: BreakerPolicy | None = None,
        or_next: bool = False,
    ) -> Permit:
        """A call `grant_now` could not let through: queued under its key until the pump
        lets it through (fair share, priority), announced as a `step.waiting`."""
        queue = self._queues.get(states[-1].key)
        tag = CURRENT_STEP.get()
        share = tag.share if tag is not None else NO_RUN
        # Asked again, recording what the wait needs (a worker's lacking cluster grant).
        blocked = self._blocked(states, tokens, _now()) if not queue else None
        if blocked is None and queue:
            oldest = queue.oldest()
            if oldest is not None:
                blocked = self._blocked(oldest.states, oldest.tokens, _now())
        if or_next and blocked is not None and blocked.reason in _PAUSED_REASONS:
            raise ProviderPaused(f"{blocked.key}: {blocked.reason}")
        if blocked is not None and blocked.reason == GAVE_UP:
            raise self._unavailable(states[-1], _now())
        future: asyncio.Future[Permit] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(
            states, tokens, future, tag, policy, or_next, share, _now(), next(self._arrivals)
        )
        self._queues.setdefault(states[-1].key, _Queue()).append(waiter)
        states[-1].full += 1
        reason = blocked.reason if blocked else "queued"
        where = blocked.key if blocked else states[-1].key
        self._announce(states[-1], tag)  # the limit it waits under
        if tag is not None:
            if reason == "breaker":
                self._tell_paused(states[-1], tag)
            else:
                tag.bus.emit(
                    "step.waiting",
                    item=tag.item,
                    block=tag.block,
                    name=tag.name,
                    provider=where,
                    reason=reason,
                    message=f"waiting for {where}: {reason}",
                )
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Waiting for a provider is not the attempt's time: hold its timeout meanwhile.
        deadline = ATTEMPT_TIMEOUT.get()
        left = None
        if deadline is not None and deadline.when() is not None and not deadline.expired():
            left = max(0.0, (deadline.when() or 0.0) - started)
            deadline.reschedule(None)
        self._pump()
        try:
            permit = await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(future.result(), "neutral")  # let through as it was cancelled
            else:
                future.cancel()
                self._pump()
            raise
        except ProviderUnavailable:
            _tell_waited(tag, where, loop.time() - started)  # a wait, not the step's work
            raise
        finally:
            if deadline is not None and left is not None and not deadline.expired():
                deadline.reschedule(loop.time() + left)
        _tell_waited(tag, where, loop.time() - started)
        return permit

    def _check_fits(self, states: tuple[_KeyState, ...], tokens: int) -> None:
        for state in states:
            tpm = state.tpm(self.settings.window)
            if tokens and tpm is not None and tokens > tpm:
                raise BlockError(
                    f"this call needs about {tokens} tokens, more than {state.key}'s budget "
                    f"of {tpm:g} tokens per {self.settings.window:g} s "
                    "(KLYNTOS_PROVIDER_LIMITS tpm, or the provider's own limit)"
                )

    def _blocked(
        self, states: tuple[_KeyState, ...], tokens: int, now: float, record: bool = True
    ) -> _Blocked | None:
        """Why a call of `tokens` to `states` cannot start now (None: it can). `record`
        False (a failover's look): a lacking grant of the cluster's rate is not asked for."""
        window = self.settings.window
        own = states[-1]  # the breaker lives on the call's most specific key
        if own.breaker.state != "closed":
            held = self._held_by_breaker(own, now)
            if held is not None:
                return held
        for state in states:
            if state.paused_until > now:
                return _Blocked("retry-after", state.key, state.paused_until)
            limit = state.limit  # concurrency()
            if limit is not None and state.in_flight >= limit:
                return _Blocked("concurrency", state.key, None)
            if not tokens and not state.limits.rpm and state.header_rpm is None:
                continue  # no rate to check (most keys): rpm() would say None
            rpm = state.rpm(window)
            if rpm is not None:
                used = state.requests.used(now)
                if used + 1 > rpm + 1e-9:
                    until = state.requests.free_at(used + 1 - rpm)
                    return _Blocked("requests/min", state.key, until)
                if self.sharing is not None:
                    blocked = self._granted(state, 0, rpm, used, 1, record)
                    if blocked is not None:
                        return blocked
            tpm = state.tpm(window)
            if tokens and tpm is not None:
                used = state.tokens.used(now)
                if used + tokens > tpm + 1e-9:
                    until = state.tokens.free_at(used + tokens - tpm)
                    return _Blocked("tokens/min", state.key, until)
                if self.sharing is not None:
                    blocked = self._granted(state, 1, tpm, used, tokens, record)
                    if blocked is not None:
                        return blocked
        return None

    def _granted(
        self,
        state: _KeyState,
        kind: int,
        rate: float,
        used: float,
        need: float,
        record: bool = True,
    ) -> _Blocked | None:
        """Workers: None when this process's grant of the key's rate (`kind` 0: requests, 1:
        tokens) has room for `need` more. While other processes wait for theirs it spends no
        more than its fair share (`_KeyState.fair`, or one call): past it, the call waits for
        this process's window to free. Short of its grant otherwise, it notes how much and
        wakes the sharing's look to ask for it (unless `record` is False)."""
        fair = max(state.fair(kind, rate), need) if state.peers > 1 else rate
        room = min(state.held[kind], fair)
        if used + need <= room + 1e-9:
            return None
        reason = ("requests/min", "tokens/min")[kind]
        if state.held[kind] >= fair - 1e-9:  # its fair share is spent: its window frees it
            window = (state.requests, state.tokens)[kind]
            return _Blocked(reason, state.key, window.free_at(used + need - room))
        if record:
            state.short[kind] = max(state.short[kind], used + need - state.held[kind])
            if self.sharing is not None:
                self.sharing.wake()
        return _Blocked(CLUSTER_REASON, state.key, None)

    def rate_plan(self) -> list[dict[str, Any]]:
        """Workers (on the loop, for the sharing's look): per key with a rate, what this
        process keeps of its grants and what it asks for more. It keeps at least what its
        windows count now (those calls still count at the provider); it gives back what
        exceeds its fair share when others wait (`peers` > 1), everything when the key is
        idle; it asks for what its waiting calls lack, at least a tenth of the rate at once
        (so a grant serves several calls). What it gives back is taken off here first: a
        grant only grows here after the database granted it, and only shrinks there after
        it shrank here, so the grants of a key never add up to more than its rate."""
        now = _now()
        window = self.settings.window
        plan = []
        for key, state in self._states.items():
            rates = (state.rpm(window), state.tpm(window))
            if rates == (None, None) and not any(state.held):
                continue
            windows = (state.requests, state.tokens)
            keep = [0.0, 0.0]
            ask = [0.0, 0.0]
            for kind, rate in enumerate(rates):
                if rate is None:
                    continue
                used = windows[kind].used(now)
                held = state.held[kind]
                fair = state.fair(kind, rate)
                if state.peers > 1:  # others wait: down to the fair share, or what counts
                    held = min(held, max(used, fair))
                elif not used and key not in self._queues:
                    held = 0.0  # idle: its share goes back
                keep[kind] = min(held, max(used, rate))  # a rate headers lowered since
                short = state.short[kind]
                if short > 0:
                    want = max(short, rate * GRANT_SHARE)
                    if state.peers > 1:
                        want = max(short, min(want, fair - keep[kind]))
                    ask[kind] = max(0.0, min(want, rate - keep[kind]))
            state.short = [0.0, 0.0]
            if keep == state.held and not any(ask):
                continue
            state.held = keep
            plan.append({"key": key, "keep": keep, "ask": ask, "rates": rates})
        return plan

    def rate_granted(
        self,
        key: str,
        got: Sequence[float],
        peers: int,
        idle: Sequence[float] = (0.0, 0.0),
    ) -> None:
        """Workers: the database granted `got` more of `key`'s requests and tokens (nothing,
        when others hold the rate; less than nothing, when this process's grant had expired
        and others took part of it), `peers` processes share it now (the others that want
        more, and this one), and those that want no more hold `idle`."""
        state = self._states.get(key)
        if state is None:
            return
        state.held = [max(0.0, state.held[0] + got[0]), max(0.0, state.held[1] + got[1])]
        state.peers = max(1, peers)
        state.idle = [float(idle[0]), float(idle[1])]
        self._pump()

    def rate_peers(
        self, peers: Mapping[str, tuple[int, float, float]], renewed: Iterable[str] | None = None
    ) -> None:
        """Workers: for each key this process holds a grant of, how many processes share it
        (the others that want more, and this one: 1 when nobody else wants) and what those
        that want no more hold of its requests and tokens. `renewed`: the keys whose grant
        was still live and renewed; the others' grants had expired (other processes may
        have taken them), so nothing of them is spent any more."""
        live = None if renewed is None else set(renewed)
        for key, state in self._states.items():
            count, idle_requests, idle_tokens = peers.get(key, (1, 0.0, 0.0))
            state.peers = max(1, count)
            state.idle = [idle_requests, idle_tokens]
            if live is not None and key not in live:
                state.held = [0.0, 0.0]
        self._pump()

    def _grant(
        self,
        states: tuple[_KeyState, ...],
        tokens: int,
        policy: BreakerPolicy | None = None,
        share: RunShare = NO_RUN,
        now: float | None = None,
    ) -> Permit:
        if now is None:
            now = _now()
        window = self.settings.window
        uses: list[_Use] = []
        for state in states:
            state.in_flight += 1
            state.requests.reserved += 1
            state.tokens.reserved += tokens
            for use in state.uses(share):
                use.in_flight += 1
                use.served = use.recent(now, window) + 1
                uses.append(use)
        own = states[-1]
        limit = own.limit  # concurrency()
        full = own.full
        if limit is not None and (own.in_flight >= limit or self._queues.get(own.key)):
            own.full += 1
        self._announce(own, CURRENT_STEP.get())
        breaker = own.breaker
        probe = breaker.state == "half_open"
        if probe:
            breaker.probes_in_flight += 1
        return Permit(
            states,
            tokens,
            own.epoch,
            own.in_flight,
            full,
            policy,
            breaker.generation,
            probe,
            share,
            uses,
        )

    def _next(self, key: str, queue: _Queue, now: float) -> _Waiter | None:
        """The call `key` lets through next. Between owners, equally: the owner new to the
        key, then with the fewest permits in flight, then the fewest calls let through
        recently (no run's weight or priority counts here: an owner cannot take more of a
        shared key by setting them). Between one owner's runs: the highest priority (aged by
        its wait), then new to the key, then the fewest permits in flight per weight, then
        the fewest calls let through recently per weight; then the oldest."""
        heads = queue.heads()
        if not heads:
            return None
        if len(heads) == 1:
            return heads[0]
        state = self._states.get(key)
        aging = self.settings.priority_aging
        half_life = self.settings.window
        # A call waiting `aging` seconds competes at the highest priority its owner has
        # waiting (never above it: runs of one priority still share by weight however long
        # they waited).
        top: dict[OwnerShare, int] = {}
        for waiter in heads:
            owner = waiter.share.owner
            top[owner] = max(top.get(owner, waiter.share.priority), waiter.share.priority)

        limit = state.concurrency() if state is not None else None
        burst = self.settings.new_run_burst * limit if limit else 0.0

        def usage(use: _Use | None) -> tuple[int, float, bool]:
            in_flight = use.in_flight if use is not None else 0
            recent = use.recent(now, half_life) if use is not None else 0.0
            return in_flight, recent, recent + 0.5 < burst  # new: its first calls go first

        def rank(waiter: _Waiter) -> tuple[Any, ...]:
            share = waiter.share
            owner_in, owner_recent, owner_new = usage(
                state.owners.get(share.owner) if state is not None else None
            )
            priority = float(share.priority)
            highest = top[share.owner]
            if aging > 0 and priority < highest and now - waiter.since >= aging:
                priority = float(highest)
            in_flight, recent, new = usage(state.shares.get(share) if state is not None else None)
            weight = share.weight if share.weight > 0 else 1.0
            return (
                0 if owner_new else 1,
                owner_in,
                owner_recent,
                -priority,
                0 if new else 1,
                in_flight / weight,
                recent / weight,
                waiter.seq,
            )

        return min(heads, key=rank)

    def _pump(self) -> None:
        """Let waiting calls through while they fit, each key's next chosen by fair share and
        priority (`_next`); set a timer for the earliest moment a blocked one may fit by
        time alone."""
        if not self._queues:
            return  # nobody waits: nothing to let through, no moment to wake for
        now = _now()
        wake = math.inf
        for key in list(self._queues):
            queue = self._queues[key]
            while queue:
                head = self._next(key, queue, now)
                if head is None:
                    break
                try:
                    self._check_fits(head.states, head.tokens)  # headers may have tightened
                except BlockError as exc:
                    queue.remove(head)
                    head.future.set_exception(exc)
                    continue
                blocked = self._blocked(head.states, head.tokens, now)
                if blocked is not None and head.or_next and blocked.reason in _PAUSED_REASONS:
                    queue.remove(head)  # it has somewhere else to go
                    head.future.set_exception(ProviderPaused(f"{blocked.key}: {blocked.reason}"))
                    continue
                if blocked is not None and blocked.reason == GAVE_UP:
                    queue.remove(head)  # its breaker gave up on the provider: it fails now
                    head.future.set_exception(self._unavailable(head.states[-1], now))
                    continue
                if blocked is not None:
                    if blocked.until is not None:
                        wake = min(wake, blocked.until)
                    break
                queue.remove(head)
                head.future.set_result(
                    self._grant(head.states, head.tokens, head.policy, head.share, now)
                )
            if not queue:
                del self._queues[key]
        if wake < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            loop = asyncio.get_running_loop()
            self._timer_at = wake
            self._timer = loop.call_at(wake, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self._pump()

    # -- what happened --------------------------------------------------------------------

    def release(
        self,
        permit: Permit,
        outcome: str,
        *,
        used_tokens: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """The call ended: free its slot, count its share in the windows, adapt."""
        now = _now()
        until = now + self.settings.window
        in_flight = max(permit.in_flight, permit.states[-1].in_flight)  # this call included
        window = self.settings.window
        for use in permit.uses:
            use.in_flight -= 1
        for state in permit.states:
            state.in_flight -= 1
            state.requests.reserved -= 1
            state.tokens.reserved -= permit.tokens
            # Shares are remembered only where a rate needs them (memory follows the rates).
            limits = state.limits
            if (limits.rpm or state.header_rpm is not None) and state.rpm(window) is not None:
                state.requests.add(until, 1)
            if (limits.tpm or state.header_tpm is not None) and state.tpm(window) is not None:
                state.tokens.add(until, permit.tokens if used_tokens is None else used_tokens)
            if retry_after is not None and retry_after > 0:
                pause = min(retry_after, self.settings.max_pause)
                state.paused_until = max(state.paused_until, now + pause)
        # A 429 on a call let through before AIMD's last cut is the overload that cut already
        # answered (a burst of our own concurrency): AIMD's to handle, not the breaker's.
        stale = outcome == "throttled" and permit.epoch != permit.states[-1].epoch
        self._adapt(permit, outcome, now, in_flight)
        if not stale:
            self._count(permit, outcome, now)
        for state in permit.states:
            self._forget_if_idle(state, now)
        self._pump()

    def _forget_if_idle(self, state: _KeyState, now: float) -> None:
        """A key with no settings and nothing learned is dropped when idle: a workflow
        calling each lead's own website must not keep a state per site."""
        if (
            state.in_flight == 0
            and state.limit is None
            and state.limits == KeyLimits()
            and state.header_rpm is None
            and state.header_tpm is None
            and state.paused_until <= now
            and not state.completions
            and state.breaker.pristine()
            and state.key not in self._queues
            and self._states.get(state.key) is state
        ):
            del self._states[state.key]

    def _adapt(self, permit: Permit, outcome: str, now: float, in_flight: int) -> None:
        state = permit.states[-1]
        before = state.limit
        reason = ""
        if outcome == "ok":
            if state.limit is None or state.full == permit.full:
                return  # the limit was not in use while this call ran: it teaches nothing
            state.successes += 1
            if state.successes < state.limit:
                return
            state.successes = 0
            if state.cap is not None and state.limit >= state.cap:
                return
            if (
                state.ceiling is not None
                and state.limit >= state.ceiling
                and now - state.ceiling_at < self.settings.probe_seconds
            ):
                return
            state.limit += 1
            reason = "a window of successes"
        elif outcome in ("throttled", "timeout", "server_error", "unreachable"):
            if permit.epoch != state.epoch:
                return  # let through before the last cut: that cut already counted it
            current = state.limit if state.limit is not None else in_flight
            if outcome in ("throttled", "timeout"):
                # What failed is more than the provider takes: stay under it for a while. A
                # limit the workers share is the cluster's: what failed is the calls of all of
                # them at it, not this process's (`in_flight`, a part of them).
                failed_at = state.limit if self._shares_limit(state) else None
                state.ceiling = max(state.floor, (failed_at or in_flight) - 1)
                state.ceiling_at = now
                state.limit = max(state.floor, min(current // 2, state.ceiling))
                reason = "429" if outcome == "throttled" else "timeout"
            else:
                state.limit = max(state.floor, min(current - 1, int(current * 0.9)))
                reason = "5xx" if outcome == "server_error" else "unreachable"
            state.epoch += 1
            state.successes = 0
        else:
            return
        if state.limit != before:
            self._announce(state, CURRENT_STEP.get(), reason)
            cut = before is None or state.limit < before
            failed = reason in ("429", "timeout")
            self._share_limit(state, cut, state.ceiling if failed else None)

    def _shares_limit(self, state: _KeyState) -> bool:
        """Workers: whether `state`'s adaptive limit is the cluster's (a key with settings:
        a key met only by chance, a lead's own website, keeps its limit to this process and
        writes no row)."""
        return self.sharing is not None and state.configured()

    def _share_limit(self, state: _KeyState, cut: bool, ceiling: int | None) -> None:
        """Workers: tell the other processes of an adaptive limit decided here: a cut (with
        the limit that failed, on a 429 or a timeout), or a step up."""
        sharing = self.sharing
        if sharing is None or not state.configured() or self._applying_shared:
            return
        if state.limit is None:
            return
        sharing.publish_limit(state.key, {"limit": state.limit, "cut": cut, "ceiling": ceiling})

    def apply_limit(self, key: str, limit: int, ceiling: int | None, cut_age: float | None) -> None:
        """Another process's adaptive limit for `key` (engine/breaker_sharing.py): this
        process's limit becomes it (the cluster slots of the key are held under it too), a
        cut like one decided here (calls let through before it count for nothing, the limit
        that failed is a ceiling for `probe_seconds` since the cut, even when the limit is the
        same here already). Told to nobody again. Keys without settings here are not shared
        (a row of one is ignored)."""
        key = provider_key(key)
        if self._limits(key) == KeyLimits():
            return
        state = self.state(key)
        now = _now()
        if ceiling is not None and cut_age is not None:
            state.ceiling = max(state.floor, ceiling)
            state.ceiling_at = now - max(0.0, cut_age)
        # Within this process's own cap and floor (settings may differ between workers).
        limit = max(state.floor, limit if state.cap is None else min(state.cap, limit))
        if state.limit == limit:
            return
        if state.limit is None or limit < state.limit:
            state.epoch += 1  # a 429 of a call let through before is that cut's
        state.limit = limit
        state.successes = 0
        self._pump()

    # -- the breaker ----------------------------------------------------------------------

    def _count(self, permit: Permit, outcome: str, now: float) -> None:
        """What the breaker of the call's most specific key makes of its outcome."""
        state = permit.states[-1]
        breaker = state.breaker
        if permit.generation != breaker.generation:
            return  # let through before the breaker last changed: it counts for nothing
        if permit.probe:
            breaker.probes_in_flight -= 1
        if outcome != "ok" and outcome not in FAILED_OUTCOMES:
            return  # a 4xx, a cancel: the item's own business
        failed = outcome in FAILED_OUTCOMES
        if breaker.state == "half_open":
            if not permit.probe:
                return
            if failed:
                self._open(
                    state, breaker.policy, now, f"a probe call failed ({OUTCOME_WORDS[outcome]})"
                )
            else:
                breaker.probes_ok += 1
                if breaker.probes_ok >= breaker.policy.probes:
                    self._close(state, now, f"{breaker.probes_ok} probe calls succeeded")
            return
        policy = permit.policy or self.settings.breaker
        if breaker.state != "closed" or policy.mode == "off":
            return
        breaker.outcomes.append(failed)
        if not failed:
            return
        bad, counted = breaker.counted(policy.window)
        if counted >= policy.min_calls and bad / counted >= policy.failure_rate - 1e-9:
            self._open(state, policy, now, f"{bad} of {counted} calls failed")

    def _open(self, state: _KeyState, policy: BreakerPolicy, now: float, reason: str) -> None:
        breaker = state.breaker
        if breaker.state == "closed":
            breaker.outage_since = now  # the give-up clock runs until it closes
            if now - breaker.closed_at >= policy.cool_down_max:
                breaker.trips = 0  # closed long enough: the next cool-down starts short again
        breaker.trips += 1
        cool_down = min(policy.cool_down * 2 ** (breaker.trips - 1), policy.cool_down_max)
        breaker.since = now
        breaker.policy = policy
        breaker.enter("open", reason, now + cool_down if policy.mode == "auto" else None)
        self._share(state)
        self._tell_all(state)  # runs that heard it before (a probe failed)
        # Every step queued on the key waits for it now. A run hears of it when one of its
        # steps waits (the call that opened it, as it tries again): a run whose Agent fails
        # over to its next model is not paused.
        for waiter in self._queues.get(state.key, ()):
            if waiter.future.done():
                continue
            if waiter.or_next:  # it has somewhere else to go
                waiter.future.set_exception(ProviderPaused(f"{state.key}: breaker"))
            elif waiter.tag is not None:
                self._tell_paused(state, waiter.tag)

    def _half_open(self, state: _KeyState, now: float) -> None:
        breaker = state.breaker
        breaker.enter("half_open", breaker.reason)
        self._tell_all(state)

    def _held_by_breaker(self, state: _KeyState, now: float) -> _Blocked | None:
        """Why `state`'s breaker (not closed) holds a call back, if it does: open until its
        cool-down ends (`_held_open`), then half-open: its probe calls go through, the calls
        after them wait for their answer."""
        breaker = state.breaker
        if breaker.state == "open":
            if breaker.until is None or now < breaker.until:
                return self._held_open(state, now)
            self._half_open(state, now)
        if breaker.probes_in_flight + breaker.probes_ok < breaker.policy.probes:
            return None  # a probe call
        return _Blocked("breaker", state.key, None)

    def _held_open(self, state: _KeyState, now: float) -> _Blocked:
        """An open breaker holds a call until its cool-down ends; past its give-up time (auto
        mode, `give_up_after`) it refuses it (GAVE_UP) instead: the call fails at once, so a
        provider down for good does not keep a run paused for ever."""
        breaker = state.breaker
        until = breaker.until
        give_up_at = breaker.give_up_at()
        if give_up_at is not None:
            if now >= give_up_at:
                self._tell_gave_up(state, now)
                return _Blocked(GAVE_UP, state.key, None)
            until = give_up_at if until is None else min(until, give_up_at)  # wake to give up
        return _Blocked("breaker", state.key, until)

    def _unavailable_message(self, state: _KeyState, now: float) -> str:
        """What a call `state`'s breaker gave up on fails with: the provider, how long it has
        been unavailable, and the breaker's last reason."""
        breaker = state.breaker
        down = now - (now if breaker.outage_since is None else breaker.outage_since)
        seconds = f"{down:.0f}" if down >= 10 else f"{down:.1f}"
        return (
            f"{state.key} unavailable for {seconds} s (breaker open: {breaker.reason}); not retried"
        )

    def _unavailable(self, state: _KeyState, now: float) -> ProviderUnavailable:
        return ProviderUnavailable(self._unavailable_message(state, now))

    def _tell_gave_up(self, state: _KeyState, now: float) -> None:
        """The runs paused by `state`'s breaker hear that it gave up: their calls fail now, so
        they wait for it no more (their `paused` clears). They hear of it again only if a step
        of theirs waits on it again."""
        breaker = state.breaker
        if not breaker.heard:
            return
        message = self._unavailable_message(state, now)
        for bus in list(breaker.heard.keys()):
            self._breaker_event(state, None, bus, gave_up=message)
        breaker.heard.clear()

    def _close(self, state: _KeyState, now: float, why: str) -> None:
        breaker = state.breaker
        breaker.closed_at = now
        breaker.outage_since = None
        breaker.enter("closed", why)
        self._share(state)
        self._tell_all(state)
        breaker.heard.clear()

    def paused_message(self, state: _KeyState) -> str:
        """What a step paused by `state`'s breaker says."""
        breaker = state.breaker
        if breaker.state == "half_open":
            return f"paused: {state.key} breaker half-open, probing ({breaker.reason})"
        message = f"paused: {state.key} breaker open: {breaker.reason}"
        if breaker.until is None:
            return f"{message} (manual: waits for Resume)"
        return message

    def _breaker_event(
        self, state: _KeyState, tag: StepTag | None, bus: _Bus, gave_up: str = ""
    ) -> None:
        """`provider.breaker`: the breaker's state, or `gave_up` (with that message) when it
        gave up on the provider: the run waits for it no more."""
        breaker = state.breaker
        cool_down = None if breaker.until is None else round(breaker.until - breaker.since, 3)
        message = self.paused_message(state) if breaker.state != "closed" else ""
        bus.emit(
            "provider.breaker",
            item=tag.item if tag else "",
            block=tag.block if tag else "",
            provider=state.key,
            state="gave_up" if gave_up else breaker.state,
            mode=breaker.policy.mode,
            reason=breaker.reason,
            trips=breaker.trips,
            cool_down=cool_down if breaker.state == "open" and not gave_up else None,
            message=gave_up or message,
        )

    def _tell_paused(self, state: _KeyState, tag: StepTag) -> None:
        """`tag`'s run hears the breaker (once per change), and its step that it waits."""
        breaker = state.breaker
        if breaker.heard.get(tag.bus) != breaker.generation:
            breaker.heard[tag.bus] = breaker.generation
            self._breaker_event(state, tag, tag.bus)
        tag.bus.emit(
            "step.waiting",
            item=tag.item,
            block=tag.block,
            name=tag.name,
            provider=state.key,
            reason="breaker",
            message=self.paused_message(state),
        )

    def _tell_all(self, state: _KeyState) -> None:
        breaker = state.breaker
        for bus in list(breaker.heard.keys()):
            breaker.heard[bus] = breaker.generation
            self._breaker_event(state, None, bus)

    def _announce(self, state: _KeyState, tag: StepTag | None, reason: str = "") -> None:
        """`provider.limit` to the run of `tag` when it has not heard this limit yet."""
        if tag is None or (state.limit is None and state.cap is None):
            return
        heard = self._heard.setdefault(tag.bus, {})
        if state.key in heard and heard[state.key] == state.limit:
            return
        heard[state.key] = state.limit
        tag.bus.emit(
            "provider.limit",
            item=tag.item,
            block=tag.block,
            provider=state.key,
            limit=state.limit,
            cap=state.cap,
            reason=reason or "in use",
        )

    def observe_headers(
        self, states: Iterable[_KeyState], headers: Mapping[str, str], status: int
    ) -> float | None:
        """Tighten rates from `x-ratelimit-*` headers; the Retry-After to honour, if any."""
        # aiohttp's and httpx's headers ignore case already: asked as they are whether there
        # is anything to learn (nearly every answer: no), then read as before (the last of
        # repeated headers wins).
        caseless = isinstance(headers, CASELESS_HEADERS)
        if caseless and status != 429 and status < 500 and headers.keys().isdisjoint(RATE_HEADERS):
            return None
        lowered = {k.lower(): v for k, v in headers.items()}
        now = _now()
        window = self.settings.window
        for state in states:
            for kind, window_of in (("requests", state.requests), ("tokens", state.tokens)):
                limit = header_number(lowered.get(f"x-ratelimit-limit-{kind}"))
                if kind == "requests" and limit is None:
                    limit = header_number(lowered.get("x-ratelimit-limit"))
                if limit is not None and limit > 0:
                    current = state.header_rpm if kind == "requests" else state.header_tpm
                    tighter = limit if current is None else min(current, limit)
                    if kind == "requests":
                        state.header_rpm = tighter
                    else:
                        state.header_tpm = tighter
                remaining = header_number(lowered.get(f"x-ratelimit-remaining-{kind}"))
                reset = header_duration(lowered.get(f"x-ratelimit-reset-{kind}"))
                if kind == "requests" and remaining is None:
                    remaining = header_number(lowered.get("x-ratelimit-remaining"))
                    reset = header_duration(lowered.get("x-ratelimit-reset"))
                rate = state.rpm(window) if kind == "requests" else state.tpm(window)
                if remaining is None or reset is None or rate is None:
                    continue
                # The provider counts more than this window does: count the difference
                # until the provider's own reset.
                missing = (rate - window_of.used(now)) - remaining
                if missing > 0:
                    window_of.add(now + min(reset, self.settings.max_pause), missing)
        if status == 429 or status >= 500:
            return parse_retry_after(lowered.get("retry-after"))
        return None

    def learn_usage(self, state: _KeyState, prompt_chars: int, usage: Mapping[str, Any]) -> int:
        """What an answer's `usage` teaches; returns the tokens the call used."""
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if isinstance(prompt, int) and prompt_chars > 0:
            state.tokens_per_char = max(state.tokens_per_char, prompt / prompt_chars)
        if isinstance(completion, int):
            state.completions.append(completion)
        total = usage.get("total_tokens")
        if isinstance(total, int):
            return total
        return sum(v for v in (prompt, completion) if isinstance(v, int))


class ProviderCall:
    """One call's passage: waits for its keys on enter, releases and adapts on exit.

    The outcome comes from what the block saw (`observe(status, headers)`) and what it
    raised: a timeout or a 429 halves, other 5xx and connection failures shrink gently,
    anything else (a 4xx, a refused address, a cancelled run) counts for nothing.
    """

    def __init__(
        self,
        registry: ProviderRegistry,
        states: tuple[_KeyState, ...],
        tokens: int,
        policy: BreakerPolicy | None = None,
        or_next: bool = False,
    ):
        self.registry = registry
        self.states = states
        self.tokens = tokens
        self.policy = policy
        self.or_next = or_next
        self.status: int | None = None
        self.retry_after: float | None = None
        self.used_tokens: int | None = None
        self._permit: Permit | None = None
        self._cluster: AsyncExitStack | None = None

    @property
    def key(self) -> str:
        return self.states[-1].key

    async def __aenter__(self) -> ProviderCall:
        registry = self.registry
        permit = registry.grant_now(self.states, self.tokens, self.policy)
        if permit is None:
            permit = await registry.wait_for_permit(
                self.states, self.tokens, self.policy, self.or_next
            )
        self._permit = permit
        cluster = registry.cluster
        if cluster is None:
            return self
        caps = []
        for s in self.states:
            # A shared adaptive limit is the cluster's: its cluster slots are held under it.
            cap = s.limit if registry._shares_limit(s) else s.cap
            if cap is not None:
                caps.append((s.key, cap))
        if caps:  # the caps hold across all workers too
            try:
                self._cluster = await hold_caps(
                    cluster, caps, CURRENT_STEP.get(), on_wait=self._limit_in_use
                )
            except BaseException:
                permit, self._permit = self._permit, None
                self.registry.release(permit, "neutral")
                raise
        return self

    def _limit_in_use(self, key: str) -> None:
        """A wait for a cluster slot: the key's limit is in use (AIMD may step it up)."""
        for state in self.states:
            if state.key == key:
                state.full += 1

    def observe(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        if headers:
            self.retry_after = self.registry.observe_headers(self.states, headers, status)

    def settle(self, usage: Mapping[str, Any], prompt_chars: int = 0) -> None:
        """An LLM answer's `usage`: the tokens the call really used."""
        self.used_tokens = self.registry.learn_usage(self.states[-1], prompt_chars, usage)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        held, self._cluster = self._cluster, None
        if held is not None:
            await held.aclose()
        permit, self._permit = self._permit, None
        if permit is None:
            return
        outcome = outcome_of(self.status, exc)
        retry_after = self.retry_after
        if retry_after is None and isinstance(exc, TransientError):
            retry_after = exc.retry_after
        self.registry.release(
            permit, outcome, used_tokens=self.used_tokens, retry_after=retry_after
        )
        if outcome in FAILED_OUTCOMES and permit.states[-1].breaker.state != "closed":
            attempt = ATTEMPT_STATE.get()
            if attempt is not None:
                attempt.paused = True  # the breaker pauses the item: not an attempt it spent


def _now() -> float:
    return asyncio.get_running_loop().time()


def _tell_waited(tag: StepTag | None, provider: str, seconds: float) -> None:
    """`tag`'s step hears how long it waited for `provider` (not its work: the cost line)."""
    if tag is not None:
        tag.bus.emit(
            "step.waited",
            item=tag.item,
            block=tag.block,
            name=tag.name,
            provider=provider,
            seconds=round(seconds, 3),
        )


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ProviderRegistry] = (
    weakref.WeakKeyDictionary()
)


def forget_registry(loop: asyncio.AbstractEventLoop) -> None:
    """Drop what a loop's registry learned (limits, breakers): its next run starts afresh.
    Runs in flight keep the registry they hold. For a process whose runs must not inherit
    each other's lessons, like a test suite's."""
    _registries.pop(loop, None)


def registry_for_loop(settings: ProviderSettings | None = None) -> ProviderRegistry:
    """The running loop's registry, shared by every run on it; `settings` (re)configure it."""
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        registry = _registries[loop] = ProviderRegistry(settings)
    elif settings is not None:
        registry.configure(settings)
    return registry
