"""The personalised-emails template (builder/gallery/personalised-emails.json): an Agent per
recipient writes a subject and body, upserted into the owner's own `personalised_emails`
table (PostgreSQL schema or SQLite file), and exported as CSV from the admin."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from builder import gallery
from builder.services import run_create
from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import validate
from engine.models import Run
from engine.runner import execute_run
from leads import owner_data
from leads.tables import EMAILS
from simulator import answers
from tests.builder.holds import held_until_in_flight
from tests.leads.rows import drop_all_owner_data

SLUG = "personalised-emails"
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])
EXPORT = "/admin/leads/personalisedemail/export.csv"


@pytest.fixture(params=["postgresql", "sqlite"])
def owners(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> owner_data.OwnerStore:
    """The owner's data on either store: runs write there and the admin reads it."""
    if request.param == "postgresql":
        drop_all_owner_data()
        return owner_data.store()
    store = owner_data.SqliteOwners(tmp_path / "owners")
    monkeypatch.setattr(owner_data, "store", lambda: store)
    return store


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("writer", password="pw-writer-123", is_staff=True)


def recipients(n: int) -> dict[str, Any]:
    sample = gallery.template_get(SLUG)["sample"]
    return {
        "campaign": sample["campaign"],
        "recipients": [
            {
                "id": f"r{i:05d}",
                "name": f"Person {i:05d}",
                "email": f"p{i:05d}@c{i % 40}.example",
                "company": f"Company {i % 40}",
                "title": "VP Sales",
                "interest": "automation",
            }
            for i in range(n)
        ],
    }


def run_template(owner: Any, body: Any) -> Run:
    workflow = gallery.template_instantiate(owner=owner, slug=SLUG)
    run, _ = run_create(workflow=workflow, input=body)
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    return run


def written(received: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The subject and body the simulator answered, by recipient name."""
    found = {}
    for entry in received:
        if entry["endpoint"] != "openai":
            continue
        prompt = entry["json"]["messages"][-1]["content"]
        name = prompt.split("Recipient: ", 1)[1].split(",", 1)[0]
        found[name] = json.loads(
            answers.chat_completion(entry["json"])["choices"][0]["message"]["content"]
        )
    return found


def export(user: Any) -> list[dict[str, str]]:
    client = Client()
    client.force_login(user)
    response = client.get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="personalised_emails.csv"' in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_template_is_valid_and_writes_to_the_emails_table() -> None:
    template = gallery.template_get(SLUG)
    result = validate(parse_graph(template["graph"]), REGISTRY, [])
    assert (result.errors, result.warnings) == ([], [])
    store = next(b for b in template["graph"]["blocks"] if b["name"] == "store_email")
    assert "INSERT INTO personalised_emails" in store["config"]["sql"]
    assert EMAILS.name == "personalised_emails"


@REAL_RUN
def test_the_sample_writes_one_row_per_recipient_in_the_owners_table(
    owners: owner_data.OwnerStore, staff: Any, providers: Any
) -> None:
    sample = gallery.template_get(SLUG)["sample"]
    run = run_template(staff, sample)
    assert run.status == "succeeded", run.error
    assert run.outputs["response"]["body"]["written"] == len(sample["recipients"])
    rows = owners.rows([staff.pk], "", 0, 1000, EMAILS)[0]
    emails = written(providers.control.stats()["received"])
    assert len(rows) == len(sample["recipients"])
    for recipient, row in zip(sample["recipients"], rows, strict=True):
        assert row["recipient_id"] == recipient["id"]
        assert (row["subject"], row["body"]) == (
            emails[recipient["name"]]["subject"],
            emails[recipient["name"]]["body"],
        )
    # Running the campaign again updates its rows rather than adding to them.
    assert run_template(staff, sample).status == "succeeded"
    assert owners.rows([staff.pk], "", 0, 0, EMAILS)[1] == len(sample["recipients"])


@REAL_RUN
def test_1000_recipients_give_1000_rows_exported_as_csv_from_the_admin(
    owners: owner_data.OwnerStore, staff: Any, django_user_model: Any, providers: Any
) -> None:
    providers.control.configure(latency_ms={"openai": 200})
    body = recipients(1000)
    with held_until_in_flight(providers, "openai", 50):  # the cap, not a loaded CPU's pace
        run = run_template(staff, body)
    assert run.status == "succeeded", run.error
    assert providers.control.stats()["peak_in_flight"]["openai"] == 50

    rows = export(staff)
    assert len(rows) == 1000
    emails = written(providers.control.stats()["received"])
    by_id = {row["recipient_id"]: row for row in rows}
    for recipient in body["recipients"]:
        row = by_id[recipient["id"]]
        assert row["campaign"] == body["campaign"]["id"]
        assert (row["email"], row["subject"], row["body"]) == (
            recipient["email"],
            emails[recipient["name"]]["subject"],
            emails[recipient["name"]]["body"],
        )
    # Another staff user's export holds none of them: each owner's table is their own.
    other = django_user_model.objects.create_user("other", password="pw-other-123", is_staff=True)
    assert export(other) == []
