"""graph_diff: what the editor's version diff shows."""

from __future__ import annotations

from typing import Any

from builder.version_diff import MAX_VALUE_CHARS, graph_diff


def block(block_id: str, **config: Any) -> dict[str, Any]:
    return {
        "id": block_id,
        "type": "agent",
        "name": block_id,
        "position": {"x": 0, "y": 0},
        "config": config,
    }


def test_identical_graphs_have_no_changes() -> None:
    graph = {"blocks": [block("a", user_prompt="hi")], "edges": []}
    assert graph_diff(graph, graph) == {
        "blocks": {"added": [], "removed": [], "changed": [], "moved": []},
        "edges": {"added": [], "removed": []},
        "pins": {"added": [], "removed": [], "changed": []},
    }


def test_fields_added_removed_and_changed_are_named_by_path() -> None:
    before = {"blocks": [block("a", user_prompt="hi", model="m1")], "edges": []}
    after = {"blocks": [block("a", user_prompt="hello", temperature=0.2)], "edges": []}
    fields = graph_diff(before, after)["blocks"]["changed"][0]["fields"]
    assert fields == [
        {"path": "config.model", "change": "removed", "before": "m1", "after": None},
        {"path": "config.temperature", "change": "added", "before": None, "after": 0.2},
        {"path": "config.user_prompt", "change": "changed", "before": "hi", "after": "hello"},
    ]


def test_a_move_is_not_a_change_and_edges_are_compared_by_ends_and_handle() -> None:
    moved = block("a")
    moved["position"] = {"x": 10, "y": 0}
    before = {"blocks": [block("a"), block("b")], "edges": [{"source": "a", "target": "b"}]}
    after = {
        "blocks": [moved, block("c")],
        "edges": [{"source": "a", "target": "c", "handle": "body"}],
    }
    diff = graph_diff(before, after)
    assert diff["blocks"]["moved"] == [{"id": "a", "name": "a", "type": "agent"}]
    assert diff["blocks"]["changed"] == []
    assert [b["id"] for b in diff["blocks"]["added"]] == ["c"]
    assert [b["id"] for b in diff["blocks"]["removed"]] == ["b"]
    assert diff["edges"] == {
        "added": [{"source": "a", "target": "c", "handle": "body"}],
        "removed": [{"source": "a", "target": "b"}],
    }


def test_long_values_are_cut_for_display() -> None:
    long_prompt = "x" * (MAX_VALUE_CHARS * 3)
    diff = graph_diff(
        {"blocks": [block("a", user_prompt="short")], "edges": []},
        {"blocks": [block("a", user_prompt=long_prompt)], "edges": []},
    )
    after = diff["blocks"]["changed"][0]["fields"][0]["after"]
    assert len(after) < MAX_VALUE_CHARS + 50 and after.endswith("more characters)")


def test_malformed_graphs_diff_as_empty() -> None:
    assert graph_diff({"blocks": "nope"}, {"edges": [1, None]})["blocks"]["added"] == []


def test_pins_are_listed_apart_and_never_as_a_change_of_the_block() -> None:
    plain = block("a", user_prompt="hi")
    pinned = {**block("a", user_prompt="hi"), "pin": {"output": {"content": "x"}}}
    repinned = {**pinned, "pin": {"output": {"content": "y"}}}
    other = {**block("b"), "pin": {"output": {}}}
    diff = graph_diff(
        {"blocks": [plain, other], "edges": []}, {"blocks": [pinned, block("b")], "edges": []}
    )
    assert diff["blocks"]["changed"] == [] and diff["blocks"]["moved"] == []
    label_a = {"id": "a", "name": "a", "type": "agent"}
    label_b = {"id": "b", "name": "b", "type": "agent"}
    assert diff["pins"] == {"added": [label_a], "removed": [label_b], "changed": []}
    again = graph_diff({"blocks": [pinned], "edges": []}, {"blocks": [repinned], "edges": []})
    assert again["pins"]["changed"] == [label_a]
    # A block added with its pin is an added block, nothing more.
    added = graph_diff({"blocks": [], "edges": []}, {"blocks": [pinned], "edges": []})
    assert added["blocks"]["added"] == [label_a] and added["pins"]["added"] == []
