"""The run_workflow management command: a run from the terminal, JSON on the last line."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from engine import run_costs
from engine.models import Run
from simulator.testing import RunningSimulator
from tests.builder.holds import held_until_in_flight
from tests.leads.rows import owner_rows

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


def write_leads(tmp_path: Path, n: int) -> Path:
    leads = [
        {
            "id": f"c{i}",
            "name": f"Cli {i}",
            "company": "Co",
            "title": "CTO",
            "email": f"c{i}@co.example",
            "domain": f"co{i}.example",
            "message": "hi",
        }
        for i in range(n)
    ]
    path = tmp_path / "body.json"
    path.write_text(json.dumps({"leads": leads}))
    return path


def run_command(*args: str, stderr: io.StringIO | None = None) -> dict[str, Any]:
    out = io.StringIO()
    call_command("run_workflow", *args, stdout=out, stderr=stderr or io.StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_runs_the_template_by_slug(owner: Any, simulator: RunningSimulator, tmp_path: Path) -> None:
    body = write_leads(tmp_path, 12)
    err = io.StringIO()
    with held_until_in_flight(simulator, "clearbit", 10):
        result = run_command(
            "parallel-lead-enrichment", "--input", str(body), "--user", owner.username, stderr=err
        )
    line = r"wall [\d.]+ s · sequential [\d.]+ s · [\d.]+× faster · [\d,]+ tokens · \$\d+\.\d{4}"
    assert re.search(line, err.getvalue()), err.getvalue()
    assert set(result) == {
        "run_id",
        "status",
        "total",
        "succeeded",
        "failed",
        "wall_seconds",
        "summary",
    }
    assert result["status"] == "succeeded" and (
        result["total"],
        result["succeeded"],
        result["failed"],
    ) == (12, 12, 0)
    assert Run.objects.get(pk=result["run_id"]).trigger == "cli"
    # The run's cost line, as the REST API reads it (tests/builder/test_run_summary.py).
    run = Run.objects.select_related("version").get(pk=result["run_id"])
    found = run_costs.summary(run)
    assert result["summary"] == {key: found[key] for key in result["summary"]}
    assert result["summary"]["tokens"]["total"] > 0 and result["summary"]["llm_calls"] == 25
    assert result["summary"]["speedup"] > 1 and result["summary"]["cost_usd"] > 0
    assert len(owner_rows(owner)) == 12
    assert simulator.control.stats()["peak_in_flight"]["clearbit"] == 10


def test_sequential_and_max_concurrent_override_the_loop(
    owner: Any, simulator: RunningSimulator, tmp_path: Path
) -> None:
    body = write_leads(tmp_path, 6)
    run_command(
        "parallel-lead-enrichment", "--input", str(body), "--user", owner.username, "--sequential"
    )
    assert simulator.control.stats()["peak_in_flight"]["clearbit"] == 1
    simulator.control.reset()
    workflow_id = str(owner.workflows.get().pk)
    with held_until_in_flight(simulator, "clearbit", 2):
        run_command(
            workflow_id, "--input", str(body), "--user", owner.username, "--max-concurrent", "2"
        )
    assert simulator.control.stats()["peak_in_flight"]["clearbit"] == 2


def test_runs_a_workflow_file(owner: Any, tmp_path: Path) -> None:
    graph = {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {
                "id": "t",
                "type": "transform",
                "name": "t",
                "config": {"input": "<webhook.body.n>", "expression": "@"},
            },
        ],
        "edges": [{"source": "webhook", "target": "t"}],
    }
    (tmp_path / "flow.json").write_text(json.dumps(graph))
    (tmp_path / "in.json").write_text('{"n": 3}')
    result = run_command(
        str(tmp_path / "flow.json"), "--input", str(tmp_path / "in.json"), "--user", owner.username
    )
    assert result["status"] == "succeeded"
    assert Run.objects.get(pk=result["run_id"]).outputs["t"] == {"result": 3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["parallel-lead-enrichment", "--input", "/nonexistent.json"], "cannot read --input"),
        (
            ["no-such-template", "--input", "BODY"],
            "is not a workflow id, a .json file, or a template",
        ),
        (["parallel-lead-enrichment", "--input", "BAD"], "is not JSON"),
        (["parallel-lead-enrichment", "--input", "BODY", "--max-concurrent", "0"], "at least 1"),
        (["999999", "--input", "BODY"], "has no workflow 999999"),
    ],
)
def test_bad_arguments_give_clear_errors(
    owner: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    body = write_leads(tmp_path, 1)
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    args = [str(body) if a == "BODY" else str(bad) if a == "BAD" else a for a in args]
    with pytest.raises(CommandError, match=message):
        call_command("run_workflow", *args, "--user", owner.username, stdout=io.StringIO())
    assert Run.objects.count() == 0


def test_an_invalid_workflow_lists_its_errors(owner: Any, tmp_path: Path) -> None:
    from builder.models import Secret

    Secret.objects.filter(owner=owner).delete()
    body = write_leads(tmp_path, 1)
    with pytest.raises(CommandError, match="CLEARBIT_API_KEY' is not one of your secrets"):
        call_command(
            "run_workflow",
            "parallel-lead-enrichment",
            "--input",
            str(body),
            "--user",
            owner.username,
            stdout=io.StringIO(),
        )


def typed_flow(tmp_path: Path) -> Path:
    graph = {
        "blocks": [
            {
                "id": "webhook",
                "type": "webhook",
                "name": "webhook",
                "config": {
                    "body_schema": {
                        "type": "object",
                        "properties": {"n": {"type": "integer"}},
                        "required": ["n"],
                    }
                },
            },
            {
                "id": "t",
                "type": "transform",
                "name": "t",
                "config": {"input": "<webhook.body.n>", "expression": "@"},
            },
        ],
        "edges": [{"source": "webhook", "target": "t"}],
    }
    path = tmp_path / "typed.json"
    path.write_text(json.dumps(graph))
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"n": "three"}', r"does not match the webhook's body schema:\n  - n: 'three' is not"),
        (b'{"n": 3, "note": "caf\xe9"}', r"is not UTF-8 \(byte 21\)"),
    ],
)
def test_an_input_the_webhook_would_refuse_is_a_clear_error(
    owner: Any, tmp_path: Path, body: bytes, message: str
) -> None:
    flow = typed_flow(tmp_path)
    (tmp_path / "in.json").write_bytes(body)
    with pytest.raises(CommandError, match=message):
        call_command(
            "run_workflow",
            str(flow),
            "--input",
            str(tmp_path / "in.json"),
            "--user",
            owner.username,
            stdout=io.StringIO(),
        )
    assert Run.objects.count() == 0


def test_a_workflow_file_that_is_not_utf8_is_a_clear_error(owner: Any, tmp_path: Path) -> None:
    flow = tmp_path / "latin1.json"
    flow.write_bytes(b'{"name": "caf\xe9", "graph": {"blocks": [], "edges": []}}')
    body = write_leads(tmp_path, 1)
    with pytest.raises(CommandError, match=r"latin1.json is not UTF-8 \(byte 13\)"):
        call_command(
            "run_workflow",
            str(flow),
            "--input",
            str(body),
            "--user",
            owner.username,
            stdout=io.StringIO(),
        )


def test_the_run_starts_with_what_the_process_set_up_frozen_out_of_the_collector(
    owner: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full collection scanning the process's modules fell on the run's start (~130 ms).
    import gc

    from builder.management.commands import run_workflow as command

    frozen: list[int] = []
    execute = command.execute_run

    async def recording(*args: Any, **kwargs: Any) -> None:
        frozen.append(gc.get_freeze_count())
        await execute(*args, **kwargs)

    monkeypatch.setattr(command, "execute_run", recording)
    graph = {"blocks": [{"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}]}
    (tmp_path / "flow.json").write_text(json.dumps({**graph, "edges": []}))
    (tmp_path / "in.json").write_text("{}")
    result = run_command(
        str(tmp_path / "flow.json"), "--input", str(tmp_path / "in.json"), "--user", owner.username
    )
    assert result["status"] == "succeeded"
    assert frozen and frozen[0] > 0
    assert gc.get_freeze_count() == 0  # the run's end gave it back to the collector
