"""Daily editing in real Chromium: Ctrl+S while a block's name is being typed, renames that
reach a loop's aggregations, Shift+click selection, Delete only with focus on the canvas,
the menu's Paste after Ctrl+C without clipboard access, and undo that knows the saved state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp
from tests.e2e.test_editing_browser import (
    SOURCE_GRAPH,
    api,
    create_workflow,
    open_editor,
    pane_point,
)
from tests.e2e.test_editor_browser import node, saved_graph

pytestmark = pytest.mark.browser


def loop_graph() -> dict[str, Any]:
    """SOURCE_GRAPH with aggregations over its loop's blocks by name."""
    graph = json.loads(json.dumps(SOURCE_GRAPH))
    graph["blocks"][1]["config"]["aggregations"] = {
        "bodies": "results[*].outputs.http_1.body",
        "http_failed": "length(failed[?block=='http_1'].index)",
    }
    return graph


def status_text(page: Any) -> str:
    page.wait_for_function(
        """() => {
            const text = document.querySelector('[data-testid="save-status"]')?.innerText ?? "";
            return text.startsWith("Saved v") || text.startsWith("Not saved");
        }"""
    )
    return str(page.locator('[data-testid="save-status"]').inner_text())


def name_field(page: Any) -> Any:
    return page.locator('[data-testid="config-panel"] input[data-field="name"]')


def test_ctrl_s_while_typing_a_name_saves_the_rename_and_its_loop_expressions(
    app: LocalApp, page: Any
) -> None:
    workflow = create_workflow(page, "Rename while saving", loop_graph())
    open_editor(page, workflow)
    node(page, "http_1").click()
    name_field(page).fill("fetch_company")
    page.keyboard.press("Control+s")  # focus still in the name field
    assert status_text(page).startswith("Saved v"), status_text(page)
    assert name_field(page).evaluate("el => el === document.activeElement")
    blocks = {b["id"]: b for b in saved_graph(page, workflow)["blocks"]}
    assert blocks["http_1"]["name"] == "fetch_company"
    assert blocks["agent_1"]["config"]["user_prompt"] == "Company: <fetch_company.body>"
    assert blocks["loop_1"]["config"]["aggregations"] == {
        "bodies": "results[*].outputs.fetch_company.body",
        "http_failed": "length(failed[?block=='fetch_company'].index)",
    }
    assert page.locator('[data-testid="dirty-indicator"]').count() == 0

    # An invalid name is not saved as "Saved · valid" while its error shows.
    name_field(page).fill("bad name!")
    page.keyboard.press("Control+s")
    page.wait_for_selector('[data-testid="save-status"]:has-text("Not saved")')
    text = status_text(page)
    assert text.startswith("Not saved: fetch_company · name:"), text
    error = page.locator('[data-testid="config-panel"] [data-field-error="name"]')
    assert "letters" in error.inner_text()
    assert {b["id"]: b["name"] for b in saved_graph(page, workflow)["blocks"]}[
        "http_1"
    ] == "fetch_company"


