"""A run's summary summed in SQL from its rows: equal to the rows' own sums, a fixed number of
queries whatever the number of items, and the same sums on SQLite as on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from builder.services import run_create, workflow_create
from engine import run_costs
from engine.core.prices import Price, PriceTable, tally
from engine.models import ItemRun, Run, StepRun
from tests.engine.graphs import burst_graph

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

N = 10_000
PRICES = '{"sim-model": {"input": 2, "output": 8}}'
# Usage as upstreams may send it: counts missing, as text, negative, absurd; non-entries.
ODD_USAGE = [
    {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "model": "sim-model"},
    {"prompt_tokens": 2, "completion_tokens": 1, "model": "sim-model"},
    {"prompt_tokens": "12", "completion_tokens": -4, "total_tokens": False, "model": "other"},
    {"prompt_tokens": 1e300, "completion_tokens": 2.9, "model": None},
    {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10, "model": 42},
    "text",
    [1, 2],
]


def ended_run(owner: Any, items: int, usage: Any, seconds: float = 2.0) -> Run:
    """A run of the burst graph with `items` stored items, each with one step using `usage`,
    plus a top-level transform step and the loop's own step."""
    workflow = workflow_create(owner=owner, name="costs", graph=burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": []})
    start = timezone.now() - dt.timedelta(seconds=seconds)
    ItemRun.objects.bulk_create(
        ItemRun(
            run=run,
            key=f"loop[{i}]",
            loop_block="loop",
            index=i,
            status="succeeded",
            duration=0.25 + (i % 7) / 100,
            started_at=start,
            finished_at=start,
        )
        for i in range(items)
    )
    StepRun.objects.bulk_create(
        [
            StepRun(
                run=run,
                item_key=f"loop[{i}]",
                block_id="square",
                name="square",
                status="succeeded",
                usage=usage,
                duration=0.2,
            )
            for i in range(items)
        ]
        + [
            StepRun(run=run, block_id="loop", name="loop", status="succeeded", duration=seconds),
            StepRun(run=run, block_id="webhook", name="webhook", status="succeeded", duration=0.5),
        ]
    )
    Run.objects.filter(pk=run.pk).update(
        status="succeeded",
        started_at=start,
        finished_at=start + dt.timedelta(seconds=seconds),
        last_seq=items,
    )
    return Run.objects.select_related("version").get(pk=run.pk)


def expected(run: Run) -> dict[str, Any]:
    """The sums worked out in Python from every row (what the SQL must agree with)."""
    items = ItemRun.objects.filter(run=run, parent_key="")
    steps = StepRun.objects.filter(run=run)
    sequential = sum(i.duration for i in items if i.duration is not None) + sum(
        s.duration for s in steps.filter(item_key="").exclude(block_id="loop")
    )
    models: dict[str, Any] = {}
    for step in steps:
        tally(step.usage, models)
    return {"sequential": sequential, "models": models}


def _sqlite_sums(rows: list[tuple[str, str, str, str]]) -> list[tuple[Any, ...]]:
    """`sums_sql` on SQLite over step rows (run id, usage, saved_usage, cache), for run "a"."""
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE engine_steprun (run_id char(32), usage text, saved_usage text, cache text)"
    )
    db.executemany("INSERT INTO engine_steprun VALUES (?, ?, ?, ?)", rows)
    sql = run_costs.sums_sql("sqlite", 1).replace("%s", "?")
    return sorted(tuple(row) for row in db.execute(sql, ["a" * 32] * 3))


