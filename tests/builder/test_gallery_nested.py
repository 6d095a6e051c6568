"""The nested fan-out template (builder/gallery/nested-fan-out.json): companies in parallel ×
employees per company in parallel, each loop under its own cap, measured at the simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from builder import gallery, services
from builder.services import run_create
from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import validate
from engine.models import Run
from engine.runner import execute_run
from simulator import answers
from simulator.testing import peak_concurrency

SLUG = "nested-fan-out"
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])
SECRETS = ["CLEARBIT_API_KEY", "LINKEDIN_API_KEY"]


def caps() -> tuple[int, int]:
    blocks = {b["name"]: b for b in gallery.template_get(SLUG)["graph"]["blocks"]}
    return blocks["companies"]["config"]["max_concurrent"], blocks["employees"]["config"][
        "max_concurrent"
    ]


def companies(n: int, per_company: int) -> dict[str, Any]:
    return {
        "companies": [
            {
                "name": f"Company {c:03d}",
                "domain": f"c{c:03d}.example",
                "employees": [
                    {"name": f"Person {c:03d}-{e:03d}", "email": f"p{e:03d}@c{c:03d}.example"}
                    for e in range(per_company)
                ],
            }
            for c in range(n)
        ]
    }


def run_template(owner: Any, body: Any) -> Run:
    for name in SECRETS:
        services.secret_set(owner=owner, name=name, value=f"key-{name.lower()}")
    workflow = gallery.template_instantiate(owner=owner, slug=SLUG)
    run, _ = run_create(workflow=workflow, input=body)
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    return run


def expected_report(body: dict[str, Any]) -> list[dict[str, Any]]:
    report = []
    for company in body["companies"]:
        info = answers.company(company["domain"])
        people = [
            {
                "name": e["name"],
                "headline": answers.person(e["email"])["headline"],
                "linkedin": answers.person(e["email"])["profile_url"],
            }
            for e in company["employees"]
        ]
        report.append(
            {
                "company": company["name"],
                "domain": company["domain"],
                "industry": info["category"]["industry"],
                "headcount": info["metrics"]["employees"],
                "profiled": len(people),
                "people": people,
            }
        )
    return report


def test_the_template_is_valid_with_one_loop_inside_the_other() -> None:
    template = gallery.template_get(SLUG)
    graph = parse_graph(template["graph"])
    result = validate(graph, REGISTRY, SECRETS)
    assert (result.errors, result.warnings) == ([], [])
    by_name = {b["name"]: b for b in template["graph"]["blocks"]}
    assert by_name["employees"]["parent"] == "companies"
    assert by_name["profile"]["parent"] == "employees"
    assert template["pattern"] and template["description"]
    assert len(template["sample"]["companies"]) >= 3


@REAL_RUN
def test_the_sample_runs_and_reports_every_company_and_employee(user: Any, providers: Any) -> None:
    sample = gallery.template_get(SLUG)["sample"]
    run = run_template(user, sample)
    assert run.status == "succeeded", run.error
    body = run.outputs["response"]["body"]
    assert body["companies"] == len(sample["companies"])
    assert body["employees_profiled"] == sum(len(c["employees"]) for c in sample["companies"])
    assert body["failures"] == {"companies": 0, "employees": 0, "employees_of_failed_companies": 0}
    assert body["report"] == expected_report(sample)


@REAL_RUN
def test_at_1000_employees_each_loops_cap_holds_at_the_simulator(user: Any, providers: Any) -> None:
    outer, inner = caps()
    providers.control.configure(latency_ms={"linkedin": 60, "clearbit": 60})
    body = companies(50, 20)
    run = run_template(user, body)
    assert run.status == "succeeded", run.error
    assert run.outputs["response"]["body"]["employees_profiled"] == 1000

    stats = providers.control.stats()
    assert stats["requests"]["clearbit"] == 50 and stats["requests"]["linkedin"] == 1000
    profiles = [e for e in stats["received"] if e["endpoint"] == "linkedin"]

    def company_of(entry: dict[str, Any]) -> str:
        return str(entry["query"]["email"]).split("@")[1]

    peak, peak_per_company, peak_companies = peak_concurrency(profiles, company_of)
    # Inner calls in flight: never past outer cap × inner cap, and the caps were reached
    # (a run that never filled them would prove nothing).
    assert peak == outer * inner
    assert stats["peak_in_flight"]["linkedin"] == outer * inner
    assert peak_per_company == inner  # the inner loop's own cap, per company
    assert peak_companies == outer  # the outer loop's cap: companies in flight at once


@REAL_RUN
def test_failures_count_the_employees_of_a_failed_company_too(user: Any, providers: Any) -> None:
    """A company whose lookup fails is left out of `results` with its employees (their rows
    say failed or not started): `failures.employees` counts them as well as the employees
    whose own lookup failed in a company that was enriched."""
    body = companies(4, 3)
    providers.control.configure(
        failures=[
            {"endpoint": "clearbit", "match": {"domain": "c001.example"}, "status": 404},
            {"endpoint": "linkedin", "match": {"email": "p000@c002.example"}, "status": 404},
        ]
    )
    run = run_template(user, body)
    assert run.status == "partially_succeeded", run.error
    answer = run.outputs["response"]["body"]
    assert [c["company"] for c in answer["report"]] == ["Company 000", "Company 002", "Company 003"]
    assert answer["employees_profiled"] == 3 + 2 + 3
    # 1 employee failed in Company 002, the 3 of Company 001 were never profiled.
    assert answer["failures"] == {
        "companies": 1,
        "employees": 4,
        "employees_of_failed_companies": 3,
    }
    profiled = answer["employees_profiled"] + answer["failures"]["employees"]
    assert profiled == sum(len(c["employees"]) for c in body["companies"])
