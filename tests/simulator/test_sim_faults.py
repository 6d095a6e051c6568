"""Injected failures, holds, latency, jitter and the exactness of the concurrency stats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from simulator import answers
from simulator.control import SimulatorControlError
from simulator.testing import RunningSimulator

AUTH = {"Authorization": "Bearer test-key"}


def lookup_client(sim: RunningSimulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=sim.base_url, headers=AUTH, timeout=10)


async def wait_for_stats(
    sim: RunningSimulator, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll without blocking this loop, so the requests under test keep running."""
    deadline = time.monotonic() + 5
    while True:
        stats = await asyncio.to_thread(sim.control.stats)
        if predicate(stats):
            return stats
        assert time.monotonic() < deadline, f"stats never matched: {stats}"
        await asyncio.sleep(0.01)


async def test_failure_times_limits_matching_requests(sim: RunningSimulator) -> None:
    sim.control.configure(
        failures=[
            {"endpoint": "clearbit", "match": {"domain": "bad.example"}, "status": 500, "times": 2}
        ]
    )
    async with lookup_client(sim) as http:
        bad = [
            (await http.get("/v2/companies/find", params={"domain": "bad.example"}))
            for _ in range(3)
        ]
        good = await http.get("/v2/companies/find", params={"domain": "good.example"})
    assert [r.status_code for r in bad] == [500, 500, 200]
    assert bad[0].json()["error"]["type"] == "server_error"
    assert bad[2].json() == answers.company("bad.example")
    assert good.status_code == 200
    stats = sim.control.stats()
    assert stats["injected"]["clearbit"] == 2
    assert [r["status"] for r in stats["received"]] == [500, 500, 200, 200]


async def test_failure_without_times_always_fails_and_custom_body(sim: RunningSimulator) -> None:
    sim.control.configure(
        failures=[{"endpoint": "linkedin", "status": 503, "times": None, "body": {"oops": True}}]
    )
    async with lookup_client(sim) as http:
        results = [await http.get("/v2/people", params={"email": f"p{i}@x.io"}) for i in range(4)]
    assert {r.status_code for r in results} == {503}
    assert results[0].json() == {"oops": True}


async def test_openai_429_with_retry_after(sim: RunningSimulator) -> None:
    sim.control.configure(
        failures=[
            {
                "endpoint": "openai",
                "match": {"prompt_contains": "Globex"},
                "status": 429,
                "times": 1,
                "retry_after": "2",
            }
        ]
    )
    messages = [{"role": "user", "content": "Qualify Globex Corp"}]
    async with openai.AsyncOpenAI(
        base_url=sim.base_url + "/v1", api_key="x", max_retries=0
    ) as client:
        other = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Qualify Acme"}]
        )
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="m", messages=messages)
        retried = await client.chat.completions.create(model="m", messages=messages)
    assert other.choices[0].message.content
    assert caught.value.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "2"
    assert caught.value.code == "rate_limit_exceeded"
    expected = answers.chat_completion({"model": "m", "messages": messages})
    assert retried.choices[0].message.content == expected["choices"][0]["message"]["content"]


async def test_slack_429_with_http_date_retry_after(sim: RunningSimulator) -> None:
    when = "Wed, 21 Oct 2015 07:28:00 GMT"
    sim.control.configure(
        failures=[
            {"endpoint": "slack", "match": {"channel": "#busy"}, "status": 429, "retry_after": when}
        ]
    )
    client = AsyncWebClient(token="xoxb-test", base_url=sim.base_url + "/api/")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="#busy", text="hello")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == when
    assert caught.value.response["error"] == "ratelimited"
    ok = await client.chat_postMessage(channel="#sales-leads", text="hello")
    # Failed posts do not consume Slack timestamps.
    assert ok.data == answers.slack_post("#sales-leads", "hello", 1)


async def test_unauthenticated_requests_do_not_consume_failures(sim: RunningSimulator) -> None:
    sim.control.configure(failures=[{"endpoint": "clearbit", "status": 500, "times": 1}])
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        anonymous = await http.get("/v2/companies/find", params={"domain": "a.io"})
        failed = await http.get("/v2/companies/find", params={"domain": "a.io"}, headers=AUTH)
        served = await http.get("/v2/companies/find", params={"domain": "a.io"}, headers=AUTH)
    assert [anonymous.status_code, failed.status_code, served.status_code] == [401, 500, 200]


async def test_hold_and_release_with_in_flight_counts(sim: RunningSimulator) -> None:
    sim.control.configure(hold=[{"endpoint": "clearbit", "match": {}}])
    async with lookup_client(sim) as http:
        tasks = [
            asyncio.create_task(http.get("/v2/companies/find", params={"domain": f"held{i}.io"}))
            for i in range(3)
        ]
        stats = await wait_for_stats(sim, lambda s: s["held"]["clearbit"] == 3)
        assert stats["in_flight"]["clearbit"] == 3
        assert stats["in_flight_total"] == 3
        assert not any(task.done() for task in tasks)
        # Other endpoints are not held.
        person = await http.get("/v2/people", params={"email": "free@x.io"})
        assert person.status_code == 200

        assert await asyncio.to_thread(sim.control.release, "clearbit", {}) == 3
        results = await asyncio.gather(*tasks)
    assert [r.json() for r in results] == [answers.company(f"held{i}.io") for i in range(3)]
    stats = sim.control.stats()
    assert stats["in_flight"]["clearbit"] == 0
    assert stats["peak_in_flight"]["clearbit"] == 3
    assert stats["held"]["clearbit"] == 0


