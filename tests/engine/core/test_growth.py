"""Which loop aggregations grow with the batch (engine/core/growth.py)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.core.growth import growing_aggregations

GALLERY = Path(__file__).resolve().parents[3] / "builder" / "gallery"


def test_projections_of_the_loops_lists_grow_and_bounded_reads_do_not() -> None:
    aggregations = {
        "rows": "results[*].{id: item.id, score: outputs.a.score}",
        "high": "results[?outputs.a.level=='high'].item.name",
        "errors": "join('\n', failed[*].error)",
        "all": "@",
        "also": "{n: length(results), every: failed}",
        "sorted": "reverse(sort_by(rows, &score))",  # reads `rows`, found growing before it
        "top": "reverse(sort_by(rows, &score))[:50]",
        "last": "rows[-5:]",
        "count": "length(results)",
        "total": "sum(results[*].outputs.a.score)",
        "best": "max_by(results[*].{id: item.id, s: outputs.a.score}, &s)",
        "first": "results | [0]",
        "examples": "{count: length(failed), examples: failed[:3].{e: error}}",
        "text": "join('', [join('\n', failed[:100].error), length(failed) > `100` && 'more' || ''])",
        "broken": "results[",  # the expression checks report it; no growth is claimed
    }
    assert growing_aggregations(aggregations) == {"rows", "high", "errors", "all", "also", "sorted"}


def test_the_gallerys_growing_aggregations_are_the_whole_batch_tables_its_responses_return() -> (
    None
):
    """Each is returned whole in a response body (the caller asked for every row); none is
    put into a prompt or a Slack text (test_gallery_templates: no template warns)."""
    growing = {}
    for path in sorted(GALLERY.glob("*.json")):
        if path.name.endswith(".sample.json"):
            continue
        for block in json.loads(path.read_text())["graph"]["blocks"]:
            found = growing_aggregations(block["config"].get("aggregations") or {})
            if found:
                growing[f"{path.stem}/{block['id']}"] = found
    assert growing == {
        "contract-analysis/contracts": {"comparison"},
        "nested-fan-out/companies": {"report"},
        "nested-fan-out/employees": {"people"},
        "web-summariser/pages": {"summaries"},
    }
