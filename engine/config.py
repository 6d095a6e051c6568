"""Turns Django settings into the engine's plain configuration objects."""

from __future__ import annotations

import functools
import os
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from engine.core import expression_pool
from engine.core.data import DataConnection
from engine.core.data_pools import DataSource
from engine.core.limits import MAX_ITEMS_IN_FLIGHT, MAX_ITEMS_PER_RUN, GraphLimits
from engine.core.off_peak import OffPeak
from engine.core.outbound import OutboundConfig, OutboundFactory, parse_host_overrides
from engine.core.prices import PriceTable
from engine.core.provider_settings import ProviderSettings, parse_breaker, parse_provider_limits
from engine.core.providers import ProviderRegistry, registry_for_loop
from engine.core.retry import RetryPolicy
from engine.core.services import Services
from engine.slots import cluster_wide, slots_for_loop

# The providers the simulator speaks; `api.sources.example` (a reserved name, never a real
# host) serves the multi-API template's five public data sources.
SANDBOX_HOSTS = (
    "api.openai.com",
    "api.clearbit.com",
    "api.linkedin.com",
    "slack.com",
    "api.sources.example",
)


def host_overrides() -> dict[str, str]:
    overrides: dict[str, str] = {}
    if settings.KLYNTOS_SANDBOX:
        overrides.update({host: settings.KLYNTOS_SIMULATOR_URL for host in SANDBOX_HOSTS})
    overrides.update(parse_host_overrides(settings.KLYNTOS_HOST_OVERRIDES))
    return overrides


def provider_credentials() -> dict[str, Any]:
    sandbox = settings.KLYNTOS_SANDBOX
    return {
        "openai_api_key": settings.OPENAI_API_KEY or ("sk-sandbox" if sandbox else ""),
        "slack_token": settings.SLACK_BOT_TOKEN or ("xoxb-sandbox" if sandbox else ""),
    }


def build_services(
    data: DataConnection | None = None,
    call_depth: int | None = None,
    run_id: Any = None,
) -> Services:
    """`call_depth`: what outbound requests announce (the run's own depth + 1). `run_id`:
    the run the services are for; with workers its loops' caps hold across processes
    (`Services.slots`, engine/core/slots.py)."""
    expression_threads()
    factory = OutboundFactory(
        OutboundConfig(
            host_overrides=host_overrides(),
            trusted_hosts=frozenset(settings.KLYNTOS_TRUSTED_HOSTS),
            call_depth=call_depth,
            preconnect_wait=preconnect_wait(),
        ),
        providers=provider_registry(),
    )
    factory.trust_base_url(settings.OPENAI_BASE_URL)
    factory.trust_base_url(settings.SLACK_BASE_URL)
    return Services(
        outbound=factory,
        data=data,
        openai_base_url=settings.OPENAI_BASE_URL,
        slack_base_url=settings.SLACK_BASE_URL,
        agent_max_prompt_bytes=settings.KLYNTOS_AGENT_MAX_PROMPT_BYTES,
        slots=slots_for_loop() if cluster_wide() else None,
        run_id=str(run_id) if run_id is not None else "",
        **provider_credentials(),
    )


# The longest KLYNTOS_PRECONNECT_WAIT: past it a loop whose connections hang would hold
# its first items for longer than opening their own takes.
MAX_PRECONNECT_WAIT = 5.0


def preconnect_wait() -> float:
    """KLYNTOS_PRECONNECT_WAIT, checked; ValueError naming what is wrong."""
    wait = settings.KLYNTOS_PRECONNECT_WAIT
    if not 0 <= wait <= MAX_PRECONNECT_WAIT:
        raise ValueError(
            f"KLYNTOS_PRECONNECT_WAIT must be seconds from 0 (off) to {MAX_PRECONNECT_WAIT:g}, "
            f"got {wait:g}"
        )
    return float(wait)


def provider_settings() -> ProviderSettings:
    """KLYNTOS_PROVIDER_* as the engine's settings; ValueError naming what is wrong."""
    if not 0 < settings.KLYNTOS_PROVIDER_AIMD_START <= 1:
        raise ValueError("KLYNTOS_PROVIDER_AIMD_START must be a fraction in (0, 1]")
    for name in ("KLYNTOS_PROVIDER_AIMD_FLOOR", "KLYNTOS_PROVIDER_COMPLETION_TOKENS"):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be at least 1")
    for name in ("KLYNTOS_PROVIDER_WINDOW_SECONDS", "KLYNTOS_PROVIDER_PROBE_SECONDS"):
        if not getattr(settings, name) > 0:
            raise ValueError(f"{name} must be a positive number of seconds")
    aging = settings.KLYNTOS_PRIORITY_AGING_SECONDS
    if not 0 <= aging <= 86_400:
        raise ValueError(
            "KLYNTOS_PRIORITY_AGING_SECONDS must be seconds from 0 (strict priority) to 86400"
        )
    burst = settings.KLYNTOS_PROVIDER_NEW_RUN_BURST
    if not 0 <= burst <= 100:
        raise ValueError("KLYNTOS_PROVIDER_NEW_RUN_BURST must be from 0 (no burst) to 100")
    return ProviderSettings(
        limits=parse_provider_limits(settings.KLYNTOS_PROVIDER_LIMITS),
        window=settings.KLYNTOS_PROVIDER_WINDOW_SECONDS,
        aimd_start=settings.KLYNTOS_PROVIDER_AIMD_START,
        aimd_floor=settings.KLYNTOS_PROVIDER_AIMD_FLOOR,
        probe_seconds=settings.KLYNTOS_PROVIDER_PROBE_SECONDS,
        completion_tokens=settings.KLYNTOS_PROVIDER_COMPLETION_TOKENS,
        max_pause=settings.KLYNTOS_RETRY_AFTER_MAX,
        breaker=parse_breaker(settings.KLYNTOS_BREAKER),
        priority_aging=aging,
        new_run_burst=burst,
    )