def test_shift_click_adds_to_the_selection_and_shift_drag_selects_a_box(
    app: LocalApp, page: Any
) -> None:
    workflow = create_workflow(page, "Selection", SOURCE_GRAPH)
    open_editor(page, workflow)
    node(page, "webhook_1").click()
    node(page, "http_1").click(modifiers=["Shift"])
    selected = '.react-flow__node.selected:not([data-id="loop_1"])'
    page.wait_for_function(f"() => document.querySelectorAll('{selected}').length === 2")
    node(page, "http_1").click(modifiers=["Shift"])  # and out again
    page.wait_for_function(f"() => document.querySelectorAll('{selected}').length === 1")

    page.locator(".react-flow__pane").click(position={"x": 5, "y": 5})
    page.wait_for_function("() => !document.querySelector('.react-flow__node.selected')")
    boxes = [node(page, n).bounding_box() for n in ("http_1", "agent_1")]
    left = min(b["x"] for b in boxes) - 20
    top = min(b["y"] for b in boxes) - 20
    right = max(b["x"] + b["width"] for b in boxes) + 20
    bottom = max(b["y"] + b["height"] for b in boxes) + 20
    page.keyboard.down("Shift")
    page.mouse.move(left, top)
    page.mouse.down()
    page.mouse.move((left + right) / 2, (top + bottom) / 2, steps=5)
    page.mouse.move(right, bottom, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    ids = page.eval_on_selector_all(
        ".react-flow__node.selected", "els => els.map(e => e.dataset.id)"
    )
    assert {"http_1", "agent_1"} <= set(ids), ids

    page.keyboard.press("?")
    sheet = page.locator('[data-testid="shortcut-sheet"]')
    sheet.wait_for()
    assert "Shift/Ctrl+click" in sheet.inner_text() and "Shift+drag" in sheet.inner_text()
    # The sheet holds the focus: Tab does not reach the canvas behind it.
    page.keyboard.press("Tab")
    assert page.evaluate(
        "() => !!document.activeElement?.closest('[data-testid=\"shortcut-sheet\"]')"
    )
    page.keyboard.press("Escape")
    sheet.wait_for(state="detached")


def test_delete_acts_only_with_focus_on_the_canvas(app: LocalApp, page: Any) -> None:
    graph = json.loads(json.dumps(SOURCE_GRAPH))
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
    workflow = create_workflow(page, "Delete focus", graph)
    open_editor(page, workflow)
    node(page, "http_9").click()
    page.wait_for_selector('.react-flow__node[data-id="http_9"].selected')
    page.locator('[data-action="versions"]').focus()
    page.keyboard.press("Backspace")
    page.keyboard.press("Delete")
    assert node(page, "http_9").count() == 1
    assert page.locator('[data-action="undo"]').is_disabled()

    # On the page (no control focused) or the block itself, Delete deletes.
    page.evaluate("() => document.activeElement?.blur()")
    page.keyboard.press("Delete")
    node(page, "http_9").wait_for(state="detached")

    # A loop with blocks asks first, with focus on the safe answer.
    node(page, "loop_1").click(position={"x": 24, "y": 12})
    page.keyboard.press("Delete")
    dialog = page.locator('[data-testid="confirm-dialog"]')
    dialog.wait_for()
    assert page.evaluate("() => document.activeElement?.dataset.action") == "confirm-cancel"
    page.keyboard.press("Enter")
    dialog.wait_for(state="detached")
    assert node(page, "loop_1").count() == 1


def test_menu_paste_after_ctrl_c_without_clipboard_access(app: LocalApp, page: Any) -> None:
    # The test's context grants no clipboard permission: reading it from the menu fails.
    workflow = create_workflow(page, "Paste fallback", SOURCE_GRAPH)
    open_editor(page, workflow)
    node(page, "webhook_1").click()
    page.keyboard.press("Control+c")
    page.wait_for_selector('[data-testid="canvas-notice"]:has-text("Copied 1 block")')
    x, y = pane_point(page, 0.5, 0.85)
    page.mouse.click(x, y, button="right")
    page.locator('[data-testid="context-menu"] [data-menu-item="Paste"]').click()
    node(page, "webhook_2").wait_for()
    assert "Nothing to paste" not in page.locator('[data-testid="canvas-notice"]').inner_text()


def test_undo_knows_the_saved_state_and_nudges_are_one_step(app: LocalApp, page: Any) -> None:
    graph = json.loads(json.dumps(SOURCE_GRAPH))
    graph["notes"] = [
        {
            "id": "note_1",
            "text": "why",
            "position": {"x": 0, "y": 400},
            "size": {"width": 220, "height": 120},
        }
    ]
    workflow = create_workflow(page, "Undo and notes", graph)
    open_editor(page, workflow)
    page.wait_for_selector('[data-note-id="note_1"]')
    page.wait_for_timeout(500)  # the nodes are measured
    undo = page.locator('[data-action="undo"]')
    assert undo.is_disabled()
    assert page.locator('[data-testid="dirty-indicator"]').count() == 0

    node(page, "webhook_1").click()
    start = api(page, "GET", f"/api/workflows/{workflow}/")["graph"]["blocks"][0]["position"]
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    page.locator('[data-testid="dirty-indicator"]').wait_for()
    undo.click()  # the four nudges at once
    assert undo.is_disabled()
    page.locator('[data-testid="dirty-indicator"]').wait_for(state="detached")
    box = node(page, "webhook_1").bounding_box()
    page.locator('[data-action="redo"]').click()
    moved = node(page, "webhook_1").bounding_box()
    assert moved["x"] - box["x"] > 3 * 4  # all four, at any zoom above 0.75
    page.locator('[data-testid="dirty-indicator"]').wait_for()
    assert saved_graph(page, workflow)["blocks"][0]["position"] == start