def test_a_10000_item_summary_is_the_rows_sums_in_a_few_queries(
    owner: Any, settings: Any, django_assert_max_num_queries: Any
) -> None:
    settings.KLYNTOS_MODEL_PRICES = PRICES
    usage = [
        {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150, "model": "sim-model"}
    ]
    run = ended_run(owner, N, usage, seconds=25.0)
    cache.clear()
    began = time.perf_counter()
    with django_assert_max_num_queries(3):
        found = run_costs.summary(run)
    elapsed = time.perf_counter() - began
    print(f"summary of {N} items: {elapsed * 1000:.0f} ms")
    want = expected(run)
    assert found["sequential_seconds"] == pytest.approx(want["sequential"], rel=1e-9)
    assert found["wall_seconds"] == pytest.approx(25.0)
    assert found["speedup"] == pytest.approx(want["sequential"] / 25.0, rel=1e-9)
    assert found["items_measured"] == N
    assert found["tokens"] == {"prompt": 120 * N, "completion": 30 * N, "total": 150 * N}
    assert found["llm_calls"] == N
    assert found["cost_usd"] == pytest.approx((120 * N * 2 + 30 * N * 8) / 1e6, rel=1e-12)
    assert elapsed < 5, f"the summary of {N} items took {elapsed:.2f} s"
    # Ended: read again from the cache, no query.
    with django_assert_max_num_queries(0):
        assert run_costs.summary(run) == found


def test_odd_usage_sums_like_tally(owner: Any, settings: Any) -> None:
    settings.KLYNTOS_MODEL_PRICES = PRICES
    run = ended_run(owner, 3, ODD_USAGE)
    StepRun.objects.filter(run=run, item_key="loop[2]").update(usage="[redacted]")
    cache.clear()
    found = run_costs.summary(run)
    want = expected(run)["models"]
    assert {m["model"]: m["total_tokens"] for m in found["models"]} == {
        name: t.total for name, t in want.items()
    }
    assert found["tokens"]["prompt"] == sum(t.prompt for t in want.values())
    assert found["tokens"]["completion"] == sum(t.completion for t in want.values())
    assert found["llm_calls"] == sum(t.calls for t in want.values())
    # Only sim-model has a price (the test simulator is not sandbox mode: no free fallback).
    assert found["unpriced_models"] == ["unknown", "42", "other"]
    sim = want["sim-model"]
    assert found["cost_usd"] == pytest.approx((sim.prompt * 2 + sim.completion * 8) / 1e6)


def test_the_sqlite_query_sums_like_tally() -> None:
    """`make run`'s database: the same query on SQLite's JSON functions."""
    db = sqlite3.connect(":memory:")
    assert StepRun._meta.db_table == "engine_steprun"
    db.execute("CREATE TABLE engine_steprun (run_id char(32), usage text)")
    rows = [("a" * 32, json.dumps(ODD_USAGE)), ("a" * 32, json.dumps(ODD_USAGE[:2]))]
    rows += [("a" * 32, '"[redacted]"'), ("a" * 32, "[]"), ("b" * 32, json.dumps(ODD_USAGE))]
    db.executemany("INSERT INTO engine_steprun VALUES (?, ?)", rows)
    sql = run_costs.usage_sql("sqlite", 1).replace("%s", "?")
    got = {
        str(model if model is not None else "unknown"): (prompt, completion, total, calls)
        for _, model, prompt, completion, total, calls in db.execute(sql, ["a" * 32])
    }
    want: dict[str, Any] = {}
    for _, usage in rows[:4]:
        tally(json.loads(usage), want)
    assert got == {name: (t.prompt, t.completion, t.total, t.calls) for name, t in want.items()}


def test_a_running_run_is_summed_anew_and_a_page_of_runs_in_one_go(
    owner: Any, django_assert_max_num_queries: Any
) -> None:
    usage = [{"prompt_tokens": 10, "completion_tokens": 10, "model": "gpt-4o-mini"}]
    ended = ended_run(owner, 20, usage)
    running = ended_run(owner, 5, usage)
    Run.objects.filter(pk=running.pk).update(status="running", finished_at=None)
    running = Run.objects.select_related("version").get(pk=running.pk)
    cache.clear()
    with django_assert_max_num_queries(3):
        both = run_costs.summaries([ended, running])
    assert both[ended.pk]["llm_calls"] == 20 and both[running.pk]["llm_calls"] == 5
    # gpt-4o-mini at the default price.
    assert both[ended.pk]["cost_usd"] == pytest.approx(20 * (10 * 0.15 + 10 * 0.6) / 1e6)
    StepRun.objects.filter(run=running, item_key="loop[0]").update(usage=usage * 3)
    again = run_costs.summary(running)
    assert again["llm_calls"] == 7 and again["wall_seconds"] > both[running.pk]["wall_seconds"]


