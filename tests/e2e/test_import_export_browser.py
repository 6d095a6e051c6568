"""Export a workflow from the editor and import the file from the list page, in real
Chromium: the same graph comes back, and the file holds secret names, never values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp
from tests.e2e.test_editing_browser import api
from tests.e2e.test_editor_browser import open_template, saved_graph

pytestmark = pytest.mark.browser

CLEARBIT_VALUE = "cb-export-test-value-9f8e7d6c5b"


def test_export_then_import_gives_an_equal_graph_without_secret_values(
    app: LocalApp, page: Any, tmp_path: Path
) -> None:
    api(page, "POST", "/api/secrets/", {"name": "CLEARBIT_API_KEY", "value": CLEARBIT_VALUE})
    workflow = open_template(page)
    original = saved_graph(page, workflow)

    with page.expect_download() as info:
        page.click('[data-action="export-workflow"]')
    download = info.value
    assert download.suggested_filename.endswith(".klyntos.json")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    text = path.read_text()
    assert CLEARBIT_VALUE not in text
    document = json.loads(text)
    assert document["kind"] == "klyntos/workflow"
    assert document["secrets"] == ["CLEARBIT_API_KEY", "LINKEDIN_API_KEY"]
    assert "<env.CLEARBIT_API_KEY>" in text

    # The list page offers the same file.
    page.goto("/")
    row = page.locator(f'[data-testid="workflow-row"][data-workflow-id="{workflow}"]')
    with page.expect_download() as listed:
        row.locator('[data-testid="export-workflow"]').click()
    assert CLEARBIT_VALUE not in Path(listed.value.path()).read_text()

    # Import from the list page: a new workflow with an equal graph, valid.
    page.set_input_files('[data-testid="import-file"]', str(path))
    page.wait_for_url(re.compile(r".*/workflows/(\d+)/$"))
    imported = int(re.search(r"/workflows/(\d+)/", page.url).group(1))  # type: ignore[union-attr]
    assert imported != workflow
    page.wait_for_selector('[data-block-name="agent_merge"]')
    assert saved_graph(page, imported) == original
    answer = api(page, "GET", f"/api/workflows/{imported}/")
    assert answer["name"].endswith("(imported)")
    assert answer["validation"]["ok"], answer["validation"]

    # Import from the editor too; a file that is not a workflow is refused with a message.
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    page.set_input_files('[data-testid="import-file"]', str(bad))
    page.wait_for_selector(
        '[data-testid="save-status"]:has-text("Not imported: the file holds no workflow graph")'
    )
    page.set_input_files('[data-testid="import-file"]', str(path))
    page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1] not in (str(imported), ""))
    again = int(re.search(r"/workflows/(\d+)/", page.url).group(1))  # type: ignore[union-attr]
    assert again not in (workflow, imported)
    assert saved_graph(page, again) == original
