from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from engine.core.executor import RunOptions
from engine.core.retry import RetryPolicy
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import Recorder, block, graph, run_graph

AUTH = {"Authorization": "Bearer k"}
PORT = web.AppKey("port", int)


def fan_out() -> dict:
    return graph(
        [
            block("webhook", "webhook"),
            block("ai", "agent", user_prompt="About <webhook.body.email>"),
            block(
                "company",
                "http",
                url="https://api.clearbit.com/v2/companies/find?domain=<webhook.body.domain>",
                headers=AUTH,
            ),
            block(
                "person",
                "http",
                url="https://api.linkedin.com/v2/people?email=<webhook.body.email>",
                headers=AUTH,
            ),
            block(
                "merge",
                "transform",
                input={
                    "a": "<ai.content>",
                    "c": "<company.body.metrics.employees>",
                    "p": "<person.body.profile_url>",
                },
                expression="@",
            ),
        ],
        [
            ("webhook", "ai"),
            ("webhook", "company"),
            ("webhook", "person"),
            ("ai", "merge"),
            ("company", "merge"),
            ("person", "merge"),
        ],
    )


async def test_independent_blocks_run_at_the_same_time(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=150)
    outcome, rec = await run_graph(
        fan_out(), {"email": "ada@acme.io", "domain": "acme.io"}, sim=sim
    )
    assert outcome.status == "succeeded"
    assert sim.control.stats()["peak_in_flight_total"] == 3
    merged = outcome.outputs["merge"]["result"]
    assert isinstance(merged["c"], int) and merged["p"].startswith("https://www.linkedin.com/in/")
    order = [e.data["name"] for e in rec.events if e.type == "step.started"]
    assert order[-1] == "merge"


async def test_transient_errors_are_retried_and_permanent_ones_are_not(
    sim: RunningSimulator,
) -> None:
    sim.control.configure(
        failures=[{"endpoint": "clearbit", "status": 503, "times": 1, "retry_after": "0"}]
    )
    fast = RunOptions(retry=RetryPolicy(max_attempts=3, base_delay=0.01))
    outcome, rec = await run_graph(
        fan_out(), {"email": "a@b.io", "domain": "b.io"}, sim=sim, options=fast
    )
    assert outcome.status == "succeeded"
    assert [e.data["attempts"] for e in rec.of("step.finished", name="company")] == [2]
    assert rec.of("step.retrying", name="company")[0].data["delay"] == 0
    sim.control.reset(failures=[{"endpoint": "clearbit", "status": 404}])
    outcome, rec = await run_graph(
        fan_out(), {"email": "a@b.io", "domain": "b.io"}, sim=sim, options=fast
    )
    assert outcome.status == "failed" and "returned 404" in (outcome.error or "")
    assert sim.control.stats()["requests"]["clearbit"] == 1


async def test_retry_after_is_honoured(sim: RunningSimulator) -> None:
    sim.control.configure(
        failures=[{"endpoint": "linkedin", "status": 429, "times": 1, "retry_after": "1"}]
    )
    outcome, rec = await run_graph(fan_out(), {"email": "a@b.io", "domain": "b.io"}, sim=sim)
    assert outcome.status == "succeeded"
    assert rec.of("step.retrying", name="person")[0].data["delay"] == 1.0


async def test_secret_values_are_redacted_from_events_and_errors(sim: RunningSimulator) -> None:
    secret = "sk-live-0123456789abcdef"
    g = graph(
        [
            block("webhook", "webhook"),
            block("echo", "transform", input={"k": "<env.TOKEN>"}, expression="k"),
            block("bad", "transform", input="<webhook.body.missing>", expression="@"),
        ],
        [("webhook", "echo"), ("echo", "bad")],
    )
    outcome, rec = await run_graph(g, {"note": f"contains {secret}"}, env={"TOKEN": secret})
    assert outcome.status == "failed"
    dumped = repr([e.as_dict() for e in rec.events])
    assert secret not in dumped and "[redacted]" in dumped


@pytest.fixture
async def redirector() -> AsyncIterator[str]:
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound(f"http://127.0.0.1:{request.app[PORT]}/internal-secret")

    import socket

    with socket.socket() as probe:  # a free port, known before the app starts
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = web.Application()
    app[PORT] = port
    app.router.add_get("/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("domain", "address"),
    [
        ("169.254.169.254", "169.254.169.254"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("localhost", "127.0.0.1"),
        ("public.example", "127.0.0.1"),  # routed to a server that redirects to loopback
    ],
)
async def test_http_block_refuses_internal_addresses(
    redirector: str, domain: str, address: str
) -> None:
    from engine.core.outbound import OutboundConfig, OutboundFactory
    from engine.core.services import Services

    g = graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.leads>", variable="lead"),
            block("probe", "http", "loop", url="https://<lead.domain>/x"),
        ],
        [("webhook", "loop")],
    )
    body = {"leads": [{"domain": domain}, {"domain": "also-bad.invalid"}]}
    factory = OutboundFactory(OutboundConfig(host_overrides={"public.example": redirector}))
    from engine.blocks import REGISTRY
    from engine.core.events import EventBus
    from engine.core.executor import Executor
    from engine.core.graph import parse_graph

    rec = Recorder()
    executor = Executor(
        parse_graph(g),
        REGISTRY,
        bus=EventBus(rec),
        services=Services(outbound=factory),
        options=RunOptions(retry=RetryPolicy(max_attempts=1)),
    )
    try:
        outcome = await executor.run(body)
    finally:
        await factory.aclose()
    failures = rec.of("item.failed", index=0)
    assert failures, outcome
    assert "refused" in failures[0].data["error"] and address in failures[0].data["error"]