def expression_threads() -> None:
    """The process's expression threads sized from KLYNTOS_EXPRESSION_THREADS and
    KLYNTOS_EXPRESSION_OWNER_THREADS (each run's services check; a change costs nothing)."""
    pool = expression_pool.POOL
    threads, share = settings.KLYNTOS_EXPRESSION_THREADS, settings.KLYNTOS_EXPRESSION_OWNER_THREADS
    if (pool.threads, pool.owner_threads) != (threads, share):
        pool.configure(threads, share)


def off_peak_window() -> OffPeak | None:
    """KLYNTOS_OFF_PEAK_HOURS in KLYNTOS_OFF_PEAK_TZ (None: not set); OffPeakError (a
    ValueError) naming the setting that is wrong."""
    return OffPeak.parse(settings.KLYNTOS_OFF_PEAK_HOURS, settings.KLYNTOS_OFF_PEAK_TZ)


def provider_registry() -> ProviderRegistry:
    """The running loop's provider registry (every run on it shares it), as configured;
    with workers its concurrency caps hold across processes too (engine/slots.py)."""
    registry = registry_for_loop(provider_settings())
    registry.cluster = slots_for_loop() if cluster_wide() else None
    return registry


def data_source(owner_id: int, *, provision_now: bool = True) -> DataSource:
    """Where one owner's database blocks run: that owner's schema or file, nobody else's
    (provisioned on first use: now, or before the first statement, leads/owner_data.py)."""
    from leads.owner_data import owner_source

    return owner_source(owner_id, provision_now=provision_now)


def data_connection(owner_id: int) -> DataConnection:
    """A connection of one's own to an owner's data, outside the engine's shared pools."""
    return data_source(owner_id).open()


def retry_policy() -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.KLYNTOS_RETRY_ATTEMPTS,
        base_delay=settings.KLYNTOS_RETRY_BASE_DELAY,
        max_delay=settings.KLYNTOS_RETRY_MAX_DELAY,
        max_retry_after=settings.KLYNTOS_RETRY_AFTER_MAX,
    )


def loop_item_limits() -> tuple[int, int]:
    """(KLYNTOS_MAX_ITEMS_IN_FLIGHT, KLYNTOS_MAX_ITEMS_PER_RUN), checked; ValueError naming
    the setting that is wrong."""
    in_flight = settings.KLYNTOS_MAX_ITEMS_IN_FLIGHT
    if not 1 <= in_flight <= MAX_ITEMS_IN_FLIGHT:
        raise ValueError(
            f"KLYNTOS_MAX_ITEMS_IN_FLIGHT must be from 1 to {MAX_ITEMS_IN_FLIGHT}, got {in_flight}"
        )
    per_run = settings.KLYNTOS_MAX_ITEMS_PER_RUN
    if not 1 <= per_run <= MAX_ITEMS_PER_RUN:
        raise ValueError(
            f"KLYNTOS_MAX_ITEMS_PER_RUN must be from 1 to {MAX_ITEMS_PER_RUN}, got {per_run}"
        )
    return in_flight, per_run


def graph_limits() -> GraphLimits:
    return GraphLimits(
        max_blocks=settings.KLYNTOS_MAX_BLOCKS,
        max_edges=settings.KLYNTOS_MAX_EDGES,
        max_loop_depth=settings.KLYNTOS_MAX_LOOP_DEPTH,
        max_notes=settings.KLYNTOS_MAX_NOTES,
        max_note_chars=settings.KLYNTOS_MAX_NOTE_CHARS,
        min_schedule_seconds=settings.KLYNTOS_SCHEDULE_MIN_SECONDS,
        max_pin_bytes=settings.KLYNTOS_MAX_PIN_BYTES,
    )


def allowed_process_env() -> dict[str, str]:
    """Process variables the operator allow-listed by name (and that are set)."""
    return {name: os.environ[name] for name in settings.KLYNTOS_ENV_ALLOWLIST if name in os.environ}


def price_table() -> PriceTable:
    """KLYNTOS_MODEL_PRICES over the defaults; when the simulator answers the LLM endpoint
    (sandbox mode), models nobody priced cost nothing instead of OpenAI's list prices."""
    host = urlsplit(settings.OPENAI_BASE_URL).hostname or ""
    simulated = (
        settings.KLYNTOS_SANDBOX and host_overrides().get(host) == settings.KLYNTOS_SIMULATOR_URL
    )
    return _price_table(settings.KLYNTOS_MODEL_PRICES, simulated)


@functools.lru_cache(maxsize=8)
def _price_table(configured: str, simulated: bool) -> PriceTable:
    return PriceTable.build(configured, simulated=simulated)
