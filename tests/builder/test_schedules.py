"""Schedule triggers: publishing sets a workflow's schedule, the scheduler starts one run per
tick (missed ticks collapse, two schedulers never double a tick), and the panel's preview."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from rest_framework.test import APIClient

from builder import services
from builder.models import Workflow
from builder.schedules import fire_due
from engine.models import Run
from tests.builder.test_api import expect

UTC = dt.UTC


def scheduled_graph(cron: str = "*/5 * * * *", **extra: Any) -> dict[str, Any]:
    return {
        "blocks": [
            {
                "id": "nightly",
                "type": "schedule",
                "name": "nightly",
                "config": {"cron": cron, "input": {"days": 30}, **extra},
            },
            {
                "id": "step",
                "type": "transform",
                "name": "step",
                "config": {"input": "<nightly.input.days>", "expression": "@"},
            },
        ],
        "edges": [{"source": "nightly", "target": "step"}],
    }


def at(hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 3, hour, minute, second, tzinfo=UTC)


def scheduled_workflow(user: Any, next_at: dt.datetime, cron: str = "*/5 * * * *") -> Workflow:
    workflow = services.workflow_create(owner=user, name="nightly", graph=scheduled_graph(cron))
    assert workflow.schedule_cron == cron
    Workflow.objects.filter(pk=workflow.pk).update(schedule_next_at=next_at)
    return workflow


@pytest.mark.django_db
def test_publishing_sets_the_schedule_and_a_draft_does_not(user: Any) -> None:
    workflow = services.workflow_create(owner=user, name="w", graph=scheduled_graph("0 2 * * *"))
    assert (workflow.schedule_cron, workflow.schedule_timezone) == ("0 2 * * *", "UTC")
    assert workflow.schedule_next_at is not None and workflow.schedule_next_at.hour == 2

    draft = services.workflow_save(
        workflow=workflow, graph=scheduled_graph("0 3 * * *"), base_version=1
    )
    assert draft.schedule_cron == "0 2 * * *"  # the draft is not live
    live = services.workflow_publish(workflow=draft)
    assert live.schedule_cron == "0 3 * * *" and live.schedule_next_at.hour == 3

    plain = scheduled_graph()
    plain["blocks"][0] = {"id": "nightly", "type": "webhook", "name": "nightly", "config": {}}
    plain["blocks"][1]["config"]["input"] = "<nightly.body>"
    cleared = services.workflow_save(workflow=live, graph=plain, base_version=2, publish=True)
    assert (cleared.schedule_cron, cleared.schedule_next_at) == ("", None)


@pytest.mark.django_db
def test_one_run_per_tick_and_missed_ticks_collapse(user: Any) -> None:
    workflow = scheduled_workflow(user, next_at=at(10, 5))
    assert fire_due(at(10, 4, 59)) == []

    [run] = fire_due(at(10, 5, 0))
    assert (run.trigger, run.input) == ("schedule", {"scheduled_for": "2026-12-03T10:05:00+00:00"})
    assert run.version_id == workflow.published_version_id
    assert Workflow.objects.get(pk=workflow.pk).schedule_next_at == at(10, 10)
    assert fire_due(at(10, 5, 30)) == []

    # Down from 10:06 to 10:27: the ticks 10:10 .. 10:25 give one run, for 10:25.
    [late] = fire_due(at(10, 27))
    assert late.input == {"scheduled_for": "2026-12-03T10:25:00+00:00"}
    assert Workflow.objects.get(pk=workflow.pk).schedule_next_at == at(10, 30)
    assert Run.objects.filter(workflow=workflow, trigger="schedule").count() == 2


@pytest.mark.django_db
def test_a_tick_of_a_workflow_no_longer_valid_starts_nothing_and_moves_on(user: Any) -> None:
    graph = scheduled_graph()
    graph["blocks"][1]["config"]["input"] = "<env.GONE>"
    services.secret_set(owner=user, name="GONE", value="x")
    workflow = scheduled_workflow_from(user, graph)
    user.secrets.filter(name="GONE").delete()
    assert fire_due(at(10, 5)) == []
    assert not Run.objects.filter(workflow=workflow).exists()
    assert Workflow.objects.get(pk=workflow.pk).schedule_next_at == at(10, 10)


def scheduled_workflow_from(user: Any, graph: dict[str, Any]) -> Workflow:
    workflow = services.workflow_create(owner=user, name="nightly", graph=graph)
    assert workflow.published_version_id is not None
    Workflow.objects.filter(pk=workflow.pk).update(schedule_next_at=at(10, 5))
    return workflow


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_the_same_moment_start_one_run(user: Any) -> None:
    workflow = scheduled_workflow(user, next_at=at(10, 5))
    barrier = threading.Barrier(2)
    started: list[int] = []

    def scheduler() -> None:
        from django.db import connections

        try:
            barrier.wait()
            started.append(len(fire_due(at(10, 5, 1))))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(started) == [0, 1]
    assert Run.objects.filter(workflow=workflow).count() == 1


@pytest.mark.django_db
def test_the_panel_previews_the_next_fire_times(api: APIClient) -> None:
    preview = expect(
        api.post(
            "/api/schedules/preview/",
            {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"},
            format="json",
        ),
        200,
    )
    fires = [dt.datetime.fromisoformat(f) for f in preview["next"]]
    assert len(fires) == 5 and fires == sorted(fires)
    assert all(f.astimezone(dt.UTC).hour in (7, 8) and f.weekday() < 5 for f in fires)
    assert "09:00" in preview["explain"]
    bad = expect(api.post("/api/schedules/preview/", {"cron": "0 9 * *"}, format="json"), 400)
    assert "five fields" in bad["error"]
    expect(
        api.post(
            "/api/schedules/preview/", {"cron": "0 9 * * *", "timezone": "X/Y"}, format="json"
        ),
        400,
    )
