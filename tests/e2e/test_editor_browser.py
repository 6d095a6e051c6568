"""The editor in real Chromium: build a graph by drag and drop, configure it with the
reference picker, save, reload, run it against the simulator and watch it finish."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, screenshot

pytestmark = pytest.mark.browser


def new_workflow(page: Any, name: str) -> int:
    page.goto("/")
    page.fill('[data-testid="new-workflow-name"]', name)
    page.click('[data-testid="new-workflow"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    page.wait_for_selector('[data-testid="canvas"] .react-flow__pane')
    return int(re.search(r"/workflows/(\d+)/", page.url).group(1))  # type: ignore[union-attr]


def drop_block(page: Any, block_type: str, x: float, y: float) -> None:
    """Drag a palette entry onto the canvas pane at (x, y) relative to the pane."""
    page.drag_and_drop(
        f'[data-block-type="{block_type}"]', ".react-flow__pane", target_position={"x": x, "y": y}
    )


def node(page: Any, name: str) -> Any:
    return page.locator(f'[data-block-name="{name}"]').first


def connect(page: Any, source: str, target: str) -> None:
    """Drag from a node's source handle to another node's target handle."""
    source_handle = page.locator(
        f'.react-flow__node:has([data-block-name="{source}"]) .react-flow__handle.source'
    ).first
    target_handle = page.locator(
        f'.react-flow__node:has([data-block-name="{target}"]) .react-flow__handle.target'
    ).first
    a, b = source_handle.bounding_box(), target_handle.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
    page.mouse.up()


def saved_graph(page: Any, workflow_id: int) -> dict[str, Any]:
    return page.request.get(f"/api/workflows/{workflow_id}/").json()["graph"]


def configure_simulator(app: LocalApp, **config: Any) -> None:
    request = urllib.request.Request(
        app.simulator_url + "/_sim/config",
        data=json.dumps(config).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Simulator-Token": app.simulator_token},
    )
    urllib.request.urlopen(request, timeout=5).read()


def test_build_configure_save_reload_and_run(app: LocalApp, page: Any) -> None:
    workflow_id = new_workflow(page, "Browser built")
    drop_block(page, "webhook", 80, 200)
    drop_block(page, "loop", 360, 80)
    loop = node(page, "loop_1")
    loop.wait_for()
    box = page.locator('.react-flow__node:has([data-block-name="loop_1"])').bounding_box()
    pane = page.locator(".react-flow__pane").bounding_box()
    drop_block(
        page,
        "http",
        box["x"] - pane["x"] + box["width"] / 2,
        box["y"] - pane["y"] + box["height"] / 2,
    )
    node(page, "http_1").wait_for()
    connect(page, "webhook_1", "loop_1")

    # The loop: items from the webhook body.
    node(page, "loop_1").click(position={"x": 24, "y": 12})  # its header, not the child inside
    items = page.locator('[data-testid="config-panel"] [data-field="items"]')
    items.fill("<webhook_1.body.items>")
    # The HTTP block: URL written with the "<" reference picker.
    node(page, "http_1").click()
    url = page.locator('[data-testid="config-panel"] [data-field="url"]')
    url.click()
    url.fill("https://api.clearbit.com/v2/companies/find?domain=d")
    url.press("End")
    url.type("<")
    picker = page.locator('[data-testid="ref-picker"]')
    picker.wait_for()
    picker.locator('[data-ref="loop.index"]').wait_for()  # scopes arrive from the server
    assert picker.locator('[data-ref="item"]').count() == 1
    assert picker.locator('[data-ref^="env."]').count() == 2  # names only: the sandbox secrets
    picker.locator('[data-ref="loop.index"]').dispatch_event("mousedown")
    url.press("End")
    url.type(".example")
    assert (
        url.input_value()
        == "https://api.clearbit.com/v2/companies/find?domain=d<loop.index>.example"
    )
    headers = page.locator('[data-testid="config-panel"] [data-field="headers"]')
    headers.locator("[data-action=add-row]").click()
    headers.locator("[data-kv=key]").last.fill("Authorization")
    headers.locator("[data-kv=value]").last.fill("Bearer <env.CLEARBIT_API_KEY>")

    page.click('[data-testid="save-button"]')
    page.wait_for_selector('[data-testid="save-status"]:has-text("valid")')
    screenshot(page, "canvas")

    graph = saved_graph(page, workflow_id)
    blocks = {b["name"]: b for b in graph["blocks"]}
    assert set(blocks) == {"webhook_1", "loop_1", "http_1"}
    assert blocks["http_1"]["parent"] == blocks["loop_1"]["id"]
    assert blocks["http_1"]["config"]["url"].endswith("domain=d<loop.index>.example")
    assert {"source": blocks["webhook_1"]["id"], "target": blocks["loop_1"]["id"]} in [
        {"source": e["source"], "target": e["target"]} for e in graph["edges"]
    ]

    page.reload()
    page.wait_for_selector('[data-block-name="http_1"]')
    assert page.locator(".react-flow__node").count() == 3
    assert saved_graph(page, workflow_id)["blocks"] == graph["blocks"]

    # Run on 20 items; item 7's lookup is refused by the provider.
    configure_simulator(
        app, failures=[{"endpoint": "clearbit", "match": {"domain": "d7.example"}, "status": 404}]
    )
    body = {"items": [{"n": i} for i in range(20)]}
    page.fill('[data-testid="run-input"]', json.dumps(body))
    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="progress"]:has-text("20/20")', timeout=60_000)
    rows = page.locator('[data-testid="item-table"] [data-testid="item-row"]')
    rows.nth(19).wait_for()
    assert rows.count() == 20
    failed = page.locator('[data-testid="item-row"][data-status="failed"]')
    assert failed.count() == 1
    assert "returned 404" in failed.first.inner_text()
    assert page.locator('[data-testid="item-row"][data-status="succeeded"]').count() == 19
    screenshot(page, "finished-run")
    configure_simulator(app, failures=[])


def open_template(page: Any) -> int:
    page.goto("/")
    page.click('[data-testid="template-parallel-lead-enrichment"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    page.wait_for_selector('[data-block-name="agent_merge"]')
    return int(re.search(r"/workflows/(\d+)/", page.url).group(1))  # type: ignore[union-attr]


TEMPLATE_BLOCKS = (
    "webhook",
    "loop",
    "agent_analysis",
    "http_clearbit",
    "http_linkedin",
    "agent_merge",
    "store_lead",
    "agent_summary",
    "slack",
    "slack_failures",
)


def test_the_template_opens_whole_and_legible_in_a_1440x900_window(
    app: LocalApp, page: Any
) -> None:
    """Every block of the template is in view when it opens, at a zoom where names read (the
    blocks after the loop were off to the right, past the canvas's edge), none covers
    another, and the mini map covers none."""
    page.set_viewport_size({"width": 1440, "height": 900})
    open_template(page)
    zoom = page.eval_on_selector(
        ".react-flow__viewport", "el => new DOMMatrix(getComputedStyle(el).transform).a"
    )
    assert zoom >= 0.75
    pane = page.locator(".react-flow").bounding_box()
    boxes = {}
    for name in TEMPLATE_BLOCKS:
        box = page.locator(f'[data-block-name="{name}"]').first.bounding_box()
        assert box is not None, name
        boxes[name] = box
        assert box["x"] >= pane["x"] and box["y"] >= pane["y"], (name, box, pane)
        assert box["x"] + box["width"] <= pane["x"] + pane["width"], (name, box, pane)
        assert box["y"] + box["height"] <= pane["y"] + pane["height"], (name, box, pane)

    def overlap(a: dict, b: dict) -> bool:
        return (
            a["x"] < b["x"] + b["width"]
            and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"]
            and b["y"] < a["y"] + a["height"]
        )

    blocks = [n for n in TEMPLATE_BLOCKS if n != "loop"]  # the loop holds its body
    for i, a in enumerate(blocks):
        for b in blocks[i + 1 :]:
            assert not overlap(boxes[a], boxes[b]), (a, b)
    for name in ("webhook", "agent_summary", "slack", "slack_failures"):
        assert not overlap(boxes[name], boxes["loop"]), name
    minimap = page.locator(".react-flow__minimap").bounding_box()
    assert minimap is not None
    for name, box in boxes.items():
        assert not overlap(box, minimap), name
    screenshot(page, "template-opened-1440x900")


def test_template_runs_from_the_run_panel_on_its_sample(app: LocalApp, page: Any) -> None:
    open_template(page)
    # The sample arrives with the template list, after the editor opens.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"run-input\"]')?.value.includes('leads')"
    )
    sample = json.loads(page.locator('[data-testid="run-input"]').input_value())
    leads = sample["leads"]
    assert len(leads) == 20
    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="progress"]:has-text("20/20")', timeout=90_000)
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")')
    assert page.locator('[data-testid="item-row"][data-status="succeeded"]').count() == 20
    assert page.locator('[data-testid="speedup"]').inner_text().endswith("faster than sequential")
    assert page.locator('[data-block-name="slack"][data-status="succeeded"]').count() == 1
    screenshot(page, "template-run")

    page.goto("/admin/leads/enrichedlead/")
    assert "20 enriched leads" in page.content()
    for lead in leads[:3]:
        assert (
            page.locator(f'td:has-text("{lead["name"]}"), th:has-text("{lead["name"]}")').count()
            >= 1
        )


def test_untrusted_item_text_is_shown_as_text(app: LocalApp, page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_template(page)
    hostile = "<img src=x onerror=alert(1)>"
    lead = {
        "id": "xss-1",
        "name": hostile,
        "company": "Evil <b>Corp</b>",
        "title": "CTO",
        "email": "x@evil.example",
        "domain": "evil.example",
        "message": "<script>alert(2)</script>",
    }
    page.fill('[data-testid="run-input"]', json.dumps({"leads": [lead]}))
    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="progress"]:has-text("1/1")', timeout=60_000)
    row = page.locator('[data-testid="item-row"]').first
    assert hostile in row.inner_text()
    assert page.locator('[data-testid="item-table"] img').count() == 0
    row.click()
    detail = page.locator('[data-testid="item-detail"]')
    detail.wait_for()
    page.wait_for_selector('[data-testid="item-step"]')
    assert hostile in detail.inner_text()  # the item's data, as text
    outputs = page.locator('[data-testid="run-outputs"]')
    outputs.wait_for()
    loop_output = outputs.locator('[data-output-block="loop"]')
    loop_output.locator("summary").click()
    assert hostile in loop_output.inner_text()  # results and top_leads carry the name
    for area in (detail, outputs, page.locator('[data-testid="item-table"]')):
        assert area.locator("img, script, b").count() == 0
    screenshot(page, "untrusted-text")
    assert dialogs == []