async def test_a_blocks_retry_option_overrides_the_run_policy(sim: RunningSimulator) -> None:
    url = "https://api.clearbit.com/v2/companies/find?domain=b.io"
    fast = RunOptions(retry=RetryPolicy(max_attempts=3, base_delay=0.01))

    async def attempts_with(option: dict) -> tuple[str, int]:
        sim.control.reset(
            failures=[{"endpoint": "clearbit", "status": 503, "times": 4, "retry_after": "0"}]
        )
        g = graph(
            [block("webhook", "webhook"), block("get", "http", url=url, headers=AUTH, **option)],
            [("webhook", "get")],
        )
        outcome, rec = await run_graph(g, {}, sim=sim, options=fast)
        (ended,) = rec.of("step.finished", name="get") or rec.of("step.failed", name="get")
        return outcome.status, ended.data["attempts"]

    assert await attempts_with({}) == ("failed", 3)  # the run's policy
    assert await attempts_with({"retry": {"attempts": 1}}) == ("failed", 1)
    assert await attempts_with({"retry": {"attempts": 5, "base_delay": 0.01}}) == ("succeeded", 5)


async def test_a_slack_connection_failure_is_transient_and_retried() -> None:
    # Slack's host routed to a closed port: the transport fails to connect, which the Slack
    # block (not the scheduler) classifies as transient.
    import socket

    from engine.core.outbound import OutboundConfig, OutboundFactory
    from engine.core.services import Services

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    services = Services(
        outbound=OutboundFactory(
            OutboundConfig(
                host_overrides={"slack.com": f"http://127.0.0.1:{closed}"},
                trusted_hosts=frozenset({f"127.0.0.1:{closed}"}),
            )
        ),
        slack_token="xoxb-test",
    )
    from engine.blocks import REGISTRY
    from engine.core.events import EventBus
    from engine.core.executor import Executor
    from engine.core.graph import parse_graph

    rec = Recorder()
    g = graph(
        [block("webhook", "webhook"), block("post", "slack", channel="#x", text="hi")],
        [("webhook", "post")],
    )
    executor = Executor(
        parse_graph(g),
        REGISTRY,
        bus=EventBus(rec),
        services=services,
        options=RunOptions(retry=RetryPolicy(max_attempts=2, base_delay=0.01)),
    )
    try:
        outcome = await executor.run({})
    finally:
        await services.aclose()
    assert outcome.status == "failed"
    (retrying,) = rec.of("step.retrying", name="post")
    assert retrying.data["error"].startswith("Slack unreachable: ClientConnectorError")
    (failed,) = rec.of("step.failed", name="post")
    assert failed.data["attempts"] == 2 and "gave up after 2 attempts" in failed.data["error"]


# What a process has imported once it can run (the runner imports these when it starts),
# then the lead template run through the engine and a statement checked for PostgreSQL:
# printed, the modules the run imported on the way.
FIRST_RUN = """
import asyncio, json, sys, tempfile
import engine.blocks, engine.core.executor
from bench.harness import create_enriched_leads, make_leads, run_template
from engine.core.executor import RunOptions
from engine.core.refs import Scope
from engine.core.sqlrefs import compile_sql

with tempfile.TemporaryDirectory() as folder:
    create_enriched_leads(folder + "/data.sqlite3")
    before = set(sys.modules)
    run_template(sys.argv[1], folder + "/data.sqlite3", make_leads(3), RunOptions())
    compile_sql("SELECT <x.y>", Scope({"x": {"y": 1}}), "postgresql")
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_a_run_imports_nothing_the_process_did_not_import_at_start(
    sim: RunningSimulator,
) -> None:
    # An import on the first run's way (openai's chat resources, the loop, pglast) runs on
    # the event loop between the request and the first upstream call: tens of ms each.
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run(  # noqa: S603 -- this interpreter on our own script
        [sys.executable, "-c", FIRST_RUN, sim.base_url],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_peak_of_concurrent_steps_of_a_type_is_the_product_of_their_loops_caps() -> None:
    # What the runner opens data connections ahead for (the template's store step: 10).
    from bench.harness import template_graph
    from engine.blocks import REGISTRY
    from engine.core.events import EventBus
    from engine.core.executor import Executor
    from engine.core.graph import parse_graph
    from engine.core.outbound import OutboundFactory
    from engine.core.services import Services

    def peak(graph: dict, block_type: str, **options: object) -> int:
        return Executor(
            parse_graph(graph),
            REGISTRY,
            bus=EventBus(Recorder()),
            services=Services(outbound=OutboundFactory()),
            options=RunOptions(**options),  # type: ignore[arg-type]
        ).peak_concurrency(block_type)

    template = template_graph()
    assert peak(template, "database") == 10
    assert peak(template, "database", max_concurrent=3) == 3
    assert peak(template, "database", sequential=True) == 1
    assert peak(template, "slack") == 1  # after the loop: one at a time
    assert peak(template, "transform") == 0
    inner = graph(
        [
            block("webhook", "webhook"),
            block("outer", "loop", items="<webhook.body.a>", max_concurrent=4),
            block("inner", "loop", parent="outer", items="<outer.item>", max_concurrent=3),
            block("store", "database", parent="inner", sql="SELECT 1"),
        ],
        [("webhook", "outer")],
    )
    assert peak(inner, "database") == 12
