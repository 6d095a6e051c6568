"""The support-triage template (builder/gallery/support-triage.json): tickets triaged by an
Agent in parallel, started in the order of the loop's priority (the customer's plan), with
the counts and urgent tickets posted to Slack."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from builder import gallery
from builder.services import run_create
from engine.models import Run
from engine.runner import execute_run
from simulator import answers

SLUG = "support-triage"
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])
RANK = {"enterprise": 3, "pro": 2, "free": 1}


def run_template(owner: Any, body: Any) -> Run:
    workflow = gallery.template_instantiate(owner=owner, slug=SLUG)
    run, _ = run_create(workflow=workflow, input=body)
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    return run


def ticket_of(entry: dict[str, Any]) -> str:
    return str(entry["json"]["messages"][-1]["content"].split(" ", 2)[1])


@REAL_RUN
def test_the_sample_is_triaged_and_posted_to_slack(user: Any, providers: Any) -> None:
    sample = gallery.template_get(SLUG)["sample"]
    run = run_template(user, sample)
    assert run.status == "succeeded", run.error
    received = providers.control.stats()["received"]
    llm = [e for e in received if e["endpoint"] == "openai"]
    triaged = {
        ticket_of(e): json.loads(
            answers.chat_completion(e["json"])["choices"][0]["message"]["content"]
        )
        for e in llm
    }
    body = run.outputs["response"]["body"]
    assert (body["tickets"], body["triaged"]) == (len(sample["tickets"]), len(sample["tickets"]))
    urgent = [t for t in sample["tickets"] if triaged[t["id"]]["urgency"] == "urgent"]
    assert [u["id"] for u in body["urgent"]] == [t["id"] for t in urgent][:10]
    assert sum(body["by_team"].values()) == len(sample["tickets"])
    [slack] = [e for e in received if e["endpoint"] == "slack"]
    assert slack["json"]["channel"] == "#support-triage"
    text = slack["text"]
    assert f"{len(urgent)} urgent" in text
    # Written for people: a line per team count and per urgent ticket, no JSON pasted in.
    teams = " · ".join(
        f"{team} {body['by_team'][team]}"
        for team in ("engineering", "billing", "success", "support")
    )
    assert f"By team: {teams}\n" in text
    lines = [
        f"• {t['id']} {t['customer']} ({t['plan']}, {triaged[t['id']]['team']}): "
        f"{triaged[t['id']]['summary']}"
        for t in urgent[:10]
    ]
    assert text.endswith("Urgent (the first 10):\n" + ("\n".join(lines) or "none"))
    assert "{" not in text


@REAL_RUN
def test_tickets_start_in_priority_order_at_the_simulator(user: Any, providers: Any) -> None:
    providers.control.configure(latency_ms={"openai": 20})
    plans = ["free", "pro", "enterprise", "free", "pro"]
    tickets = [
        {
            "id": f"T{i:04d}",
            "subject": f"Subject {i}",
            "body": "Help",
            "plan": plans[i % 5],
            "customer": f"C{i}",
        }
        for i in range(200)
    ]
    run = run_template(user, {"tickets": tickets})
    assert run.status == "succeeded", run.error
    llm = [e for e in providers.control.stats()["received"] if e["endpoint"] == "openai"]
    arrived = [ticket_of(e) for e in sorted(llm, key=lambda e: e["start_seq"])]
    plan = {t["id"]: t["plan"] for t in tickets}
    # The loop's order: higher plan first, input order among equals (a stable sort).
    expected = [t["id"] for t in sorted(tickets, key=lambda t: -RANK[t["plan"]])]
    assert arrived[:5] == expected[:5]  # the first window is all enterprise
    rank = {ticket: i for i, ticket in enumerate(arrived)}
    cap = 5  # items started together may reach the provider in any order, never further
    assert all(abs(rank[t] - i) < cap for i, t in enumerate(expected))
    last_enterprise = max(rank[t] for t in plan if plan[t] == "enterprise")
    first_free = min(rank[t] for t in plan if plan[t] == "free")
    assert last_enterprise < first_free
