"""The shipped template at 100,000 leads, by construction: its loop aggregations never build
a value that holds whole results (each stays within KLYNTOS_MAX_OUTPUT_BYTES), and the
summary prompt and Slack text written from them stay the same small size whatever N."""

from __future__ import annotations

from typing import Any

import pytest

from builder.gallery import template_get
from engine.core.errors import SizeLimitError
from engine.core.expressions import search
from engine.core.refs import Scope, render_text
from engine.core.sizes import DEFAULT_MAX_OUTPUT_BYTES

LEADS = 100_000
LEVELS = ("high", "medium", "low")
# What the template's own top 5 used to be: sorting whole results builds a list as large as
# all of them (about 1.5 KB per lead here), past the limit long before 100,000 leads.
WHOLE_RESULTS_TOP_LEADS = (
    "reverse(sort_by(results, &outputs.agent_analysis.qualification_score))[:5]"
    ".{lead_id: item.id, name: item.name, company: item.company,"
    " score: outputs.agent_analysis.qualification_score}"
)


def blocks() -> dict[str, dict[str, Any]]:
    return {b["id"]: b for b in template_get("parallel-lead-enrichment")["graph"]["blocks"]}


def loop_output(n: int) -> dict[str, Any]:
    """A loop output shaped like the template's: per-lead analysis and item, and the other
    steps' outputs (shared objects: the meter counts each appearance, as JSON would)."""
    clearbit = {
        "status": 200,
        "body": {"name": "Acme", "metrics": {"employees": 420}, "x": "y" * 600},
    }
    linkedin = {"status": 200, "body": {"profile_url": "https://www.linkedin.com/in/" + "p" * 40}}
    merge = {"content": "A complete profile. " * 20, "model": "gpt-4o-mini", "usage": {}}
    store = {"rowcount": 1, "rows": []}
    results = [
        {
            "index": i,
            "item": {"id": f"L{i:06d}", "name": f"Person {i}", "company": f"Company {i % 97}"},
            "outputs": {
                "agent_analysis": {
                    "qualification_score": 1 + (i * 7919) % 10,
                    "urgency_level": LEVELS[i % 3],
                },
                "http_clearbit": clearbit,
                "http_linkedin": linkedin,
                "agent_merge": merge,
                "store_lead": store,
            },
        }
        for i in range(n)
    ]
    failed = [
        {
            "index": n + k,
            "item": {"id": f"F{k}", "name": f"Failed {k}"},
            "block": step,
            "error": "x",
        }
        for k, step in enumerate(["http_clearbit"] * 7 + ["agent_analysis"] * 2)
    ]
    return {
        "results": results,
        "count": n + len(failed),
        "succeeded": n,
        "failed": failed,
        "not_started": 0,
        "not_started_reason": "",
    }


def test_the_templates_summary_inputs_stay_small_at_100000_leads() -> None:
    output = loop_output(LEADS)
    with pytest.raises(SizeLimitError):
        search(WHOLE_RESULTS_TOP_LEADS, output, max_bytes=DEFAULT_MAX_OUTPUT_BYTES)

    config = blocks()
    # As the loop computes them: in order, each over the output so far.
    for name, expression in config["loop"]["config"]["aggregations"].items():
        output[name] = search(expression, output, max_bytes=DEFAULT_MAX_OUTPUT_BYTES)

    top = sorted(range(LEADS), key=lambda i: (1 + (i * 7919) % 10, i), reverse=True)[:5]
    assert [lead["lead_id"] for lead in output["top_leads"]] == [f"L{i:06d}" for i in top]
    assert output["urgency_counts"] == {"high": 33_334, "medium": 33_333, "low": 33_333}
    assert output["average_score"] == pytest.approx(5.5, abs=0.01)
    assert output["failures"]["count"] == 9
    assert output["failures"]["by_step"] == {
        "agent_analysis": 2,
        "http_clearbit": 7,
        "http_linkedin": 0,
        "agent_merge": 0,
        "store_lead": 0,
    }
    assert len(output["failures"]["examples"]) == 3

    scope = Scope({"loop": output, "agent_summary": {"content": "A summary."}})
    prompt = render_text(config["agent_summary"]["config"]["user_prompt"], scope)
    assert prompt.startswith("Processed 100009 leads: 100000 enriched, 9 failed, 0 not started.\n")
    assert len(prompt.encode()) < 2000
    text = render_text(config["slack"]["config"]["text"], scope)
    assert "Top prospects: [" in text and len(text) < 2000
