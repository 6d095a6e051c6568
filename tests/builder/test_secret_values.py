"""A secret's value typed into a field instead of `<env.NAME>` is a validation warning that
names the secret and the field, never the value (builder/secret_values.py)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.builder.conftest import CLEARBIT_KEY
from tests.builder.test_api import expect


@pytest.mark.django_db
def test_a_secrets_value_typed_in_a_field_is_warned_on_validate_and_save(
    api: APIClient, lead_workflow: Any
) -> None:
    graph = copy.deepcopy(lead_workflow.current_version.graph)
    for block in graph["blocks"]:
        if block["id"] == "http_clearbit":
            block["config"]["headers"] = {"Authorization": f"Bearer {CLEARBIT_KEY}"}
    checked = expect(
        api.post(f"/api/workflows/{lead_workflow.pk}/validate/", {"graph": graph}, format="json"),
        200,
    )
    [warning] = [w for w in checked["warnings"] if "secret" in w["message"]]
    assert (warning["block_id"], warning["field"]) == ("http_clearbit", "headers.Authorization")
    assert warning["message"] == (
        "holds the value of the secret CLEARBIT_API_KEY: write <env.CLEARBIT_API_KEY> instead "
        "(a value typed here is stored in clear in every version)"
    )
    assert CLEARBIT_KEY not in json.dumps(checked["warnings"])
    saved = expect(
        api.put(
            f"/api/workflows/{lead_workflow.pk}/",
            {"graph": graph, "base_version": 1},
            format="json",
        ),
        200,
    )
    assert warning in saved["validation"]["warnings"]
    # The shipped template reads its secrets by reference: no such warning.
    clean = expect(
        api.post(
            f"/api/workflows/{lead_workflow.pk}/validate/",
            {"graph": lead_workflow.current_version.graph},
            format="json",
        ),
        200,
    )
    assert not [w for w in clean["warnings"] if "secret" in w["message"]]
