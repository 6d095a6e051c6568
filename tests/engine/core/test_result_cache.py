"""The result cache: a block with `cache` reuses the output of the same resolved config."""

from __future__ import annotations

from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.result_cache import MemoryResultCache, cache_key, cache_ttl
from engine.core.validation import validate
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block, graph, run_graph

SECRET = "sk-live-very-secret-value"


def cached_loop(ttl: int | None = 60, model: str = "gpt-4o-mini") -> dict:
    cache = {"cache": {"ttl": ttl}} if ttl else {}
    return graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=5),
            block(
                "ai",
                "agent",
                "loop",
                model=model,
                system_prompt="Score this company.",
                user_prompt="Company: <item.domain>",
                **cache,
            ),
            block(
                "fetch",
                "http",
                "loop",
                url="https://api.clearbit.com/v2/companies/find?domain=<item.domain>",
                headers={"Authorization": "Bearer <env.KEY>"},
                **cache,
            ),
        ],
        [("webhook", "loop")],
    )


def items(n: int) -> dict:
    return {"items": [{"domain": f"d{i}.example"} for i in range(n)]}


def requests(sim: RunningSimulator) -> dict[str, int]:
    return sim.control.stats()["requests"]


async def test_the_same_items_twice_make_no_second_call(sim: RunningSimulator) -> None:
    cache = MemoryResultCache()
    env = {"KEY": SECRET}
    first, rec1 = await run_graph(cached_loop(), items(20), sim=sim, env=env, result_cache=cache)
    assert first.status == "succeeded"
    assert (requests(sim)["openai"], requests(sim)["clearbit"]) == (20, 20)
    assert {e.data.get("cache") for e in rec1.of("step.finished", block="ai")} == {"miss"}
    second, rec2 = await run_graph(cached_loop(), items(20), sim=sim, env=env, result_cache=cache)
    assert second.status == "succeeded"
    assert (requests(sim)["openai"], requests(sim)["clearbit"]) == (20, 20)  # no new call
    hits = rec2.of("step.finished", block="ai")
    assert {e.data["cache"] for e in hits} == {"hit"}
    assert all(e.data["usage"] == [] and e.data["attempts"] == 0 for e in hits)
    assert all(e.data["saved_usage"][0]["model"] == "gpt-4o-mini" for e in hits)
    # Same outputs as the calls made.
    firsts = {e.data["item"]: e.data["output"] for e in rec1.of("step.finished", block="ai")}
    assert {e.data["item"]: e.data["output"] for e in hits} == firsts
    # A different resolved config (another model, another item) is a miss.
    await run_graph(cached_loop(model="gpt-4o"), items(2), sim=sim, env=env, result_cache=cache)
    assert requests(sim)["openai"] == 22
    # Without `cache`, the block calls every time.
    await run_graph(cached_loop(ttl=None), items(3), sim=sim, env=env, result_cache=cache)
    assert requests(sim)["openai"] == 25


async def test_an_expired_entry_is_a_miss(sim: RunningSimulator) -> None:
    cache = MemoryResultCache()
    await run_graph(cached_loop(), items(1), sim=sim, env={"KEY": "k"}, result_cache=cache)
    for key, (_, entry) in list(cache.entries.items()):
        cache.entries[key] = (0.0, entry)  # expired
    await run_graph(cached_loop(), items(1), sim=sim, env={"KEY": "k"}, result_cache=cache)
    assert requests(sim)["openai"] == 2


def test_the_key_holds_secret_names_never_their_values() -> None:
    resolved = {"url": "https://x.example/", "headers": {"Authorization": f"Bearer {SECRET}"}}
    env = {"KEY": SECRET}
    key = cache_key("http", resolved, env)
    named = {"url": "https://x.example/", "headers": {"Authorization": "Bearer <env.KEY>"}}
    assert key == cache_key("http", named, {})
    # A new value of the same secret keeps the key; another header does not.
    rotated = {**resolved, "headers": {"Authorization": "Bearer sk-rotated-value-000"}}
    assert cache_key("http", rotated, {"KEY": "sk-rotated-value-000"}) == key
    assert cache_key("http", {**resolved, "body": 1}, env) != key
    assert cache_key("agent", resolved, env) != key
    assert SECRET not in key
    # How a call is made (retries, timeout, the cache itself) is not what it answers.
    assert cache_key("http", {**resolved, "retry": {"attempts": 5}, "timeout": 3}, env) == key


def test_only_agent_and_http_blocks_cache_and_the_ttl_is_bounded() -> None:
    assert cache_ttl({"cache": {"ttl": 60}}, "agent") == 60
    assert cache_ttl({"cache": {"ttl": 60}}, "slack") is None
    assert cache_ttl({}, "http") is None
    # The secret the lookup's header names exists: the TTL past its bound is the one problem
    # (the block's other fields are checked too, so an unknown secret would be another).
    errors = validate(parse_graph(cached_loop(ttl=10**9)), REGISTRY, ["KEY"]).errors
    assert {(e.field, "maximum" in e.message) for e in errors} == {("cache.ttl", True)}
    slack = graph([block("s", "slack", channel="#c", text="hi", cache={"ttl": 5})], [])
    [error] = validate(parse_graph(slack), REGISTRY).errors
    assert "cache" in error.message


async def test_an_output_holding_a_secret_is_never_kept(sim: RunningSimulator) -> None:
    cache = MemoryResultCache()
    g = graph(
        [
            block("webhook", "webhook"),
            block(
                "ai",
                "agent",
                model="gpt-4o-mini",
                user_prompt="Repeat: <env.KEY>",
                cache={"ttl": 60},
            ),
        ],
        [("webhook", "ai")],
    )
    outcome, _ = await run_graph(g, {}, sim=sim, env={"KEY": SECRET}, result_cache=cache)
    assert outcome.status == "succeeded"
    assert SECRET in str(outcome.outputs["ai"])  # the simulator quotes the prompt back
    assert cache.entries == {}
    # An answer without a secret in it is kept.
    g["blocks"][1]["config"]["user_prompt"] = "Repeat: hello"
    await run_graph(g, {}, sim=sim, env={"KEY": SECRET}, result_cache=cache)
    assert len(cache.entries) == 1
