"""The breaker per provider, end to end against the simulator's fault injection: it opens
within its count window, no call starts while it is open (the simulator's own timeline),
it closes by probes, and no item is failed by it. Time is scaled down: an outage of 1 s
instead of 20 s, cool-downs of 0.5 s instead of 5 s."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from engine.core.executor import RunOptions
from engine.core.provider_settings import BreakerPolicy, ProviderSettings, parse_breaker
from engine.core.providers import ProviderRegistry, registry_for_loop
from engine.core.retry import RetryPolicy
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import Recorder, block, graph, run_graph

LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"
KEY = "api.clearbit.com"
# A call let through just before the breaker opened reaches the simulator a moment later
# (longer on a loaded machine).
GRACE = 0.2


def lookup_loop(**loop_config: Any) -> dict[str, Any]:
    return graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=10, **loop_config),
            block("fetch", "http", "loop", url=LOOKUP, headers={"Authorization": "Bearer k"}),
        ],
        [("webhook", "loop")],
    )


def leads(n: int) -> dict[str, Any]:
    return {"items": [{"domain": f"lead{i}.example"} for i in range(n)]}


def outage(rate: float, seconds: float, after: int = 30) -> dict[str, Any]:
    return {"endpoint": "clearbit", "status": 500, "rate": rate, "for_s": seconds, "after": after}


def open_periods(changes: list[tuple[float, str, str]]) -> list[tuple[float, float]]:
    """(opened, half-open or closed) for every time the breaker was open."""
    periods, opened = [], None
    for at, state, _ in changes:
        if state == "open" and opened is None:
            opened = at
        elif state != "open" and opened is not None:
            periods.append((opened, at))
            opened = None
    assert opened is None, "the breaker never left its last open state"
    return periods


RETRY = RunOptions(retry=RetryPolicy(max_attempts=6, base_delay=0.02, max_delay=0.1))


async def test_a_30_percent_outage_pauses_calls_and_every_item_succeeds(
    sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clearbit answers 500 for 30 % of calls during an outage of a 300-lead run: the
    breaker opens within its window, no Clearbit call starts while it is open, it closes
    by probes, and every item ends `succeeded`."""
    sim.control.configure(latency_ms=20, seed=7, failures=[outage(0.3, 1.0)])
    registry = registry_for_loop(ProviderSettings())
    # When the registry let each Clearbit call through: exact, where the simulator's timeline
    # carries the call's way there.
    let_through: list[float] = []
    grant = ProviderRegistry._grant

    def recording(self: ProviderRegistry, states: Any, *args: Any) -> Any:
        if states[-1].key == KEY:
            let_through.append(time.time())
        return grant(self, states, *args)

    monkeypatch.setattr(ProviderRegistry, "_grant", recording)
    breaker = {"failure_rate": 0.2, "min_calls": 10, "window": 20, "cool_down": 0.5, "probes": 3}
    recorder = Recorder()
    outcome, _ = await run_graph(
        lookup_loop(circuit_breaker=breaker), leads(300), sim=sim, recorder=recorder, options=RETRY
    )
    assert outcome.status == "succeeded"
    assert outcome.failed_items == 0
    assert outcome.outputs["loop"]["succeeded"] == 300

    # What the breaker did (the registry's record) and what the run heard of it.
    changes = registry.breaker_changes(KEY)
    assert [c[1] for c in changes][0] == "open" and changes[-1][1:] == (
        "closed",
        "3 probe calls succeeded",
    )
    assert "half_open" in [c[1] for c in changes]
    opened_at, _, reason = changes[0]
    assert reason.endswith("calls failed")
    heard = recorder.of("provider.breaker", provider=KEY)
    assert heard[0].data["mode"] == "auto" and heard[-1].data["state"] == "closed"

    received = [r for r in sim.control.stats()["received"] if r["endpoint"] == "clearbit"]
    # While open, no Clearbit call starts (the simulator's timeline).
    for opened, left in open_periods(changes):
        assert not [t for t in let_through if opened < t < left]
        during = [r["started"] - opened for r in received if opened + GRACE < r["started"] < left]
        assert during == [], f"{len(during)} calls started while the breaker was open"
    # It opened within its window: from the first failure, at most a window of counted
    # calls (20) plus the calls in flight (10) started before it opened.
    failed = sorted(r["started"] for r in received if r["status"] == 500)
    before_open = [r for r in received if failed[0] <= r["started"] < opened_at]
    assert len(before_open) <= 30
    # Waiting steps said why, with the provider and the count.
    paused = [e for e in recorder.of("step.waiting") if e.data["reason"] == "breaker"]
    assert paused
    assert any(
        e.data["message"].startswith(f"paused: {KEY} breaker open: ")
        and e.data["message"].endswith("calls failed")
        for e in paused
    )
    assert not any("failed" in e.data.get("error", "") for e in recorder.of("item.failed"))