def test_item_costs_are_each_items_own_steps(owner: Any) -> None:
    usage = [{"prompt_tokens": 100, "completion_tokens": 50, "model": "gpt-4o-mini"}]
    run = ended_run(owner, 4, usage)
    StepRun.objects.filter(run=run, item_key="loop[1]").update(usage=usage * 2)
    found = run_costs.item_costs(run, ["loop[0]", "loop[1]", "loop[9]"])
    one = PriceTable({"gpt-4o-mini": Price(0.15, 0.6)}).cost("gpt-4o-mini", 100, 50)
    assert found["loop[0]"] == {"tokens": 150, "cost_usd": pytest.approx(one)}
    assert found["loop[1]"] == {"tokens": 300, "cost_usd": pytest.approx(2 * one)}
    assert found["loop[9]"] == {"tokens": 0, "cost_usd": 0.0}


def test_the_sqlite_sums_add_the_caches_hits_and_what_they_saved() -> None:
    used = [{"model": "m", "prompt_tokens": 10, "completion_tokens": 2}]
    rows = [
        ("a" * 32, json.dumps(used), "[]", "miss"),
        ("a" * 32, "[]", json.dumps(used), "hit"),
        ("a" * 32, "[]", json.dumps(used), "hit"),
        ("a" * 32, "[]", "[]", ""),
        ("b" * 32, "[]", json.dumps(used), "hit"),
    ]
    got = _sqlite_sums(rows)
    assert got == [
        ("hit", "a" * 32, None, 0, 0, 0, 2),
        ("miss", "a" * 32, None, 0, 0, 0, 1),
        ("saved", "a" * 32, "m", 20, 4, 24, 2),
        ("usage", "a" * 32, "m", 10, 2, 12, 1),
    ]


def retry_of(original: Run, usage: Any, ran: set[int], seconds: float = 1.0) -> Run:
    """A retry of `original` as the engine stores it: the items in `ran` ran again (their
    steps made calls now), the others were taken from the original (their times, and their
    steps as `cache` "reused" with the original's calls as `saved_usage`), as was the
    top-level webhook step."""
    run, _ = run_create(workflow=original.workflow, input={"items": []})
    start = original.finished_at + dt.timedelta(seconds=60)
    kept = {i.key: i for i in ItemRun.objects.filter(run=original)}
    items, steps = [], []
    for key, item in kept.items():
        again = item.index in ran
        items.append(
            ItemRun(
                run=run,
                key=key,
                loop_block="loop",
                index=item.index,
                status="succeeded",
                duration=0.5 if again else item.duration,
                started_at=start if again else item.started_at,
                finished_at=start if again else item.finished_at,
            )
        )
        step = {"usage": usage} if again else {"cache": "reused", "saved_usage": usage}
        steps.append(
            StepRun(
                run=run,
                item_key=key,
                block_id="square",
                name="square",
                status="succeeded",
                duration=0.2,
                **step,
            )
        )
    steps += [
        StepRun(run=run, block_id="loop", name="loop", status="succeeded", duration=seconds),
        StepRun(
            run=run,
            block_id="webhook",
            name="webhook",
            status="succeeded",
            duration=0.5,
            cache="reused",
        ),
    ]
    ItemRun.objects.bulk_create(items)
    StepRun.objects.bulk_create(steps)
    Run.objects.filter(pk=run.pk).update(
        status="succeeded",
        retry_of=original,
        started_at=start,
        finished_at=start + dt.timedelta(seconds=seconds),
        last_seq=len(items),
    )
    return Run.objects.select_related("version").get(pk=run.pk)


