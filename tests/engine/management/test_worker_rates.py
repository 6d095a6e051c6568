"""Provider rates and adaptive limits across real workers (issue 9; engine/breaker_sharing.py):
two `manage.py worker` processes spend one tokens-per-window budget between them (the
simulator, enforcing the same budget, sees no more in any window and refuses nothing), and
a limit one worker halves on 429s bounds the run the other worker starts afterwards."""

from __future__ import annotations

import time
from typing import Any

import pytest

from builder import services
from engine.models import ItemRun, ProviderLimit, Run
from simulator.testing import RunningSimulator
from tests.engine.management.test_worker import start_workers, stop_workers, wait_until
from tests.engine.test_runner import make_run

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

LLM = "api.openai.com"
CLEARBIT = "api.clearbit.com"
# Every item of a loop on the worker that took its run (no chunks spread over workers).
ONE_WORKER_PER_RUN = {"KLYNTOS_LOOP_CHUNK_SIZE": "100000", "KLYNTOS_BREAKER_SYNC_SECONDS": "0.1"}


def start(owner: Any, blocks: list[dict[str, Any]], body: Any) -> Run:
    run = make_run(owner, blocks, [("webhook", "loop")], body)  # created, not submitted
    Run.objects.filter(pk=run.pk).delete()
    workflow = owner.workflows.get(pk=run.workflow_id)
    started_run, _ = services.run_start(workflow=workflow, input=run.input)
    return started_run


def loop_of(inner: dict[str, Any], max_concurrent: int) -> list[dict[str, Any]]:
    return [
        {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
        {
            "id": "loop",
            "type": "loop",
            "name": "loop",
            "config": {"items": "<webhook.body.items>", "max_concurrent": max_concurrent},
        },
        {**inner, "parent": "loop"},
    ]


ASK = {
    "id": "ask",
    "type": "agent",
    "name": "ask",
    "config": {
        "model": "gpt-4o-mini",
        "system_prompt": "Rate this company for a sales team in one short paragraph.",
        "user_prompt": "Company: <item.d>. Notes: <item.notes>",
    },
}
LOOKUP = {
    "id": "company",
    "type": "http",
    "name": "company",
    "config": {
        "url": "https://api.clearbit.com/v2/companies/find?domain=<item.d>",
        "headers": {"Authorization": "Bearer k"},
    },
}


def finished(*runs: Run) -> bool:
    done = Run.objects.filter(pk__in=[r.pk for r in runs], status__in=["succeeded", "failed"])
    return done.count() == len(runs)


def workers_of(run: Run) -> set[str]:
    return set(ItemRun.objects.filter(run=run).values_list("worker", flat=True))


def test_two_workers_spend_one_token_budget_between_them(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    settings.KLYNTOS_EXECUTOR = "workers"
    budget, window = 8_000, 1.0
    simulator.control.configure(
        latency_ms=20, limits={"openai": {"tokens_per_window": budget, "window_s": window}}
    )
    workers = start_workers(
        simulator,
        concurrency=1,  # one run each: the second run goes to the other worker
        KLYNTOS_PROVIDER_LIMITS=f"{LLM}=tpm:{budget}",
        KLYNTOS_PROVIDER_WINDOW_SECONDS=str(window),
        **ONE_WORKER_PER_RUN,
    )
    try:
        body = {"items": [{"d": f"d{i}.io", "notes": "word " * 300} for i in range(50)]}
        runs = [start(owner, loop_of(ASK, 10), body) for _ in range(2)]
        wait_until(lambda: finished(*runs), 120, "both runs to finish")
    finally:
        stop_workers(workers)
    for run in runs:
        run.refresh_from_db()
        assert (run.status, run.failed) == ("succeeded", 0)
    assert len(workers_of(runs[0]) | workers_of(runs[1])) == 2  # both workers spent tokens
    stats = simulator.control.stats()
    assert stats["requests"]["openai"] == 100
    assert stats["tokens"]["openai"] > 2 * budget  # the demand needed several windows
    assert stats["throttled"].get("openai", 0) == 0
    assert stats["peak_tokens_in_window"]["openai"] <= budget  # never past it, together


def test_a_limit_one_worker_halves_bounds_the_run_the_other_worker_starts(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    settings.KLYNTOS_EXECUTOR = "workers"
    cap = 16
    simulator.control.configure(latency_ms=40, limits={"clearbit": {"max_in_flight": 4}})
    workers = start_workers(
        simulator,
        concurrency=1,
        KLYNTOS_PROVIDER_LIMITS=f"{CLEARBIT}=concurrency:{cap};start:1",
        KLYNTOS_RETRY_ATTEMPTS="8",
        **ONE_WORKER_PER_RUN,
    )
    try:
        body = {"items": [{"d": f"a{i}.io"} for i in range(300)]}
        first = start(owner, loop_of(LOOKUP, cap), body)
        wait_until(
            lambda: ProviderLimit.objects.filter(key=CLEARBIT, limit__lte=cap // 2).exists(),
            60,
            "the first worker's cut to be written",
        )
        # Applied by the other worker at its next look (KLYNTOS_BREAKER_SYNC_SECONDS 0.1): the
        # second run starts after a few of them, not while the row is only written.
        time.sleep(1.0)
        body = {"items": [{"d": f"b{i}.io"} for i in range(40)]}
        second = start(owner, loop_of(LOOKUP, cap), body)
        wait_until(lambda: finished(first, second), 120, "both runs to finish")
    finally:
        stop_workers(workers)
    for run in (first, second):
        run.refresh_from_db()
        assert (run.status, run.failed) == ("succeeded", 0)
    assert workers_of(first) != workers_of(second)  # each on its own worker
    # The second worker never called under its own start (the cap): its first limit was the
    # cut the first worker shared, or one cut further.
    history = second.providers[CLEARBIT]["history"]
    assert history[0][1] <= cap // 2, history
    assert all(limit <= cap // 2 for _, limit in history), history