async def test_cool_down_grows_on_repeated_trips(sim: RunningSimulator) -> None:
    """Every call fails for a while: each trip waits longer than the one before."""
    sim.control.configure(latency_ms=5, failures=[outage(1.0, 1.2, after=0)])
    policy = BreakerPolicy(min_calls=4, window=4, failure_rate=0.5, cool_down=0.1, probes=1)
    registry_for_loop(ProviderSettings(breaker=policy))
    recorder = Recorder()
    options = RunOptions(retry=RetryPolicy(max_attempts=12, base_delay=0.01, max_delay=0.05))
    outcome, _ = await run_graph(
        lookup_loop(), leads(40), sim=sim, recorder=recorder, options=options
    )
    assert outcome.status == "succeeded"
    opens = [e for e in recorder.of("provider.breaker") if e.data["state"] == "open"]
    cool_downs = [e.data["cool_down"] for e in opens]
    assert len(cool_downs) >= 3
    assert cool_downs[:3] == [0.1, 0.2, 0.4]
    assert [e.data["trips"] for e in opens[:3]] == [1, 2, 3]


async def test_manual_mode_waits_until_resume(sim: RunningSimulator) -> None:
    """Manual mode: open, the run waits (long past any cool-down) until `resume`."""
    sim.control.configure(latency_ms=10, failures=[outage(1.0, 0.3, after=5)])
    policy = BreakerPolicy(mode="manual", min_calls=5, window=10, failure_rate=0.5, cool_down=0.05)
    registry = registry_for_loop(ProviderSettings(breaker=policy))
    recorder = Recorder()
    run = asyncio.create_task(
        run_graph(lookup_loop(), leads(60), sim=sim, recorder=recorder, options=RETRY)
    )
    for _ in range(300):
        if registry.breakers():
            break
        await asyncio.sleep(0.01)
    assert registry.breakers()[KEY]["mode"] == "manual"
    await asyncio.sleep(0.6)  # long past the cool-down and the outage: still paused
    assert not run.done()
    calls = sim.control.stats()["requests"]["clearbit"]
    await asyncio.sleep(0.2)
    assert sim.control.stats()["requests"]["clearbit"] == calls  # nothing started
    waiting = [e for e in recorder.of("step.waiting") if e.data["reason"] == "breaker"]
    assert waiting and waiting[-1].data["message"].endswith("(manual: waits for Resume)")
    assert registry.resume(KEY) is True
    outcome, _ = await asyncio.wait_for(run, 10)
    assert outcome.status == "succeeded" and outcome.failed_items == 0
    assert recorder.of("provider.breaker")[-1].data["state"] == "closed"
    assert recorder.of("provider.breaker")[-1].data["reason"] == "resumed"
    assert registry.resume(KEY) is False  # closed: nothing to resume


async def test_4xx_answers_never_open_the_breaker(sim: RunningSimulator) -> None:
    """An item's own bad data (404) is not the provider failing."""
    sim.control.configure(failures=[{"endpoint": "clearbit", "status": 404}])
    policy = BreakerPolicy(min_calls=2, window=4, failure_rate=0.1)
    registry_for_loop(ProviderSettings(breaker=policy))
    recorder = Recorder()
    outcome, _ = await run_graph(lookup_loop(), leads(20), sim=sim, recorder=recorder)
    assert outcome.status == "failed"  # every item failed on its own 404
    assert not recorder.of("provider.breaker")
    assert sim.control.stats()["requests"]["clearbit"] == 20


def test_the_breaker_setting_is_parsed_or_refused_naming_what_is_wrong() -> None:
    assert parse_breaker("") == BreakerPolicy()
    policy = parse_breaker("mode:manual; window:40; min_calls:20; failure_rate:0.5; probes:2")
    assert (policy.mode, policy.window, policy.min_calls, policy.failure_rate, policy.probes) == (
        "manual",
        40,
        20,
        0.5,
        2,
    )
    assert parse_breaker("cool_down:300").cool_down_max == 300  # a longer first one raises it
    for text, message in (
        ("mode:sometimes", "KLYNTOS_BREAKER: mode must be one of auto, manual, off"),
        ("failure_rate:0", "KLYNTOS_BREAKER: failure_rate must be in (0, 1], got '0'"),
        ("window:5;min_calls:10", "KLYNTOS_BREAKER: min_calls (10) must not exceed window (5)"),
        ("probes:x", "KLYNTOS_BREAKER: probes must be a whole number from 1 to 1000, got 'x'"),
        ("cool_down:10;cool_down_max:5", "KLYNTOS_BREAKER: cool_down (10) must not exceed"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_breaker(text)
    with pytest.raises(ValueError, match="'limit:3' is not one of mode:…"):
        parse_breaker("limit:3")
