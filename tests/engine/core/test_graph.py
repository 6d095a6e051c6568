from typing import Any

import pytest

from engine.blocks import REGISTRY
from engine.core.graph import GraphFormatError, parse_graph
from engine.core.validation import validate

WEBHOOK = {"id": "webhook_1", "type": "webhook", "name": "webhook_1", "parent": None}


def test_sticky_notes_are_kept_out_of_the_graph_and_of_validation() -> None:
    data = {
        "blocks": [WEBHOOK],
        "edges": [],
        "notes": [
            {
                "id": "note_1",
                "text": "Reads <env.NOT_A_SECRET> and <nowhere.x>: only a note",
                "position": {"x": 1, "y": 2},
                "size": {"width": 200, "height": 100},
            }
        ],
    }
    graph = parse_graph(data)
    assert [b.id for b in graph.blocks] == ["webhook_1"]
    # What a note says is never read as a reference: the graph is valid.
    assert validate(graph, REGISTRY).ok


@pytest.mark.parametrize(
    ("notes", "message"),
    [
        ({}, "'notes' must be a list"),
        ([1], r"notes\[0\] must be an object"),
        ([{"id": "n"}], r"notes\[0\] needs a string 'id' and 'text'"),
        ([{"id": "n", "text": 3}], r"notes\[0\] needs a string 'id' and 'text'"),
        ([{"id": "n", "text": "", "position": [1]}], r"notes\[0\]\.position must be an object"),
        ([{"id": "n", "text": "", "size": "big"}], r"notes\[0\]\.size must be an object"),
    ],
)
def test_malformed_notes_are_refused_by_name(notes: Any, message: str) -> None:
    with pytest.raises(GraphFormatError, match=message):
        parse_graph({"blocks": [], "edges": [], "notes": notes})


def test_descendants_are_a_loops_body_nested_loops_included() -> None:
    def b(id_: str, parent: str | None = None) -> dict[str, Any]:
        return {"id": id_, "type": "transform", "name": id_, "parent": parent, "config": {}}

    g = parse_graph(
        {"blocks": [b("outer"), b("a", "outer"), b("inner", "outer"), b("c", "inner"), b("x")]}
    )
    assert sorted(block.id for block in g.descendants("outer")) == ["a", "c", "inner"]
    assert [block.id for block in g.descendants("inner")] == ["c"]
    assert g.descendants("x") == []
