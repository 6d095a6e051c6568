"""Canvas editing in real Chromium: copy / paste between workflows through the clipboard,
duplicate, selecting and deleting edges under a loop, deleting a loop with its children."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, save_draft, screenshot
from tests.e2e.test_editor_browser import connect, node, saved_graph

pytestmark = pytest.mark.browser

SOURCE_GRAPH: dict[str, Any] = {
    "blocks": [
        {
            "id": "webhook_1",
            "type": "webhook",
            "name": "webhook_1",
            "parent": None,
            "position": {"x": 0, "y": 160},
            "config": {},
        },
        {
            "id": "loop_1",
            "type": "loop",
            "name": "loop_1",
            "parent": None,
            "position": {"x": 300, "y": 40},
            "style": {"width": 640, "height": 260},
            "config": {"items": "<webhook_1.body.items>", "variable": "item"},
        },
        {
            "id": "http_1",
            "type": "http",
            "name": "http_1",
            "parent": "loop_1",
            "position": {"x": 60, "y": 90},
            "config": {
                "method": "GET",
                "url": "https://api.clearbit.com/v2/companies/find?domain=<item.domain>",
            },
        },
        {
            "id": "agent_1",
            "type": "agent",
            "name": "agent_1",
            "parent": "loop_1",
            "position": {"x": 360, "y": 90},
            "config": {"user_prompt": "Company: <http_1.body>"},
        },
    ],
    "edges": [
        {"source": "webhook_1", "target": "loop_1"},
        {"source": "loop_1", "target": "http_1", "handle": "body"},
        {"source": "http_1", "target": "agent_1"},
    ],
}


def api(page: Any, method: str, path: str, body: Any = None) -> Any:
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.fetch(
        path,
        method=method,
        data=json.dumps(body) if body is not None else None,
        headers={"Content-Type": "application/json", "X-CSRFToken": token},
    )
    assert response.ok, response.text()
    return response.json() if response.status != 204 else None


def create_workflow(page: Any, name: str, graph: dict[str, Any]) -> int:
    return int(api(page, "POST", "/api/workflows/", {"name": name, "graph": graph})["id"])


def open_editor(page: Any, workflow_id: int) -> None:
    page.goto(f"/workflows/{workflow_id}/")
    page.wait_for_selector('[data-testid="canvas"] .react-flow__pane')


def save(page: Any) -> str:
    return save_draft(page)


def pane_point(page: Any, fx: float, fy: float) -> tuple[float, float]:
    box = page.locator(".react-flow__pane").bounding_box()
    return box["x"] + box["width"] * fx, box["y"] + box["height"] * fy


def test_copy_a_loop_with_its_children_into_another_workflow(app: LocalApp, page: Any) -> None:
    source = create_workflow(page, "Copy source", SOURCE_GRAPH)
    # The target already has a webhook_1, a loop_1 and an http_1: the pasted names collide.
    target_graph = json.loads(json.dumps(SOURCE_GRAPH))
    target_graph["blocks"] = target_graph["blocks"][:3]
    target_graph["edges"] = target_graph["edges"][:2]
    target = create_workflow(page, "Paste target", target_graph)

    open_editor(page, source)
    node(page, "loop_1").click(position={"x": 24, "y": 12})  # the loop's header
    page.keyboard.press("Control+c")
    page.wait_for_selector('[data-testid="canvas-notice"]:has-text("Copied 3 blocks")')

    open_editor(page, target)
    x, y = pane_point(page, 0.3, 0.62)
    page.mouse.move(x, y)
    page.keyboard.press("Control+v")
    node(page, "loop_2").wait_for()
    assert page.locator(".react-flow__node").count() == 6
    notice = page.locator('[data-testid="canvas-notice"]')
    assert "renamed loop_1 → loop_2, http_1 → http_2" in notice.inner_text()
    notice.wait_for(state="hidden")  # it sits over the canvas, where the pointer goes next
    connect(page, "webhook_1", "loop_2")  # the pasted loop reads webhook_1's body
    status = save(page)
    assert status.endswith("valid"), page.locator('[data-testid="status-bar"]').inner_text()
    screenshot(page, "pasted-loop")

    graph = saved_graph(page, target)
    names = [b["name"] for b in graph["blocks"]]
    assert len(names) == len(set(names)) == 6
    assert len({b["id"] for b in graph["blocks"]}) == 6
    blocks = {b["name"]: b for b in graph["blocks"]}
    assert set(blocks) == {"webhook_1", "loop_1", "http_1", "loop_2", "http_2", "agent_1"}
    loop, http, agent = blocks["loop_2"], blocks["http_2"], blocks["agent_1"]
    assert http["parent"] == loop["id"] and agent["parent"] == loop["id"]
    # The reference inside the pasted blocks follows the rename of http_1 to http_2.
    assert agent["config"]["user_prompt"] == "Company: <http_2.body>"
    assert http["config"]["url"].endswith("domain=<item.domain>")
    edges = {(e["source"], e["target"], e.get("handle")) for e in graph["edges"]}
    assert (loop["id"], http["id"], "body") in edges
    assert (http["id"], agent["id"], None) in edges
    # The server agrees: the graph is valid.
    answer = api(page, "POST", f"/api/workflows/{target}/validate/", {"graph": graph})
    assert answer["ok"], answer["errors"]


def test_ctrl_d_duplicates_a_block(app: LocalApp, page: Any) -> None:
    workflow = create_workflow(page, "Duplicate", SOURCE_GRAPH)
    open_editor(page, workflow)
    node(page, "agent_1").click()
    page.keyboard.press("Control+d")
    node(page, "agent_2").wait_for()
    assert page.locator(".react-flow__node").count() == 5
    # The copy is selected, in the same loop, with the same settings.
    panel = page.locator('[data-testid="config-panel"]')
    assert panel.locator('input[data-field="name"]').input_value() == "agent_2"
    save(page)
    blocks = {b["name"]: b for b in saved_graph(page, workflow)["blocks"]}
    assert blocks["agent_2"]["parent"] == "loop_1"
    assert blocks["agent_2"]["config"] == blocks["agent_1"]["config"]
    assert blocks["agent_2"]["id"] != blocks["agent_1"]["id"]
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", blocks["agent_2"]["id"])


def graph_with_an_edge_under_the_loop() -> dict[str, Any]:
    """webhook_1 feeds loop_1 and http_9 to its right: that edge runs under the loop's body."""
    graph = json.loads(json.dumps(SOURCE_GRAPH))
    for block in graph["blocks"]:
        if block["parent"] == "loop_1":
            block["position"]["y"] = 50  # above the edge's line
    graph["blocks"].append(
        {
            "id": "http_9",
            "type": "http",
            "name": "http_9",
            "parent": None,
            "position": {"x": 1100, "y": 160},
            "config": {"method": "GET", "url": "https://api.clearbit.com/v2/companies/find"},
        }
    )
    graph["edges"].append({"source": "webhook_1", "target": "http_9"})
    return graph


