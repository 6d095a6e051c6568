"""A secret's value never reaches stored run data in an escaped form (defect 6): Slack's
echo of a message (its text Slack-escaped), and the HTTP block's refusal of a value in a
URL's host (which quoted the value with repr). Real runs on PostgreSQL, the Slack block
against the simulator."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.db import connections

from builder.services import run_create, secret_set, workflow_create
from engine.models import Run, StepRun
from engine.run_answer import read_answer
from engine.runner import execute_run
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block
from tests.engine.core.secret_forms import forms_in

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

MSEC = "Mx/9 q+Z=é\\w'\"%2F<b>&co"


def run(owner: Any, blocks: list[dict[str, Any]], target: str) -> Run:
    graph = {"blocks": blocks, "edges": [{"source": "webhook", "target": target}]}
    workflow = workflow_create(owner=owner, name="echo", graph=graph)
    started, _ = run_create(workflow=workflow, input={"x": 1})
    asyncio.run(execute_run(started.pk))
    connections.close_all()
    return Run.objects.get(pk=started.pk)


def stored(run: Run) -> str:
    """Everything the run's rows hold, as text."""
    steps = list(StepRun.objects.filter(run=run).values("output", "error"))
    return json.dumps([run.outputs, run.error, steps], ensure_ascii=False) + str(steps)


def test_slacks_echo_of_an_escaped_secret_is_masked(
    owner: Any, simulator: RunningSimulator
) -> None:
    secret_set(owner=owner, name="MSEC", value=MSEC)
    done = run(
        owner,
        [
            block("webhook", "webhook"),
            block("post", "slack", channel="#sales", text="Key: <env.MSEC>"),
        ],
        "post",
    )
    assert done.status == "succeeded", done.error
    [call] = [c for c in simulator.control.stats()["received"] if c["endpoint"] == "slack"]
    assert "&lt;b&gt;&amp;co" in call["text"]  # Slack got the escaped value (it is the owner's)
    output = StepRun.objects.get(run=done, name="post").output
    assert output["text"] == "Key: [redacted]"
    assert forms_in(stored(done), MSEC) == []


def test_a_secret_refused_in_a_urls_host_is_not_quoted_in_the_error(owner: Any) -> None:
    secret_set(owner=owner, name="MSEC", value=MSEC)
    done = run(
        owner,
        [block("webhook", "webhook"), block("h4", "http", url="http://<env.MSEC>/path")],
        "h4",
    )
    assert done.status == "failed"
    error = StepRun.objects.get(run=done, name="h4").error
    assert "<env.MSEC> in the URL's host is not a host name" in error
    assert forms_in(stored(done), MSEC) == []
    assert forms_in(done.error, MSEC) == []
    answer = read_answer(done.pk)  # what a webhook caller waiting for the run reads
    assert answer is not None and forms_in(answer.body.decode(), MSEC) == []
    assert forms_in(json.dumps(json.loads(answer.body)), MSEC) == []
