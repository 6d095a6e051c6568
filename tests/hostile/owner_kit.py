"""Shared moves of the per-owner data tests: A's template run, B's database blocks."""

from __future__ import annotations

import asyncio
from typing import Any

from django.test import Client

from builder.gallery import template_instantiate
from builder.services import run_create, secret_set, workflow_create
from engine.models import Run
from engine.runner import execute_run


def make_owner(django_user_model: Any, username: str) -> Any:
    """A staff user (so they have an admin list) with the template's provider keys."""
    user = django_user_model.objects.create_user(username, password=f"pw-{username}-123")
    user.is_staff = True
    user.save()
    secret_set(owner=user, name="CLEARBIT_API_KEY", value=f"clearbit-{username}")
    secret_set(owner=user, name="LINKEDIN_API_KEY", value=f"linkedin-{username}")
    return user


def leads(n: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}{i}",
            "name": f"{prefix} Person {i}",
            "company": f"{prefix} Co {i}",
            "title": "CTO",
            "email": f"{prefix.lower()}{i}@example.com",
            "domain": f"{prefix.lower()}{i}.example.com",
            "message": "hello",
        }
        for i in range(n)
    ]


def run_template(owner: Any, body: Any) -> Run:
    workflow = owner.workflows.filter(template_slug="parallel-lead-enrichment").first()
    if workflow is None:
        workflow = template_instantiate(owner=owner, slug="parallel-lead-enrichment")
    run, _ = run_create(workflow=workflow, input=body)
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    return run


def run_sql(owner: Any, sql: str) -> Run:
    graph = {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {"id": "q", "type": "database", "name": "q", "config": {"sql": sql}},
        ],
        "edges": [{"source": "webhook", "target": "q"}],
    }
    workflow = workflow_create(owner=owner, name="probe", graph=graph)
    run, _ = run_create(workflow=workflow, input={})
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    return run


def admin_list(user: Any) -> str:
    client = Client()
    client.force_login(user)
    page = client.get("/admin/leads/enrichedlead/")
    assert page.status_code == 200
    return page.content.decode()


def table_of(page: str) -> str:
    """The result table of an admin list page (what must not change)."""
    start = page.index('<table id="result_list">')
    return page[start : page.index("</table>", start)]
