"""The HTTP block's output: measured against KLYNTOS_MAX_OUTPUT_BYTES and scanned for secrets
from one JSON writing of a small answer (engine/core/spec.py `written_out`), by walking a big
one."""

from __future__ import annotations

from engine.core.executor import RunOptions
from engine.core.redaction import MASK
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block, graph, run_graph

KEY = "cb-secret-key-123456"


def lookup(domain: str) -> dict:
    url = f"https://api.clearbit.com/v2/companies/find?domain={domain}"
    return graph(
        [
            block("webhook", "webhook"),
            block("fetch", "http", url=url, headers={"Authorization": "Bearer <env.KEY>"}),
        ],
        [("webhook", "fetch")],
    )


async def test_a_small_answer_past_the_output_limit_fails_its_step(sim: RunningSimulator) -> None:
    outcome, rec = await run_graph(
        lookup("acme.com"), {}, sim=sim, env={"KEY": KEY}, options=RunOptions(max_output_bytes=120)
    )
    assert outcome.status == "failed"
    (failed,) = rec.of("step.failed")
    assert (
        failed.data["error"]
        == "the block's output is larger than 120 bytes (KLYNTOS_MAX_OUTPUT_BYTES)"
    )
    outcome, rec = await run_graph(
        lookup("acme.com"), {}, sim=sim, env={"KEY": KEY}, options=RunOptions(max_output_bytes=4096)
    )
    assert outcome.status == "succeeded"


async def test_a_secret_an_answer_echoes_is_masked_in_its_step(sim: RunningSimulator) -> None:
    # The run's secret value is the domain asked for: the answer carries it back.
    outcome, rec = await run_graph(lookup(KEY), {}, sim=sim, env={"KEY": KEY})
    assert outcome.status == "succeeded"
    (finished,) = [e for e in rec.of("step.finished") if e.data["block"] == "fetch"]
    assert finished.data["redacted"] is True
    assert KEY not in repr(finished.data) and MASK in repr(finished.data["output"]["body"])
