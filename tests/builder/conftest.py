"""Builder fixtures: the lead-enrichment template, and a provider simulator for real runs.

Tests that execute runs need `@pytest.mark.django_db(transaction=True, databases=[...])`
(the run executes on the executor thread, with its own connections; its database block
writes to the `data` database) and the `providers` fixture, which routes OpenAI, Clearbit,
LinkedIn and Slack to an in-thread simulator and, on teardown, releases holds and waits for
every run to finish before the database is flushed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from builder import gallery, services
from engine.models import FINAL_STATUSES, Run
from engine.runner import executor
from simulator.testing import RunningSimulator, run_in_thread

TEMPLATE = "parallel-lead-enrichment"
CLEARBIT_KEY = "cb-key-7f3a9d1e5b2c4e6f8a0b"
LINKEDIN_KEY = "li-key-2d4f6a8c0e1b3d5f7a9c"
RUN_TIMEOUT = 20.0


def wait_for(
    predicate: Callable[[], Any], timeout: float = RUN_TIMEOUT, what: str = "condition"
) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def finish_run(run_id: Any, timeout: float = RUN_TIMEOUT) -> Run:
    """Block until the run is over (executor future done and a final status stored)."""
    executor.wait(run_id, timeout)

    def final() -> Run | None:
        run = Run.objects.get(pk=run_id)
        return run if run.status in FINAL_STATUSES and run.finished_at else None

    return wait_for(final, timeout, f"run {run_id} to reach a final status")


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    """`wait_for(predicate, timeout=..., what=...)`: poll until truthy, fail on timeout."""
    return wait_for


@pytest.fixture
def lead_secrets() -> dict[str, str]:
    """The secret values `lead_workflow`'s owner has."""
    return {"CLEARBIT_API_KEY": CLEARBIT_KEY, "LINKEDIN_API_KEY": LINKEDIN_KEY}


@pytest.fixture(name="finish_run")
def finish_run_fixture() -> Callable[..., Run]:
    """`finish_run(run_id)`: wait for the run to end, return its row."""
    return finish_run


@pytest.fixture(scope="session")
def simulator() -> Iterator[RunningSimulator]:
    with run_in_thread() as running:
        yield running


@pytest.fixture
def providers(simulator: RunningSimulator, settings: Any) -> Iterator[RunningSimulator]:
    simulator.control.reset(latency_ms=0, jitter_ms=None, seed=None, record=True)
    sim = simulator.base_url
    settings.KLYNTOS_HOST_OVERRIDES = ",".join(
        f"{host}={sim}"
        for host in ("api.openai.com", "api.clearbit.com", "api.linkedin.com", "slack.com")
    )
    settings.OPENAI_API_KEY = "sk-test"
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    yield simulator
    simulator.control.reset()  # releases holds, so nothing stays parked
    for run_id in Run.objects.exclude(status__in=FINAL_STATUSES).values_list("pk", flat=True):
        finish_run(run_id)


@pytest.fixture
def template() -> dict[str, Any]:
    return copy.deepcopy(gallery.template_get(TEMPLATE))


@pytest.fixture
def leads(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Five valid leads (the template's sample)."""
    sample = template["sample"]["leads"][:5]
    assert len(sample) == 5
    return sample


@pytest.fixture
def lead_workflow(user: Any) -> Any:
    """The template instantiated for `user`, who has the two secrets it reads."""
    services.secret_set(owner=user, name="CLEARBIT_API_KEY", value=CLEARBIT_KEY)
    services.secret_set(owner=user, name="LINKEDIN_API_KEY", value=LINKEDIN_KEY)
    return gallery.template_instantiate(owner=user, slug=TEMPLATE)