def panel_name(page: Any) -> str:
    field = page.locator('[data-testid="config-panel"] input[data-field="name"]')
    return str(field.input_value()) if field.count() else ""


def test_an_edge_under_a_loop_is_selected_by_a_click_and_deleted_alone(
    app: LocalApp, page: Any
) -> None:
    workflow = create_workflow(page, "Edge under a loop", graph_with_an_edge_under_the_loop())
    open_editor(page, workflow)
    edge = page.locator('[data-testid="rf__edge-e:webhook_1::http_9"]')
    box = edge.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    loop = page.locator('.react-flow__node[data-id="loop_1"]').bounding_box()
    assert loop["x"] < x < loop["x"] + loop["width"] and loop["y"] < y < loop["y"] + loop["height"]
    page.mouse.click(x, y)
    page.wait_for_selector(
        '[data-testid="rf__edge-e:webhook_1::http_9"].selected', state="attached"
    )
    assert page.locator(".react-flow__node.selected").count() == 0
    # Selected, it is drawn above the loop: the user sees what Delete will remove.
    on_top = "([x, y]) => !!document.elementFromPoint(x, y)?.closest('.react-flow__edge')"
    assert page.evaluate(on_top, [x, y])
    page.keyboard.press("Delete")
    edge.wait_for(state="detached")
    assert page.locator('[data-testid="confirm-dialog"]').count() == 0
    assert page.locator(".react-flow__node").count() == 5
    assert page.locator(".react-flow__edge").count() == 3
    save(page)
    graph = saved_graph(page, workflow)
    assert len(graph["blocks"]) == 5
    assert {"source": "webhook_1", "target": "http_9"} not in graph["edges"]
    # A click on the loop's body away from any edge still selects the loop.
    page.mouse.click(loop["x"] + loop["width"] - 30, loop["y"] + loop["height"] - 20)
    page.wait_for_selector('.react-flow__node[data-id="loop_1"].selected')
    assert panel_name(page) == "loop_1"