def test_a_retrys_summary_counts_only_what_it_did_and_the_originals_is_unchanged(
    owner: Any, settings: Any, django_assert_max_num_queries: Any
) -> None:
    """A retry of a 40-item run that ran 3 items again: its tokens, calls, dollars and
    sequential time are those 3 items' (the reused ones are `reused`, not spent again);
    the same on SQLite as on PostgreSQL (this file runs on both)."""
    settings.KLYNTOS_MODEL_PRICES = PRICES
    usage = [
        {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150, "model": "sim-model"}
    ]
    original = ended_run(owner, 40, usage, seconds=4.0)
    cache.clear()
    before = run_costs.summary(original)
    retry = retry_of(original, usage, ran={3, 17, 29})
    cache.clear()
    with django_assert_max_num_queries(3):
        both = run_costs.summaries([original, retry])
    one = (120 * 2 + 30 * 8) / 1e6
    found = both[retry.pk]
    assert found["llm_calls"] == 3 and found["tokens"]["total"] == 3 * 150
    assert found["cost_usd"] == pytest.approx(3 * one)
    assert found["items_measured"] == 3
    # The 3 items it ran, and no top-level step (the webhook's was reused).
    assert found["sequential_seconds"] == pytest.approx(3 * 0.5)
    assert found["speedup"] == pytest.approx(1.5 / 1.0)
    assert found["reused"] == {
        "items": 37,
        "steps": 38,
        "seconds": pytest.approx(
            sum(0.25 + (i % 7) / 100 for i in range(40) if i not in {3, 17, 29}) + 0.5
        ),
        "llm_calls": 37,
        "tokens": 37 * 150,
        "cost_usd": pytest.approx(37 * one),
    }
    assert found["cache"]["hits"] == 0 and found["cache"]["tokens_saved"] == 0
    assert both[original.pk] == before
    assert before["reused"] == {
        "items": 0,
        "steps": 0,
        "seconds": 0.0,
        "llm_calls": 0,
        "tokens": 0,
        "cost_usd": 0.0,
    }
    # Its items' own costs follow the same rule: a reused item's steps made no call.
    costs = run_costs.item_costs(retry, ["loop[0]", "loop[3]"])
    assert costs["loop[0]"] == {"tokens": 0, "cost_usd": 0.0}
    assert costs["loop[3]"] == {"tokens": 150, "cost_usd": pytest.approx(one)}


def test_the_sqlite_sums_keep_a_retrys_reused_steps_apart() -> None:
    used = [{"model": "m", "prompt_tokens": 10, "completion_tokens": 2}]
    rows = [
        ("a" * 32, json.dumps(used), "[]", ""),
        ("a" * 32, "[]", json.dumps(used), "hit"),
        ("a" * 32, "[]", json.dumps(used * 2), "reused"),
        ("a" * 32, "[]", json.dumps(used), "reused"),
    ]
    got = _sqlite_sums(rows)
    assert got == [
        ("hit", "a" * 32, None, 0, 0, 0, 1),
        ("reused", "a" * 32, None, 0, 0, 0, 2),
        ("reused_usage", "a" * 32, "m", 30, 6, 36, 3),
        ("saved", "a" * 32, "m", 10, 2, 12, 1),
        ("usage", "a" * 32, "m", 10, 2, 12, 1),
    ]


def test_an_estimate_from_five_leads_is_within_15_percent_of_the_whole_batch(
    owner: Any, simulator: Any, settings: Any
) -> None:
    """Issue 9 item 7: the lead template's cost for 100 leads, estimated from its first 5
    (`sample_items`), against what the 100 then cost."""
    from builder.gallery import template_instantiate
    from engine.runner import execute_run
    from tests.engine.test_lead_template import make_leads

    settings.KLYNTOS_MODEL_PRICES = '{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}'
    workflow = template_instantiate(owner=owner, slug="parallel-lead-enrichment")
    leads = {"leads": make_leads(100)}
    sample, _ = run_create(workflow=workflow, input=leads, options={"sample_items": 5})
    asyncio.run(execute_run(sample.pk))
    sample.refresh_from_db()
    assert sample.status == "succeeded" and (sample.succeeded, sample.not_started) == (5, 95)
    found = run_costs.summary(sample)["estimate"]
    [loop] = found["loops"]
    assert (loop["sampled"], loop["items"], found["sample_items"]) == (5, 100, 5)
    whole, _ = run_create(workflow=workflow, input=leads)
    asyncio.run(execute_run(whole.pk))
    whole.refresh_from_db()
    actual = run_costs.summary(whole)["cost_usd"]
    assert actual > 0
    assert abs(found["estimated_usd"] - actual) <= 0.15 * actual, (found, actual)
    assert found["error_usd"] >= 0
