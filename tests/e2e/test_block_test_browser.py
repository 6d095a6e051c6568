"""Test one block in real Chromium (issue 10 item 6): run the lead template once, select
`agent_analysis`, pin its input from the last run, test it: one LLM call, its output shown,
the output pinned and saved with the draft. And the issue's own line: pin the merge step's
inputs from the last run, change its prompt, run only that block."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, fill_field, screenshot, select_block
from tests.e2e.test_editing_browser import save
from tests.e2e.test_editor_browser import open_template, saved_graph

pytestmark = pytest.mark.browser


def simulator(app: LocalApp, path: str, body: Any = None) -> dict[str, Any]:
    request = urllib.request.Request(
        app.simulator_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json", "X-Simulator-Token": app.simulator_token},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_test_agent_analysis_with_the_pinned_input_of_the_last_run(
    app: LocalApp, page: Any
) -> None:
    workflow_id = open_template(page)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"run-input\"]')?.value.includes('leads')"
    )
    first_lead = json.loads(page.locator('[data-testid="run-input"]').input_value())["leads"][0]
    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")', timeout=90_000)

    panel = select_block(page, "agent_analysis")
    panel.locator('[data-action="open-block-test"]').click()
    source = '[data-testid="test-source"][data-from="{}"]:has(code:text-is("lead"))'
    panel.locator(source.format("run")).wait_for()
    inputs = json.loads(panel.locator('[data-testid="test-inputs"]').input_value())
    assert inputs == {"lead": first_lead}  # the first item of the last run
    assert (
        "calls the model provider for real"
        in panel.locator('[data-testid="test-effect"]').inner_text()
    )

    # Pin it: the item now comes from the loop's pin, kept with the draft.
    panel.locator('[data-action="pin-inputs"]').click()
    panel.locator(source.format("pin")).wait_for()
    page.locator('[data-block-name="loop"] [data-testid="block-pinned"]').wait_for()

    # Invalid JSON says so and cannot run; the pinned input runs.
    box = panel.locator('[data-testid="test-inputs"]')
    pinned_text = box.input_value()
    box.fill('{"lead": ')
    assert "not valid JSON" in panel.locator('[data-testid="test-input-error"]').inner_text()
    assert panel.locator('[data-action="run-block-test"]').is_disabled()
    box.fill(pinned_text)

    simulator(app, "/_sim/reset", {"record": True})
    panel.locator('[data-action="run-block-test"]').click()
    panel.locator('[data-testid="test-status"]:has-text("succeeded")').wait_for(timeout=30_000)
    output = json.loads(panel.locator('[data-testid="test-output"]').inner_text())
    assert 1 <= output["qualification_score"] <= 10
    config = json.loads(panel.locator('[data-testid="test-config"]').inner_text())
    assert f"Lead: {inputs['lead']['name']}" in config["user_prompt"]
    stats = simulator(app, "/_sim/stats")
    assert stats["requests"].get("openai") == 1  # that block alone
    assert not stats["requests"].get("clearbit") and not stats["requests"].get("slack")

    panel.locator('[data-action="pin-output"]').click()
    panel.locator('[data-testid="block-pin"]').wait_for()
    page.locator('[data-block-name="agent_analysis"] [data-testid="block-pinned"]').wait_for()
    screenshot(page, "block-test")
    save(page)
    blocks = {b["id"]: b for b in saved_graph(page, workflow_id)["blocks"]}
    assert blocks["agent_analysis"]["pin"]["output"] == output
    assert blocks["loop"]["pin"]["item"] == inputs["lead"]


def run_template_once(page: Any) -> int:
    workflow_id = open_template(page)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"run-input\"]')?.value.includes('leads')"
    )
    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")', timeout=90_000)
    return workflow_id


def test_merge_step_with_pinned_inputs_and_a_new_prompt(app: LocalApp, page: Any) -> None:
    run_template_once(page)
    panel = select_block(page, "agent_merge")
    panel.locator('[data-action="open-block-test"]').click()
    source = '[data-testid="test-source"][data-from="{}"]'
    panel.locator(source.format("run")).nth(2).wait_for()  # its three upstream blocks
    panel.locator('[data-action="pin-inputs"]').click()
    panel.locator(source.format("pin")).nth(2).wait_for()
    for name in ("agent_analysis", "http_clearbit", "http_linkedin"):
        page.locator(f'[data-block-name="{name}"] [data-testid="block-pinned"]').wait_for()

    prompt = "NEW PROMPT: one line on <http_clearbit.body.name>"
    fill_field(panel, "user_prompt", prompt)
    panel.get_by_role("button", name="Reload inputs").click()
    # Only what the new prompt reads is left, from its pin.
    panel.locator('[data-testid="test-source"]').nth(1).wait_for(state="detached")
    only = panel.locator('[data-testid="test-source"]')
    assert only.get_attribute("data-from") == "pin"
    assert only.locator("code").inner_text() == "http_clearbit"

    simulator(app, "/_sim/reset", {"record": True})
    panel.locator('[data-action="run-block-test"]').click()
    panel.locator('[data-testid="test-status"]:has-text("succeeded")').wait_for(timeout=30_000)
    assert json.loads(panel.locator('[data-testid="test-output"]').inner_text())["content"]
    config = json.loads(panel.locator('[data-testid="test-config"]').inner_text())
    assert config["user_prompt"].startswith("NEW PROMPT: one line on ")
    assert "<http_clearbit" not in config["user_prompt"]
    calls = [c for c in simulator(app, "/_sim/stats")["received"] if c["endpoint"] == "openai"]
    assert len(calls) == 1 and "NEW PROMPT" in calls[0]["prompt"]