def test_deleting_a_loop_with_children_asks_first_and_undo_restores_the_selection(
    app: LocalApp, page: Any
) -> None:
    workflow = create_workflow(page, "Loop delete", graph_with_an_edge_under_the_loop())
    open_editor(page, workflow)
    node(page, "loop_1").click(position={"x": 24, "y": 12})
    page.keyboard.press("Delete")
    dialog = page.locator('[data-testid="confirm-dialog"]')
    dialog.wait_for()
    assert "Delete the loop loop_1 and the 2 blocks inside it?" in dialog.inner_text()
    page.keyboard.press("Delete")  # again, while asked: still one question
    assert dialog.count() == 1
    dialog.locator('[data-action="confirm-cancel"]').click()
    dialog.wait_for(state="detached")
    assert page.locator(".react-flow__node").count() == 5

    page.keyboard.press("Delete")
    dialog.wait_for()
    screenshot(page, "delete-loop-confirm")
    dialog.locator('[data-action="confirm-ok"]').click()
    node(page, "loop_1").wait_for(state="detached")
    assert page.locator(".react-flow__node").count() == 2  # webhook_1 and http_9

    # Undo brings the loop back selected, with its settings in the panel (no ghost).
    page.click('[data-action="undo"]')
    node(page, "agent_1").wait_for()
    assert page.locator(".react-flow__node").count() == 5
    page.wait_for_selector('.react-flow__node[data-id="loop_1"].selected')
    assert panel_name(page) == "loop_1"

    # A plain block is deleted without a question; Undo selects it again.
    node(page, "http_9").click()
    page.keyboard.press("Delete")
    node(page, "http_9").wait_for(state="detached")
    assert page.locator('[data-testid="confirm-dialog"]').count() == 0
    assert panel_name(page) == ""
    page.keyboard.press("Control+z")
    node(page, "http_9").wait_for()
    page.wait_for_selector('.react-flow__node[data-id="http_9"].selected')
    assert panel_name(page) == "http_9"


