"""The editor in real Chromium: build a graph by drag and drop, configure it with the
reference picker, save, reload, run it against the simulator and watch it finish."""

from __future__ import annotations

import contextlib
import json
import re
import urllib.request
from collections.abc import Iterator
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


@contextlib.contextmanager
def leads_named_fail_fail_their_analysis(app: LocalApp) -> Iterator[None]:
    """While inside: the simulator's OpenAI answers 400 to a prompt about a lead whose name
    starts with "Fail " (the template's agent_analysis fails that item alone)."""
    configure_simulator(
        app,
        failures=[
            {"endpoint": "openai", "match": {"prompt_contains": "Lead: Fail "}, "status": 400}
        ],
    )
    try:
        yield
    finally:
        configure_simulator(app, failures=[])


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
    # Legible at that zoom: each block's name at >= 12 px on screen, its type label, summary
    # and hints at >= 10.5 px (the names were 10 px, the labels 8.6 px). The run state is
    # measured after a run (test_the_run_state_on_the_template_is_legible_...).
    sizes = text_sizes(page)
    for role in ("name", "label", "summary"):
        assert {s["block"] for s in sizes if s["role"] == role} == set(TEMPLATE_BLOCKS), role
    assert [s["block"] for s in sizes if s["role"] == "hint"] == ["loop"]
    assert_legible(sizes)
    screenshot(page, "template-opened-1440x900")


