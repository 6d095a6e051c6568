"""The run-start limit of an owner across all their workflows (KLYNTOS_OWNER_RUNS_PER_MINUTE):
many workflows, or copies of one, no longer each bring a fresh allowance."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from builder import gallery, services
from tests.builder.conftest import TEMPLATE

JSON = "application/json"


def start(client: Client, workflow: Any) -> Any:
    return client.post(f"/hooks/{workflow.webhook.token}", data=b'{"leads": []}', content_type=JSON)


@pytest.mark.django_db
def test_an_owners_workflows_share_one_allowance_and_others_keep_theirs(
    client: Client, user: Any, other_user: Any, lead_workflow: Any, settings: Any
) -> None:
    settings.KLYNTOS_RUNS_PER_MINUTE = 100
    settings.KLYNTOS_OWNER_RUNS_PER_MINUTE = 3
    copy = gallery.template_instantiate(owner=user, slug=TEMPLATE)
    for name in ("CLEARBIT_API_KEY", "LINKEDIN_API_KEY"):
        services.secret_set(owner=other_user, name=name, value="their-key")
    theirs = gallery.template_instantiate(owner=other_user, slug=TEMPLATE)
    for workflow in (lead_workflow, lead_workflow, copy):
        services.run_create(workflow=workflow, input={"leads": []}, announce=False)

    refused = start(client, copy)

    assert refused.status_code == 429
    assert refused.json()["error"].startswith("your workflows start at most 3 runs a minute;")
    assert int(refused["Retry-After"]) >= 1
    with pytest.raises(services.RateLimited, match="your workflows"):
        services.run_create(workflow=lead_workflow, input={"leads": []}, announce=False)
    # Another owner's allowance is their own.
    run, created = services.run_create(workflow=theirs, input={"leads": []}, announce=False)
    assert created and run.owner_id == other_user.pk


@pytest.mark.django_db
def test_a_workflow_still_has_its_own_limit_below_its_owners(
    lead_workflow: Any, settings: Any
) -> None:
    settings.KLYNTOS_RUNS_PER_MINUTE = 2
    settings.KLYNTOS_OWNER_RUNS_PER_MINUTE = 100
    for _ in range(2):
        services.run_create(workflow=lead_workflow, input={"leads": []}, announce=False)
    with pytest.raises(services.RateLimited, match="this workflow starts at most 2"):
        services.run_create(workflow=lead_workflow, input={"leads": []}, announce=False)


@pytest.mark.django_db
def test_zero_turns_the_owners_limit_off(lead_workflow: Any, settings: Any) -> None:
    settings.KLYNTOS_RUNS_PER_MINUTE = 0
    settings.KLYNTOS_OWNER_RUNS_PER_MINUTE = 0
    for _ in range(5):
        services.run_create(workflow=lead_workflow, input={"leads": []}, announce=False)
