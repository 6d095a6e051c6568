"""A run's share of the providers it shares with other runs (issue 9 item 4): its weight and
priority, given when it starts (REST, CLI), kept in its options, and what its executor uses."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from builder.gallery import template_instantiate
from engine.models import Run
from engine.runner import RunSpec, run_options
from tests.engine.conftest import owner, simulator

__all__ = ["owner", "simulator"]

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_weight_and_priority_are_run_options_bounded_and_kept(owner: Any) -> None:
    workflow = template_instantiate(owner=owner, slug="parallel-lead-enrichment")
    client = client_for(owner)
    url = f"/api/workflows/{workflow.pk}/runs/"
    started = client.post(
        url, {"input": {"leads": []}, "weight": 2.5, "priority": -3}, format="json"
    )
    assert started.status_code == 201, started.json()
    run = Run.objects.get(pk=started.json()["id"])
    assert (run.options["weight"], run.options["priority"]) == (2.5, -3)
    shown = client.get(f"/api/runs/{run.pk}/").json()
    assert (shown["weight"], shown["priority"]) == (2.5, -3)
    for bad in ({"weight": 0}, {"weight": 101}, {"priority": 101}, {"priority": 1.5}):
        answer = client.post(url, {"input": {"leads": []}, **bad}, format="json")
        assert answer.status_code == 400 and set(bad) <= set(answer.json()), answer.json()
    plain = client.post(url, {"input": {"leads": []}}, format="json")
    options = Run.objects.get(pk=plain.json()["id"]).options
    assert "weight" not in options and "priority" not in options
    assert (plain.json()["weight"], plain.json()["priority"]) == (1.0, 0)


def test_the_executor_takes_the_runs_share_from_its_options() -> None:
    spec = RunSpec(
        graph=None, input={}, env={}, options={"weight": 3, "priority": 7}, data=None, owner_id=5
    )  # type: ignore[arg-type]
    options = run_options(spec, 42)
    assert (options.weight, options.priority, options.run_key) == (3.0, 7, "42")
    assert options.owner_key == "5"  # weight and priority count within the owner's runs
    defaults = run_options(RunSpec(graph=None, input={}, env={}, options={}, data=None))  # type: ignore[arg-type]
    assert (defaults.weight, defaults.priority, defaults.run_key) == (1.0, 0, "")
    assert defaults.owner_key == ""


def test_the_cli_takes_weight_and_priority(owner: Any, tmp_path: Any) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"leads": []}')
    args = ["parallel-lead-enrichment", "--input", str(body), "--user", owner.username]
    for bad, message in (
        (["--weight", "0"], "--weight must be between 0.01 and 100"),
        (["--priority", "200"], "--priority must be between -100 and 100"),
    ):
        with pytest.raises(CommandError, match=message):
            call_command("run_workflow", *args, *bad, stdout=io.StringIO())
    call_command(
        "run_workflow",
        *args,
        "--weight",
        "4",
        "--priority",
        "2",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    run = Run.objects.get()
    assert (run.options["weight"], run.options["priority"]) == (4.0, 2)
