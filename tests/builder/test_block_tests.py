"""Test one block (issue 10 item 6) over the REST API: inputs from the last run or from pins,
one real call at the simulator, the resolved config with secrets masked, clear refusals,
owner scoping, limits, and published runs that never read pins."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import pytest
from django.db import connections
from rest_framework.test import APIClient

from builder import services
from tests.builder.test_api import REAL_RUN, expect, no_raise


@pytest.fixture
def api(api: APIClient) -> APIClient:
    return no_raise(api)


@pytest.fixture
def other_api(other_api: APIClient) -> APIClient:
    return no_raise(other_api)


def url_of(workflow: Any, block_id: str) -> str:
    return f"/api/workflows/{workflow.pk}/blocks/{block_id}/test/"


def run_leads(api: APIClient, workflow: Any, leads: list[dict[str, Any]], finish_run: Any) -> str:
    started = expect(
        api.post(f"/api/workflows/{workflow.pk}/runs/", {"input": {"leads": leads}}, format="json"),
        201,
    )
    assert finish_run(started["id"]).status == "succeeded"
    return str(started["id"])


def openai_calls(providers: Any) -> list[dict[str, Any]]:
    return [c for c in providers.control.stats()["received"] if c["endpoint"] == "openai"]


def draft_graph(workflow: Any) -> dict[str, Any]:
    workflow.refresh_from_db()
    return copy.deepcopy(workflow.current_version.graph)


def block_of(graph: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in graph["blocks"] if b["id"] == block_id)


@REAL_RUN
def test_agent_block_tested_with_the_last_runs_item_makes_one_llm_call(
    api: APIClient, providers: Any, finish_run: Any, lead_workflow: Any, leads: list[Any]
) -> None:
    run_id = run_leads(api, lead_workflow, leads, finish_run)

    plan = expect(api.get(url_of(lead_workflow, "agent_analysis")), 200)
    assert plan["testable"] and plan["run"] == run_id
    assert plan["sources"]["lead"] == {"kind": "item", "block": "loop", "from": "run"}
    assert plan["inputs"]["lead"] == leads[0]  # the first item whose step succeeded
    assert "model provider" in plan["effect"]

    providers.control.reset(record=True)
    lead = {**leads[0], "name": "Ada Testcase"}
    answer = expect(
        api.post(url_of(lead_workflow, "agent_analysis"), {"inputs": {"lead": lead}}, "json"), 200
    )
    assert answer["status"] == "succeeded", answer
    assert answer["error"] is None and answer["attempts"] == 1 and answer["duration"] > 0
    assert 1 <= answer["output"]["qualification_score"] <= 10
    assert answer["sources"]["lead"]["from"] == "given"
    assert "Lead: Ada Testcase" in answer["config"]["user_prompt"]
    [call] = openai_calls(providers)  # that block alone: one call, nothing else
    assert "Ada Testcase" in call["prompt"]
    assert providers.control.stats()["requests"].get("clearbit", 0) == 0


@REAL_RUN
def test_merge_step_with_pinned_inputs_and_a_changed_prompt(
    api: APIClient, providers: Any, finish_run: Any, lead_workflow: Any, leads: list[Any]
) -> None:
    """The issue's acceptance: pin the merge step's inputs from the last run, change its
    prompt, run only that block: one LLM call with the new prompt, its output shown."""
    run_leads(api, lead_workflow, leads, finish_run)
    plan = expect(api.get(url_of(lead_workflow, "agent_merge")), 200)
    assert {n: s["from"] for n, s in plan["sources"].items()} == {
        "agent_analysis": "run",
        "http_clearbit": "run",
        "http_linkedin": "run",
    }
    graph = draft_graph(lead_workflow)
    for name, value in plan["inputs"].items():
        block_of(graph, name)["pin"] = {"output": value, "run": plan["run"]}
    saved = expect(
        api.put(
            f"/api/workflows/{lead_workflow.pk}/",
            {"graph": graph, "base_version": lead_workflow.current_version.number},
            format="json",
        ),
        200,
    )
    assert saved["version"] == 2

    graph["blocks"] = [dict(b) for b in graph["blocks"]]
    merge = block_of(graph, "agent_merge")
    merge["config"] = {**merge["config"], "user_prompt": "NEW PROMPT <http_clearbit.body>"}
    providers.control.reset(record=True)
    answer = expect(
        api.post(url_of(lead_workflow, "agent_merge"), {"graph": graph}, "json"),
        200,
    )
    assert answer["status"] == "succeeded", answer
    assert answer["sources"]["http_clearbit"]["from"] == "pin"
    assert set(answer["inputs"]) == {"http_clearbit"}  # only what the new prompt reads
    [call] = openai_calls(providers)
    assert "NEW PROMPT" in call["prompt"]
    assert answer["output"]["content"]


@REAL_RUN
def test_http_block_calls_for_real_and_its_secret_is_masked(
    api: APIClient,
    providers: Any,
    lead_workflow: Any,
    lead_secrets: dict[str, str],
    leads: list[Any],
) -> None:
    answer = expect(
        api.post(url_of(lead_workflow, "http_clearbit"), {"inputs": {"lead": leads[1]}}, "json"),
        200,
    )
    assert answer["status"] == "succeeded", answer
    assert answer["output"]["status"] == 200
    assert answer["config"]["headers"] == {"Authorization": "Bearer [redacted]"}
    assert answer["config"]["url"].endswith(f"domain={leads[1]['domain']}")
    assert "sends the request for real" in answer["effect"]
    [call] = [c for c in providers.control.stats()["received"] if c["endpoint"] == "clearbit"]
    assert call["authorization"] == f"Bearer {lead_secrets['CLEARBIT_API_KEY']}"
    body = str(answer)
    assert all(value not in body for value in lead_secrets.values())


@REAL_RUN
def test_a_secret_in_given_inputs_or_an_output_never_comes_back(
    api: APIClient, providers: Any, user: Any
) -> None:
    services.secret_set(owner=user, name="TOKEN", value="tok-very-secret-4242")
    workflow = services.workflow_create(
        owner=user,
        name="echo",
        graph={
            "blocks": [
                {
                    "id": "echo",
                    "type": "transform",
                    "name": "echo",
                    "config": {"input": {"a": "<env.TOKEN>", "b": "<x>"}, "expression": "@"},
                }
            ],
            "edges": [],
        },
    )
    answer = expect(
        api.post(url_of(workflow, "echo"), {"inputs": {"x": "tok-very-secret-4242"}}, "json"),
        200,
    )
    assert answer["status"] == "succeeded"
    assert answer["output"] == {"result": {"a": "[redacted]", "b": "[redacted]"}}
    assert "tok-very-secret-4242" not in str(answer)


@pytest.mark.django_db
def test_a_missing_reference_is_a_400_naming_block_and_field(
    api: APIClient, lead_workflow: Any
) -> None:
    answer = expect(api.post(url_of(lead_workflow, "agent_merge"), {}, "json"), 400)
    assert answer["block"] == "agent_merge" and answer["field"] == "user_prompt"
    assert answer["reference"] == "<agent_analysis.content>"
    assert answer["error"].startswith("agent_merge.user_prompt: <agent_analysis.content>")
    assert "pin its output, run the workflow once, or give it" in answer["error"]

    wrong = {"agent_analysis": {"score": 3}, "http_clearbit": {}, "http_linkedin": {}}
    answer = expect(api.post(url_of(lead_workflow, "agent_merge"), {"inputs": wrong}, "json"), 400)
    assert answer["field"] == "user_prompt"
    assert "'agent_analysis' has no field 'content'" in answer["error"]


@pytest.mark.django_db
def test_another_users_workflow_and_unknown_blocks_are_404(
    api: APIClient, other_api: APIClient, lead_workflow: Any
) -> None:
    url = url_of(lead_workflow, "agent_analysis")
    expect(other_api.get(url), 404)
    expect(other_api.post(url, {"inputs": {"lead": {}}}, "json"), 404)
    expect(api.get(url_of(lead_workflow, "nope")), 404)
    expect(api.post(url_of(lead_workflow, "nope"), {}, "json"), 404)
    expect(api.get(url, {"run": "not-a-run"}), 404)


@pytest.mark.django_db
def test_inputs_past_the_size_limit_are_400(
    api: APIClient, lead_workflow: Any, settings: Any
) -> None:
    settings.KLYNTOS_BLOCK_TEST_MAX_INPUT_BYTES = 1000
    big = {"lead": {"name": "x" * 2000}}
    answer = expect(api.post(url_of(lead_workflow, "agent_analysis"), {"inputs": big}, "json"), 400)
    assert answer["limit"] == "KLYNTOS_BLOCK_TEST_MAX_INPUT_BYTES"
    assert "the limit is 1000" in answer["error"]


@pytest.mark.django_db
def test_pins_past_their_limit_are_refused_on_save(
    api: APIClient, lead_workflow: Any, settings: Any
) -> None:
    settings.KLYNTOS_MAX_PIN_BYTES = 500
    graph = draft_graph(lead_workflow)
    block_of(graph, "agent_analysis")["pin"] = {"output": {"content": "y" * 600}}
    answer = expect(
        api.put(
            f"/api/workflows/{lead_workflow.pk}/",
            {"graph": graph, "base_version": 1},
            format="json",
        ),
        400,
    )
    assert answer["limit"] == "KLYNTOS_MAX_PIN_BYTES"
    block_of(graph, "agent_analysis")["pin"] = ["not", "an", "object"]
    settings.KLYNTOS_MAX_PIN_BYTES = 10_000
    answer = expect(
        api.put(
            f"/api/workflows/{lead_workflow.pk}/",
            {"graph": graph, "base_version": 1},
            format="json",
        ),
        400,
    )
    assert "pin must be an object" in str(answer)


@pytest.mark.django_db
def test_a_loop_is_not_tested_alone_and_says_why(api: APIClient, lead_workflow: Any) -> None:
    plan = expect(api.get(url_of(lead_workflow, "loop")), 200)
    assert plan["testable"] is False and "select a block inside it" in plan["reason"]
    answer = expect(api.post(url_of(lead_workflow, "loop"), {}, "json"), 400)
    assert answer["error"].startswith("loop: a Loop is tested through its body")


@REAL_RUN
def test_a_webhook_trigger_is_tested_with_the_given_input(
    api: APIClient, providers: Any, lead_workflow: Any, leads: list[Any]
) -> None:
    ok = expect(
        api.post(url_of(lead_workflow, "webhook"), {"trigger_input": {"leads": leads}}, "json"),
        200,
    )
    assert ok["status"] == "succeeded" and ok["output"] == {"body": {"leads": leads}}
    assert ok["trigger_from"] == "given"
    bad = expect(
        api.post(url_of(lead_workflow, "webhook"), {"trigger_input": {"x": 1}}, "json"), 200
    )
    assert bad["status"] == "failed"
    assert "body does not match the schema" in bad["error"]


@REAL_RUN
def test_a_block_with_invalid_settings_is_refused_before_running(
    api: APIClient, providers: Any, lead_workflow: Any, leads: list[Any]
) -> None:
    graph = draft_graph(lead_workflow)
    block_of(graph, "http_clearbit")["config"]["method"] = "FETCH"
    answer = expect(
        api.post(
            url_of(lead_workflow, "http_clearbit"),
            {"graph": graph, "inputs": {"lead": leads[0]}},
            "json",
        ),
        400,
    )
    assert answer["errors"][0]["field"] == "method"
    assert providers.control.stats()["requests"].get("clearbit", 0) == 0


PINNED_GRAPH: dict[str, Any] = {
    "blocks": [
        {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
        {
            "id": "pick",
            "type": "transform",
            "name": "pick",
            "config": {"input": "<hook.body>", "expression": "x"},
            "pin": {"output": {"result": "PINNED"}},
        },
        {
            "id": "shout",
            "type": "transform",
            "name": "shout",
            "config": {"input": {"got": "<pick.result>"}, "expression": "got"},
        },
    ],
    "edges": [{"source": "hook", "target": "pick"}, {"source": "pick", "target": "shout"}],
}


@REAL_RUN
def test_published_runs_never_use_pins(api: APIClient, finish_run: Any) -> None:
    created = expect(api.post("/api/workflows/", {"name": "p", "graph": PINNED_GRAPH}, "json"), 201)
    assert created["published_version"] == 1  # the pin is in the live version's graph
    url = f"/api/workflows/{created['id']}/blocks/shout/test/"
    tested = expect(api.post(url, {}, "json"), 200)
    assert tested["output"] == {"result": "PINNED"}  # a test reads the pin…
    assert tested["sources"]["pick"]["from"] == "pin"

    started = expect(
        api.post(f"/api/workflows/{created['id']}/runs/", {"input": {"x": "real"}}, "json"), 201
    )
    run = finish_run(started["id"])
    assert run.status == "succeeded"
    assert run.outputs["pick"] == {"result": "real"}  # …a run never does
    assert run.outputs["shout"] == {"result": "real"}

    # With the run there, a test that turns pins off takes the run's step outputs.
    unpinned = expect(api.post(url, {"pins": False}, "json"), 200)
    assert unpinned["output"] == {"result": "real"}
    assert unpinned["sources"]["pick"]["from"] == "run"


@pytest.mark.django_db
def test_a_dry_run_plans_for_the_posted_graph_without_running(
    api: APIClient, lead_workflow: Any
) -> None:
    """The editor asks with its unsaved graph: its new references and its pins count."""
    graph = draft_graph(lead_workflow)
    block_of(graph, "agent_analysis")["pin"] = {"output": {"content": "pinned"}}
    merge = block_of(graph, "agent_merge")
    merge["config"] = {**merge["config"], "user_prompt": "<agent_analysis.content> <lead.name>"}
    plan = expect(
        api.post(url_of(lead_workflow, "agent_merge"), {"graph": graph, "dry_run": True}, "json"),
        200,
    )
    assert plan["testable"] is True and plan["run"] is None
    assert plan["inputs"] == {"agent_analysis": {"content": "pinned"}}
    assert plan["sources"] == {
        "agent_analysis": {"kind": "output", "block": "agent_analysis", "from": "pin"},
        "lead": {"kind": "item", "block": "loop", "from": "missing"},
    }
    assert "status" not in plan


@REAL_RUN
def test_a_test_waits_for_the_provider_cap_its_process_runs_hold(
    api: APIClient,
    providers: Any,
    finish_run: Any,
    lead_workflow: Any,
    leads: list[Any],
    settings: Any,
    wait_for: Any,
) -> None:
    """A test runs beside the process's runs: with a cap of 1 on Clearbit, a test of the
    Clearbit block waits while a run's call holds the slot, then goes."""
    settings.KLYNTOS_PROVIDER_LIMITS = "api.clearbit.com=1"
    providers.control.configure(hold=[{"endpoint": "clearbit"}])
    started = expect(
        api.post(
            f"/api/workflows/{lead_workflow.pk}/runs/", {"input": {"leads": leads[:1]}}, "json"
        ),
        201,
    )
    wait_for(lambda: providers.control.stats()["requests"].get("clearbit") == 1, what="held")
    answers: list[Any] = []

    def test_in_a_thread() -> None:
        try:
            body = {"inputs": {"lead": leads[1]}}
            answers.append(api.post(url_of(lead_workflow, "http_clearbit"), body, "json"))
        finally:
            connections.close_all()  # the test database is dropped at the end

    tester = threading.Thread(target=test_in_a_thread)
    tester.start()
    time.sleep(1.0)
    assert providers.control.stats()["requests"]["clearbit"] == 1  # the test waits its turn
    assert tester.is_alive()
    providers.control.configure(hold=[])
    providers.control.release("clearbit")
    tester.join(30)
    answer = expect(answers[0], 200)
    assert answer["status"] == "succeeded", answer
    assert providers.control.stats()["requests"]["clearbit"] == 2
    assert finish_run(started["id"]).status == "succeeded"