def test_the_editor_fits_a_1440x900_window_without_a_document_scroll(
    app: LocalApp, page: Any
) -> None:
    """The top bar and the app fill the window exactly: the page was 944 px tall in a 900 px
    window (a 100%-tall root under the 44 px bar), so wheeling over the bar scrolled the app
    up 44 px, hiding the bar and leaving a blank band at the bottom."""
    page.set_viewport_size({"width": 1440, "height": 900})
    open_template(page)
    sizes = page.evaluate(
        "() => ({scroll: document.scrollingElement.scrollHeight, inner: innerHeight,"
        " editor: document.querySelector('.editor').getBoundingClientRect().bottom})"
    )
    assert sizes["scroll"] <= sizes["inner"], sizes
    assert sizes["editor"] <= sizes["inner"], sizes
    bar = page.locator(".kl-bar").bounding_box()
    page.mouse.move(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
    page.mouse.wheel(0, 400)
    page.wait_for_timeout(200)
    assert page.evaluate("() => document.scrollingElement.scrollTop") == 0
    assert page.locator(".kl-bar").bounding_box()["y"] == 0


@pytest.mark.parametrize("slug", ["nested-fan-out"])
def test_shift_l_shows_every_block_of_a_wide_template_in_the_visible_canvas(
    app: LocalApp, page: Any, slug: str
) -> None:
    """Shift+L lays the template out and shows every block inside the canvas area left
    visible (not under the Settings panel, the palette or the mini map), below the readable
    zoom when it must: nested-fan-out is too wide to open whole at that zoom (it opens at its
    left edge, test_the_template_opens_whole_...), and Shift+L left `summary` and `response`
    clipped."""
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto("/")
    page.click(f'[data-testid="template-{slug}"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    page.wait_for_selector(".react-flow__node")
    page.wait_for_timeout(300)

    def outside() -> list[Any]:
        return page.evaluate(
            """() => {
              const pane = document.querySelector('.react-flow').getBoundingClientRect();
              const covers = ['.config-panel', '.palette', '.react-flow__minimap']
                .map((s) => document.querySelector(s)).filter(Boolean)
                .map((el) => el.getBoundingClientRect());
              const out = [];
              for (const el of document.querySelectorAll('[data-block-name]')) {
                const b = el.getBoundingClientRect();
                const inPane = b.left >= pane.left - 1 && b.top >= pane.top - 1
                  && b.right <= pane.right + 1 && b.bottom <= pane.bottom + 1;
                const covered = covers.some((c) => b.left < c.right && c.left < b.right
                  && b.top < c.bottom && c.top < b.bottom && !el.closest('.react-flow__minimap'));
                if (!inPane || covered) out.push([el.dataset.blockName, b.left, b.top, b.right, b.bottom]);
              }
              return out;
            }"""
        )

    # It opens at the readable zoom, its right end out of view; Shift+L shows it all.
    page.locator(".react-flow__pane").click(position={"x": 5, "y": 5})
    page.keyboard.press("Shift+L")
    page.wait_for_timeout(500)
    assert outside() == []
    screenshot(page, f"template-{slug}-opened-1440x900")


# The on-screen font size (CSS font size × the canvas zoom) of each text of each block,
# whether it lies inside its block's box, and whether it is cut (ellipsised) and has a
# tooltip.
TEXT_SIZES = """() => {
  const zoom = new DOMMatrix(getComputedStyle(document.querySelector('.react-flow__viewport')).transform).a;
  const roles = [
    ['name', '.block-name'],
    ['state', '.status-pill'],
    ['counter', '[data-count]'],
    ['label', '.block-label'],
    ['summary', '.block-summary'],
    ['error', '.node-errors'],
  ];
  const out = [];
  for (const block of document.querySelectorAll('.react-flow__node [data-block-name]')) {
    const box = block.getBoundingClientRect();
    const name = block.dataset.blockName;
    const inner = (el) => block.contains(el) && el.closest('[data-block-name]') === block;
    for (const [role, selector] of roles) {
      for (const el of block.querySelectorAll(selector)) {
        if (!inner(el)) continue;
        const r = el.getBoundingClientRect();
        out.push({
          block: name, role, text: el.textContent,
          px: parseFloat(getComputedStyle(el).fontSize) * zoom,
          inside: r.left >= box.left - 0.5 && r.right <= box.right + 0.5
            && r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5,
          cut: el.scrollWidth > el.clientWidth + 1,
          titled: Boolean(el.closest('[title]')?.title),
        });
      }
    }
    // The loop's "each item" under its body handle (a pseudo-element: its size, not its box).
    const body = block.querySelector('.handle-body');
    if (body && inner(body)) {
      const hint = getComputedStyle(body, '::after');
      out.push({block: name, role: 'hint', text: hint.content, inside: true, cut: false,
                titled: false, px: parseFloat(hint.fontSize) * zoom});
    }
  }
  return out;
}"""

MAIN_TEXT = {"name", "state", "counter"}  # >= 12 px on screen; the rest >= 10.5 px


def text_sizes(page: Any) -> list[dict[str, Any]]:
    sizes = page.evaluate(TEXT_SIZES)
    least: dict[str, float] = {}
    for size in sizes:
        least[size["role"]] = round(min(size["px"], least.get(size["role"], 99.0)), 2)
    print(json.dumps({"metric": "canvas_text_least_px", **least}))
    return sizes


def assert_legible(sizes: list[dict[str, Any]]) -> None:
    small = [s for s in sizes if s["px"] < (12 if s["role"] in MAIN_TEXT else 10.5) - 1e-6]
    assert small == [], small
    assert [s for s in sizes if not s["inside"]] == []
    # Names and run state are shown whole; a long summary is ellipsised, with a tooltip.
    assert [s for s in sizes if s["cut"] and (s["role"] in MAIN_TEXT or not s["titled"])] == []


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


def test_the_run_state_on_the_template_is_legible_in_a_1440x900_window(
    app: LocalApp, page: Any
) -> None:
    """After a partly failed run, at the zoom the template opens at in a 1440×900 window, the
    counters (✓ ✗) and the state word of the loop and of the blocks in it read at >= 12 px on
    screen, inside their blocks; every block still fits in the canvas."""
    page.set_viewport_size({"width": 1440, "height": 900})
    open_template(page)
    zoom = page.eval_on_selector(
        ".react-flow__viewport", "el => new DOMMatrix(getComputedStyle(el).transform).a"
    )
    leads = [
        {
            "id": f"l-{i}",
            "name": "Fail A" if i == 1 else f"Lead {i}",
            "company": f"Company {i}",
            "title": "CTO",
            "email": f"lead{i}@c{i}.example",
            "domain": f"c{i}.example",
            "message": "Interested in a demo",
        }
        for i in range(3)
    ]
    with leads_named_fail_fail_their_analysis(app):
        page.fill('[data-testid="run-input"]', json.dumps({"leads": leads}))
        page.click('[data-testid="run-button"]')
        page.locator(
            '[data-testid="run-status"]:not([data-status="running"]):not([data-status="queued"])'
        ).wait_for(timeout=60_000)
    page.locator('[data-block-name="loop"][data-status="partially_succeeded"]').wait_for()
    page.locator('[data-block-name="store_lead"] [data-count="succeeded"]').wait_for()
    assert page.eval_on_selector(
        ".react-flow__viewport", "el => new DOMMatrix(getComputedStyle(el).transform).a"
    ) == pytest.approx(zoom)
    sizes = text_sizes(page)
    counters = {s["block"] for s in sizes if s["role"] == "counter"}
    # The loop and the blocks inside it: each counts its items.
    assert counters == set(TEMPLATE_BLOCKS) - {
        "webhook",
        "agent_summary",
        "slack",
        "slack_failures",
    }
    failed = [s for s in sizes if s["role"] == "counter" and s["text"].startswith("✗")]
    assert {s["block"] for s in failed} >= {"loop", "agent_analysis"}
    states = {s["block"]: s["text"] for s in sizes if s["role"] == "state"}
    assert set(states) == set(TEMPLATE_BLOCKS)
    assert states["loop"] == states["agent_analysis"] == "partially succeeded"
    assert_legible(sizes)
    # The blocks grown by their counters still lie inside the loop, one under another.
    loop = page.locator('.react-flow__node[data-id="loop"]').bounding_box()
    body = [
        page.locator(f'.react-flow__node[data-id="{n}"]').bounding_box()
        for n in ("agent_analysis", "http_clearbit", "http_linkedin")
    ]
    for box in body:
        assert loop["y"] < box["y"] and box["y"] + box["height"] <= loop["y"] + loop["height"]
    assert body[0]["y"] + body[0]["height"] < body[1]["y"]
    assert body[1]["y"] + body[1]["height"] < body[2]["y"]
    # Every block, grown by its run line, is still in the canvas and clear of the mini map.
    pane = page.locator(".react-flow").bounding_box()
    minimap = page.locator(".react-flow__minimap").bounding_box()
    for name in TEMPLATE_BLOCKS:
        box = page.locator(f'[data-block-name="{name}"]').first.bounding_box()
        assert pane["x"] <= box["x"] and box["x"] + box["width"] <= pane["x"] + pane["width"]
        assert pane["y"] <= box["y"] and box["y"] + box["height"] <= pane["y"] + pane["height"]
        assert (
            box["x"] + box["width"] <= minimap["x"] or box["y"] + box["height"] <= minimap["y"]
        ), name
    screenshot(page, "template-run-1440x900")


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
