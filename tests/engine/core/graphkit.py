"""Helpers for running graphs headless (no Django) against the provider simulator."""

from __future__ import annotations

from typing import Any

from engine.blocks import REGISTRY
from engine.core.events import Event, EventBus
from engine.core.executor import Executor, RunOptions, RunOutcome
from engine.core.graph import parse_graph
from engine.core.memo import Memo
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.redaction import Redactor
from engine.core.services import Services
from simulator.testing import RunningSimulator

PROVIDER_HOSTS = ("api.openai.com", "api.clearbit.com", "api.linkedin.com", "slack.com")


def block(id_: str, type_: str, parent: str | None = None, **config: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "type": type_,
        "name": id_,
        "parent": parent,
        "config": config,
        "position": {},
    }


def edge(source: str, target: str) -> dict[str, str]:
    return {"source": source, "target": target}


def graph(blocks: list[dict[str, Any]], edges: list[tuple[str, str]]) -> dict[str, Any]:
    return {"blocks": blocks, "edges": [edge(s, t) for s, t in edges]}


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, type_: str, **match: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e.type == type_ and all(e.data.get(k) == v for k, v in match.items())
        ]


async def run_graph(
    graph_json: dict[str, Any],
    body: Any,
    *,
    sim: RunningSimulator | None = None,
    env: dict[str, str] | None = None,
    options: RunOptions | None = None,
    data: Any = None,
    recorder: Recorder | None = None,
    result_cache: Any = None,
    memo: Memo | None = None,
    durability: Any = None,
) -> tuple[RunOutcome, Recorder]:
    recorder = recorder or Recorder()
    overrides = {host: sim.base_url for host in PROVIDER_HOSTS} if sim else {}
    services = Services(
        outbound=OutboundFactory(OutboundConfig(host_overrides=overrides)),
        data=data,
        openai_api_key="sk-test",
        slack_token="xoxb-test",
        result_cache=result_cache,
        durability=durability,
    )
    env = env or {}
    executor = Executor(
        parse_graph(graph_json),
        REGISTRY,
        bus=EventBus(recorder, Redactor(env.values())),
        services=services,
        env=env,
        options=options,
        **({"memo": memo} if memo is not None else {}),
    )
    try:
        outcome = await executor.run(body)
    finally:
        await services.aclose()
    return outcome, recorder