def boxes_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def test_menus_shortcut_sheet_palette_search_and_auto_layout(app: LocalApp, page: Any) -> None:
    workflow = create_workflow(page, "Menus", SOURCE_GRAPH)
    open_editor(page, workflow)

    page.keyboard.press("?")
    sheet = page.locator('[data-testid="shortcut-sheet"]')
    sheet.wait_for()
    assert "Ctrl+D" in sheet.inner_text() and "Shift+L" in sheet.inner_text()
    page.keyboard.press("Escape")
    sheet.wait_for(state="detached")

    # Block menu: duplicate.
    node(page, "http_1").click(button="right")
    menu = page.locator('[data-testid="context-menu"][data-menu="block"]')
    menu.wait_for()
    menu.locator('[data-menu-item="Duplicate"]').click()
    node(page, "http_2").wait_for()
    menu.wait_for(state="detached")

    # Edge menu: delete that connection alone.
    edge = page.locator('[data-testid="rf__edge-e:http_1::agent_1"]')
    box = edge.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, button="right")
    edge_menu = page.locator('[data-testid="context-menu"][data-menu="edge"]')
    edge_menu.wait_for()
    edge_menu.locator('[data-menu-item="Delete connection"]').click()
    edge.wait_for(state="detached")
    assert page.locator(".react-flow__node").count() == 5
    # Cut off from http_1, agent_1 shows its problem (taller): laid out before the live
    # validation answered, it grew over the block below it afterwards.
    page.wait_for_selector('.react-flow__node[data-id="agent_1"] [data-testid="node-error"]')

    # Canvas menu: auto-layout, then no two blocks overlap.
    x, y = pane_point(page, 0.5, 0.92)
    page.mouse.click(x, y, button="right")
    canvas_menu = page.locator('[data-testid="context-menu"][data-menu="canvas"]')
    canvas_menu.wait_for()
    canvas_menu.locator('[data-menu-item="Auto-layout"]').click()
    page.wait_for_timeout(300)  # let React Flow re-render the moved nodes
    boxes = {
        name: page.locator(f'.react-flow__node:has([data-block-name="{name}"])').last.bounding_box()
        for name in ("webhook_1", "http_1", "http_2", "agent_1")
    }
    names = list(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not boxes_overlap(boxes[a], boxes[b]), (a, b, boxes)
    loop_box = page.locator('.react-flow__node[data-id="loop_1"]').bounding_box()
    for name in ("http_1", "http_2", "agent_1"):
        inner = boxes[name]
        assert (
            loop_box["x"] < inner["x"]
            and inner["x"] + inner["width"] < loop_box["x"] + loop_box["width"]
        )
        assert (
            loop_box["y"] < inner["y"]
            and inner["y"] + inner["height"] < loop_box["y"] + loop_box["height"]
        )
    assert boxes["webhook_1"]["x"] + boxes["webhook_1"]["width"] < loop_box["x"]
    screenshot(page, "auto-layout")

    # Block menu Copy, canvas menu Paste (this tab's copy when the clipboard cannot be read).
    node(page, "agent_1").click(button="right")
    menu.wait_for()
    menu.locator('[data-menu-item="Copy"]').click()
    page.mouse.click(*pane_point(page, 0.85, 0.15), button="right")
    canvas_menu.wait_for()
    canvas_menu.locator('[data-menu-item="Paste"]').click()
    node(page, "agent_2").wait_for()
    assert page.locator(".react-flow__node").count() == 6

    # Ctrl+X cuts (the block goes), Ctrl+V brings it back under the pointer, name kept.
    node(page, "agent_2").click()
    page.keyboard.press("Control+x")
    node(page, "agent_2").wait_for(state="detached")
    page.mouse.move(*pane_point(page, 0.85, 0.3))
    page.keyboard.press("Control+v")
    node(page, "agent_2").wait_for()
    assert page.locator(".react-flow__node").count() == 6

    # Palette search: one match, Enter adds it.
    search = page.locator('[data-testid="palette-search"]')
    search.fill("slack channel")
    assert page.locator(".palette-item").count() == 1
    search.press("Enter")
    node(page, "slack_1").wait_for()
    search.fill("no such block")
    assert page.locator(".palette-item").count() == 0
    assert "No block matches" in page.locator(".palette").inner_text()
    save(page)
    graph = saved_graph(page, workflow)
    assert {b["name"] for b in graph["blocks"]} >= {"http_2", "agent_2", "slack_1"}
    assert {"source": "http_1", "target": "agent_1"} not in graph["edges"]


def test_a_sticky_note_is_saved_with_the_graph_and_not_run(app: LocalApp, page: Any) -> None:
    workflow = create_workflow(page, "Notes", SOURCE_GRAPH)
    open_editor(page, workflow)
    x, y = pane_point(page, 0.5, 0.9)
    page.mouse.click(x, y, button="right")
    page.locator('[data-testid="context-menu"] [data-menu-item="Add note"]').click()
    text = page.locator('[data-testid="note-text"]')
    text.wait_for()
    text.type("Runs <env.NOT_SET> per lead")  # a note's text is never a reference
    page.mouse.click(*pane_point(page, 0.9, 0.1))
    page.locator('[data-testid="note-view"]').wait_for()
    # Not a block: the settings panel stays empty when it is selected.
    page.locator('[data-testid="note-view"]').click()
    assert page.locator('[data-testid="config-panel"] input[data-field="name"]').count() == 0
    status = save(page)
    assert status.endswith("valid"), status
    graph = saved_graph(page, workflow)
    assert [n["text"] for n in graph["notes"]] == ["Runs <env.NOT_SET> per lead"]
    assert len(graph["blocks"]) == 4
    page.reload()
    page.wait_for_selector('[data-testid="note-view"]:has-text("Runs <env.NOT_SET> per lead")')