async def test_hold_matches_only_selected_requests_and_reset_releases(
    sim: RunningSimulator,
) -> None:
    sim.control.configure(hold=[{"endpoint": "linkedin", "match": {"email": "slow@x.io"}}])
    async with lookup_client(sim) as http:
        held = asyncio.create_task(http.get("/v2/people", params={"email": "slow@x.io"}))
        await wait_for_stats(sim, lambda s: s["held"]["linkedin"] == 1)
        fast = await http.get("/v2/people", params={"email": "fast@x.io"})
        assert fast.status_code == 200 and not held.done()
        # Releasing a different match leaves the hold in place.
        assert await asyncio.to_thread(sim.control.release, "linkedin", {"email": "other"}) == 0
        await asyncio.to_thread(sim.control.reset)
        assert (await held).status_code == 200
    assert sim.control.config()["hold"] == []


async def test_peak_in_flight_with_ten_concurrent_requests(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms={"default": 0, "clearbit": 100})
    async with lookup_client(sim) as http:
        started = time.monotonic()
        results = await asyncio.gather(
            *(http.get("/v2/companies/find", params={"domain": f"c{i}.io"}) for i in range(10))
        )
        elapsed = time.monotonic() - started
    assert {r.status_code for r in results} == {200}
    assert 0.1 <= elapsed < 0.6  # concurrent, not 10 x 100 ms
    stats = sim.control.stats()
    assert stats["peak_in_flight"]["clearbit"] == 10
    assert stats["peak_in_flight_total"] == 10
    assert stats["in_flight"]["clearbit"] == 0
    assert {r["latency_ms"] for r in stats["received"]} == {100}


async def test_jitter_stays_within_bounds_and_is_seeded(sim: RunningSimulator) -> None:
    sim.control.reset(jitter_ms=[20, 40], seed=7)

    async def sequence() -> list[float]:
        async with lookup_client(sim) as http:
            for i in range(8):
                started = time.monotonic()
                response = await http.get("/v2/companies/find", params={"domain": f"j{i}.io"})
                assert response.status_code == 200
                assert time.monotonic() - started >= 0.019
        return [r["latency_ms"] for r in sim.control.stats()["received"]]

    first = await sequence()
    assert all(20 <= ms <= 40 for ms in first)
    assert len(set(first)) > 1
    sim.control.reset()  # keeps jitter and seed, and re-seeds the RNG
    assert await sequence() == first


async def test_per_endpoint_jitter_and_latency(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms={"default": 5}, jitter_ms={"linkedin": [1, 3]})
    async with lookup_client(sim) as http:
        await http.get("/v2/companies/find", params={"domain": "a.io"})
        await http.get("/v2/people", params={"email": "a@a.io"})
    clearbit, linkedin = sim.control.stats()["received"]
    assert clearbit["latency_ms"] == 5
    assert 1 <= linkedin["latency_ms"] <= 3


async def test_no_record_keeps_counts_and_peaks(sim: RunningSimulator) -> None:
    sim.control.configure(record=False)
    async with lookup_client(sim) as http:
        await asyncio.gather(
            *(http.get("/v2/people", params={"email": f"{i}@x.io"}) for i in range(5))
        )
    stats = sim.control.stats()
    assert stats["requests"]["linkedin"] == 5
    assert stats["received"] == []
    assert 1 <= stats["peak_in_flight"]["linkedin"] <= 5


def test_invalid_config_is_rejected_without_changes(sim: RunningSimulator) -> None:
    with pytest.raises(SimulatorControlError):
        sim.control.configure(latency_ms=5, failures=[{"endpoint": "nowhere"}])
    with pytest.raises(SimulatorControlError):
        sim.control.configure(jitter_ms=[10, 1])
    with pytest.raises(SimulatorControlError):
        sim.control.reset(unknown_key=1)
    config = sim.control.config()
    assert config["latency_ms"] == {"default": 0}
    assert config["failures"] == []


def test_control_calls_need_the_token_when_one_is_set() -> None:
    import asyncio
    import threading

    from simulator.control import SimulatorControl, SimulatorControlError
    from simulator.server import build_app, start

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        runner, port = await start(build_app(control_token="s3cret-token"))
        box["runner"], box["port"] = runner, port
        ready.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert ready.wait(10)
    base = f"http://127.0.0.1:{box['port']}"
    try:
        assert SimulatorControl(base).health()  # readiness checks stay open
        try:
            SimulatorControl(base).configure(hold=[{"endpoint": "openai"}])
            raise AssertionError("a control call without the token was accepted")
        except SimulatorControlError as exc:
            assert "403" in str(exc)
        assert SimulatorControl(base, token="s3cret-token").configure(latency_ms=1)["latency_ms"]
    finally:
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)  # type: ignore[union-attr]
        loop.call_soon_threadsafe(loop.stop)


def test_setting_a_latency_replaces_an_earlier_jitter() -> None:
    from simulator.testing import run_in_thread

    with run_in_thread(jitter_ms=(150, 450)) as sim:
        config = sim.control.configure(latency_ms=5)
        assert config["latency_ms"] == 5 or config["latency_ms"] == {"default": 5}
        assert not config.get("jitter_ms")
