"""The contract-analysis template (builder/gallery/contract-analysis.json): key terms
extracted from each document in parallel with a response format, then one comparison report
written from the loop's aggregations (never from the documents themselves)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from builder import gallery
from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import validate
from simulator import answers
from tests.builder.asgi_kit import post
from tests.builder.holds import held_until_in_flight

SLUG = "contract-analysis"
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])
REPORT_SYSTEM = "Write a concise comparison report"


def documents(n: int) -> dict[str, Any]:
    return {
        "documents": [
            {
                "id": f"C{i:03d}",
                "title": f"Contract {i:03d}",
                "text": f"Agreement {i:03d} between Party {i} and Northwind Traders for {i % 36 + 1} months.",
            }
            for i in range(n)
        ]
    }


def answer(entry: dict[str, Any]) -> Any:
    return answers.chat_completion(entry["json"])["choices"][0]["message"]["content"]


def run_sample(user: Any, body: dict[str, Any]) -> dict[str, Any]:
    workflow = gallery.template_instantiate(owner=user, slug=SLUG)
    response = post(f"/hooks/{workflow.webhook.token}", body, {"Prefer": "wait=30"})
    assert response["status"] == 200, response
    return dict(response["json"])


def check(body: dict[str, Any], answered: dict[str, Any], received: list[dict[str, Any]]) -> None:
    llm = [e for e in received if e["endpoint"] == "openai"]
    extractions = {
        e["json"]["messages"][-1]["content"].split(":", 1)[0]: json.loads(answer(e))
        for e in llm
        if "response_format" in e["json"]
    }
    [report] = [e for e in llm if e["json"]["messages"][0]["content"].startswith(REPORT_SYSTEM)]
    terms = [extractions[f"Contract {d['id']}"] for d in body["documents"]]
    assert answered["report"] == answer(report)
    assert [c["id"] for c in answered["contracts"]] == [d["id"] for d in body["documents"]]
    for row, term in zip(answered["contracts"], terms, strict=True):
        assert (row["type"], row["term_months"], row["notice_days"], row["risk"]) == (
            term["contract_type"],
            term["term_months"],
            term["termination_notice_days"],
            term["risk_level"],
        )
    assert answered["total_annual_value_usd"] == pytest.approx(
        sum(t["annual_value_usd"] for t in terms)
    )
    assert answered["by_risk"] == {
        level: sum(t["risk_level"] == level for t in terms) for level in ("high", "medium", "low")
    }
    prompt = report["json"]["messages"][-1]["content"]
    assert f"Contracts analysed: {len(terms)} of {len(terms)}" in prompt
    # The report's table: the 50 contracts of the highest annual value (every one when there
    # are fewer), so a batch of 5,000 still fits the prompt; the answer has them all.
    table = json.loads(prompt.split(" (all of them when there are fewer): ", 1)[1])
    by_value = sorted(answered["contracts"], key=lambda c: -c["annual_value_usd"])
    assert len(table) == min(50, len(answered["contracts"]))
    assert [c["annual_value_usd"] for c in table] == [
        c["annual_value_usd"] for c in by_value[: len(table)]
    ]
    assert all(row in answered["contracts"] for row in table)
    for document in body["documents"]:
        assert document["text"] not in prompt  # the report reads aggregations, not documents


def test_the_template_is_valid_and_extracts_with_a_response_format() -> None:
    template = gallery.template_get(SLUG)
    result = validate(parse_graph(template["graph"]), REGISTRY, [])
    assert (result.errors, result.warnings) == ([], [])
    extract = next(b for b in template["graph"]["blocks"] if b["name"] == "extract_terms")
    assert extract["parent"] == "contracts"
    assert "termination_notice_days" in extract["config"]["response_format"]["required"]


@REAL_RUN
def test_the_sample_answers_one_report_and_the_comparison(user: Any, providers: Any) -> None:
    sample = gallery.template_get(SLUG)["sample"]
    answered = run_sample(user, sample)
    check(sample, answered, providers.control.stats()["received"])


@REAL_RUN
def test_50_contracts_are_read_10_at_a_time_into_one_report(user: Any, providers: Any) -> None:
    providers.control.configure(latency_ms={"openai": 100})
    body = documents(50)
    with held_until_in_flight(providers, "openai", 10):
        answered = run_sample(user, body)
    stats = providers.control.stats()
    assert stats["requests"]["openai"] == 51  # 50 extractions, one report
    assert stats["peak_in_flight"]["openai"] == 10
    check(body, answered, stats["received"])
