from typing import Any

import pytest

from engine.core.limits import GraphLimits, GraphTooLarge, check_graph_size, loop_nesting


def loop(id_: str, parent: str | None = None) -> dict[str, Any]:
    return {"id": id_, "type": "loop", "name": id_, "parent": parent}


def test_counts_are_checked_on_the_raw_json() -> None:
    limits = GraphLimits(max_blocks=2, max_edges=1)
    check_graph_size({"blocks": [loop("a"), loop("b")], "edges": [{}]}, limits)
    with pytest.raises(GraphTooLarge, match=r"3 blocks; the limit is 2 \(KLYNTOS_MAX_BLOCKS\)"):
        check_graph_size({"blocks": [loop("a"), loop("b"), loop("c")]}, limits)
    with pytest.raises(GraphTooLarge, match="KLYNTOS_MAX_EDGES") as caught:
        check_graph_size({"blocks": [], "edges": [{}, {}]}, limits)
    assert (caught.value.setting, caught.value.limit, caught.value.actual) == (
        "KLYNTOS_MAX_EDGES",
        1,
        2,
    )


@pytest.mark.parametrize("data", [None, [], "x", {"blocks": "x", "edges": 5}, {"blocks": [1, {}]}])
def test_malformed_graphs_are_left_to_the_parser(data: Any) -> None:
    check_graph_size(data, GraphLimits())


def test_loop_nesting_counts_loops_only_and_survives_circles() -> None:
    blocks = [
        loop("a"),
        loop("b", "a"),
        {"id": "t", "type": "transform", "parent": "b"},
        loop("c", "b"),
    ]
    assert loop_nesting(blocks) == 3
    assert loop_nesting([loop("x", "y"), loop("y", "x")]) <= 2
    assert loop_nesting([loop("x", "missing")]) == 1
    deep = [loop("l0")] + [loop(f"l{i}", f"l{i - 1}") for i in range(1, 3000)]
    assert loop_nesting(list(reversed(deep))) == 3000  # no recursion limit
    with pytest.raises(GraphTooLarge, match="3000 levels of nested loops"):
        check_graph_size({"blocks": deep}, GraphLimits(max_blocks=5000))


def test_the_depth_setting_cannot_pass_what_item_keys_hold() -> None:
    with pytest.raises(ValueError, match="between 1 and 5"):
        GraphLimits(max_loop_depth=6)


def test_notes_are_counted_and_their_text_bounded() -> None:
    limits = GraphLimits(max_notes=2, max_note_chars=5)
    note = {"id": "n", "text": "12345"}
    check_graph_size({"blocks": [], "notes": [note, note]}, limits)
    with pytest.raises(GraphTooLarge, match=r"3 notes; the limit is 2 \(KLYNTOS_MAX_NOTES\)"):
        check_graph_size({"notes": [note, note, note]}, limits)
    with pytest.raises(
        GraphTooLarge,
        match=r"6 characters in one note; the limit is 5 \(KLYNTOS_MAX_NOTE_CHARS\)",
    ):
        check_graph_size({"notes": [{"id": "n", "text": "123456"}]}, limits)
    # Malformed notes are the parser's to report.
    check_graph_size({"notes": [1, {"text": 5}]}, limits)
    with pytest.raises(ValueError, match="max_notes"):
        GraphLimits(max_notes=-1)
