import asyncio

from engine.core.executor import RunOptions
from engine.core.limits import MAX_CONCURRENT
from engine.core.memo import Memo, StoredStep
from simulator.testing import RunningSimulator
from tests.builder.holds import held_until_in_flight
from tests.engine.core.graphkit import Recorder, block, graph, run_graph

LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"


def lookup_loop(max_concurrent: int, **loop_config: object) -> dict:
    return graph(
        [
            block("webhook", "webhook"),
            block(
                "loop",
                "loop",
                items="<webhook.body.items>",
                max_concurrent=max_concurrent,
                **loop_config,
            ),
            block("fetch", "http", "loop", url=LOOKUP, headers={"Authorization": "Bearer k"}),
        ],
        [("webhook", "loop")],
    )


def items(n: int) -> dict:
    return {"items": [{"domain": f"d{i}.example"} for i in range(n)]}


async def wait_until(predicate, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_sliding_window_never_waits_for_a_slow_item(sim: RunningSimulator) -> None:
    sim.control.configure(hold=[{"endpoint": "clearbit", "match": {"domain": "d0.example"}}])
    recorder = Recorder()
    # `results` reaches its readers in input order (the aggregation reads it).
    g = lookup_loop(3, aggregations={"order": "results[].index"})
    task = asyncio.create_task(run_graph(g, items(10), sim=sim, recorder=recorder))
    finished = lambda: {e.data["index"] for e in recorder.of("item.finished")}  # noqa: E731
    await wait_until(lambda: {3, 4, 5} <= finished())
    started = {e.data["index"] for e in recorder.of("item.started")}
    assert {3, 4, 5} <= started
    assert 0 not in finished(), "item 0 is held, yet it finished"
    # While item 0 is held the other two slots carry everything else.
    await wait_until(lambda: finished() == set(range(1, 10)))
    assert max(e.data["running"] for e in recorder.of("progress")) <= 3
    sim.control.release()
    outcome, _ = await task
    assert outcome.status == "succeeded"
    assert outcome.outputs["loop"]["order"] == list(range(10))


async def test_cap_bounds_in_flight_calls_and_sequential_runs_one_at_a_time(
    sim: RunningSimulator,
) -> None:
    sim.control.configure(latency_ms=50)
    with held_until_in_flight(sim, "clearbit", 4):  # the cap, not a loaded CPU's pace
        outcome, _ = await run_graph(lookup_loop(4), items(12), sim=sim)
    assert outcome.status == "succeeded"
    assert sim.control.stats()["peak_in_flight"]["clearbit"] == 4
    sim.control.reset(latency_ms=20)
    outcome, _ = await run_graph(
        lookup_loop(4), items(5), sim=sim, options=RunOptions(sequential=True)
    )
    assert sim.control.stats()["peak_in_flight"]["clearbit"] == 1


async def test_one_bad_item_fails_alone_with_its_reason() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block(
                "loop",
                "loop",
                items="<webhook.body.items>",
                variable="row",
                aggregations={"ids": "results[].item.id"},
            ),
            block("double", "transform", "loop", input={"v": "<row.value>"}, expression="v"),
        ],
        [("webhook", "loop")],
    )
    body = {"items": [{"id": 1, "value": 10}, {"id": 2}, {"id": 3, "value": 30}]}
    outcome, rec = await run_graph(g, body)
    loop = outcome.outputs["loop"]
    assert outcome.status == "partially_succeeded"
    assert loop["count"] == 3 and loop["succeeded"] == 2 and loop["ids"] == [1, 3]
    assert loop["failed"] == [
        {
            "index": 1,
            "item": {"id": 2},
            "block": "double",
            "error": "reference <row.value>: 'row' has no field 'value'",
        }
    ]
    assert [e.data["index"] for e in rec.of("item.failed")] == [1]


async def test_every_item_failing_fails_the_run_and_stops_downstream() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>"),
            block("t", "transform", "loop", input="<item.missing>", expression="@"),
            block("after", "transform", input="<loop.count>", expression="@"),
        ],
        [("webhook", "loop"), ("loop", "after")],
    )
    outcome, rec = await run_graph(g, {"items": [{}, {}]})
    assert outcome.status == "failed" and "all 2 items failed" in (outcome.error or "")
    assert not rec.of("step.started", name="after")
    assert [e.type for e in rec.events][-1] == "run.failed"
    assert [e.seq for e in rec.events] == list(range(1, len(rec.events) + 1))


async def test_on_all_failed_continue_runs_the_blocks_after_and_still_fails_the_run() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block(
                "loop",
                "loop",
                items="<webhook.body.items>",
                on_all_failed="continue",
                aggregations={"reasons": "failed[].error"},
            ),
            block("t", "transform", "loop", input="<item.missing>", expression="@"),
            block(
                "report",
                "transform",
                input={"failed": "<loop.failed>", "succeeded": "<loop.succeeded>"},
                expression="{n: length(failed), ok: succeeded}",
            ),
        ],
        [("webhook", "loop"), ("loop", "report")],
    )
    outcome, rec = await run_graph(g, {"items": [{}, {}, {}]})
    assert outcome.status == "failed"
    assert outcome.error == (
        "'loop' failed: all 3 items failed; first: reference <item.missing>: 'item' has no "
        "field 'missing'"
    )
    # The report ran, on the loop's whole output: its failures and their reasons.
    assert outcome.outputs["report"] == {"result": {"n": 3, "ok": 0}}
    assert len(outcome.outputs["loop"]["reasons"]) == 3
    assert [e.type for e in rec.events][-1] == "run.failed"


async def test_on_all_failed_continue_in_an_inner_loop_lets_its_item_go_on() -> None:
    """An inner loop's items all failing is its outer item's business: the item goes on,
    and the run is not failed for it (its inner items' failures make it partial)."""
    g = graph(
        [
            block("webhook", "webhook"),
            block("outer", "loop", items="<webhook.body.items>", variable="row"),
            block(
                "inner",
                "loop",
                "outer",
                items="<row.parts>",
                variable="part",
                on_all_failed="continue",
            ),
            block("t", "transform", "inner", input="<part.v>", expression="@"),
            block("after", "transform", "outer", input="<inner.failed>", expression="length(@)"),
        ],
        [("webhook", "outer"), ("inner", "after")],
    )
    body = {"items": [{"parts": [{}, {}]}, {"parts": [{"v": 1}]}]}
    outcome, _ = await run_graph(g, body)
    assert outcome.status == "partially_succeeded"
    assert outcome.outputs["outer"]["succeeded"] == 2


async def test_fail_fast_stops_starting_new_items() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=1, fail_fast=True),
            block("t", "transform", "loop", input="<item.v>", expression="@"),
        ],
        [("webhook", "loop")],
    )
    outcome, rec = await run_graph(g, {"items": [{"v": 1}, {}, {"v": 3}, {"v": 4}]})
    assert outcome.status == "failed"
    assert {e.data["index"] for e in rec.of("item.started")} == {0, 1}


async def test_items_that_are_not_a_list_fail_the_loop_clearly() -> None:
    g = graph(
        [block("webhook", "webhook"), block("loop", "loop", items="<webhook.body.items>")],
        [("webhook", "loop")],
    )
    outcome, _ = await run_graph(g, {"items": {"a": 1}})
    assert outcome.status == "failed" and "items must resolve to a list, got dict" in (
        outcome.error or ""
    )


async def test_nested_loops_each_cap_bounds_its_own_children(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=60)
    g = graph(
        [
            block("webhook", "webhook"),
            block(
                "companies",
                "loop",
                items="<webhook.body.companies>",
                variable="company",
                max_concurrent=2,
                aggregations={"third": "results[2].outputs.people"},
            ),
            block(
                "people",
                "loop",
                "companies",
                items="<company.people>",
                variable="person",
                max_concurrent=3,
            ),
            block(
                "fetch",
                "http",
                "people",
                url="https://api.linkedin.com/v2/people?email=<person.email>",
                headers={"Authorization": "Bearer k"},
            ),
        ],
        [("webhook", "companies"), ("companies", "people")],
    )
    body = {
        "companies": [{"people": [{"email": f"p{c}-{p}@x.io"} for p in range(5)]} for c in range(4)]
    }
    with held_until_in_flight(sim, "linkedin", 6):  # the caps, not a loaded CPU's pace
        outcome, rec = await run_graph(g, body, sim=sim)
    assert outcome.status == "succeeded"
    assert sim.control.stats()["peak_in_flight"]["linkedin"] == 6  # 2 companies × 3 people
    # The outer loop's reader reaches the inner loop's results through `outputs.people`.
    inner = outcome.outputs["companies"]["third"]
    assert inner["count"] == 5 and inner["results"][4]["item"] == {"email": "p2-4@x.io"}
    assert "companies[2]/people[4]" in {e.data["item"] for e in rec.of("item.finished")}


async def test_priority_starts_high_priority_items_first() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block(
                "loop",
                "loop",
                items="<webhook.body.items>",
                max_concurrent=1,
                priority="p",
                aggregations={"order": "results[].index"},
            ),
            block("t", "transform", "loop", input="<item.p>", expression="@"),
        ],
        [("webhook", "loop")],
    )
    outcome, rec = await run_graph(g, {"items": [{"p": 1}, {"p": 5}, {"p": 3}]})
    assert [e.data["index"] for e in rec.of("item.started")] == [1, 2, 0]
    assert outcome.outputs["loop"]["order"] == [0, 1, 2]


def test_dispatch_order_puts_unrepresentable_priorities_last_instead_of_crashing() -> None:
    from engine.core.loop import dispatch_order

    items = [{"p": 1}, {"p": -(10**400)}, {"p": 5}, {"p": "x"}, {"p": 10**400}, {"p": 3}]
    # 10**400 overflows float; "x" is not a number (priority 0, as before).
    assert dispatch_order(items, "p") == [2, 5, 0, 3, 1, 4]
    # An expression that fails on an item (abs() of a string) sorts that item last too.
    assert dispatch_order([{"p": "x"}, {"p": -2}, {"p": 2}], "abs(p)") == [1, 2, 0]


async def test_a_huge_priority_value_does_not_fail_the_run() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block(
                "loop",
                "loop",
                items="<webhook.body.items>",
                max_concurrent=1,
                priority="p",
                aggregations={"order": "results[].index"},
            ),
            block("t", "transform", "loop", input="<item.p>", expression="@"),
        ],
        [("webhook", "loop")],
    )
    outcome, rec = await run_graph(g, {"items": [{"p": -(10**400)}, {"p": 2}]})
    assert outcome.status == "succeeded"
    assert [e.data["index"] for e in rec.of("item.started")] == [1, 0]


async def test_progress_counts_an_item_as_running_while_it_is_in_flight() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=1),
            block("t", "transform", "loop", input="<item>", expression="@"),
        ],
        [("webhook", "loop")],
    )
    outcome, rec = await run_graph(g, {"items": [1, 2]})
    assert outcome.status == "succeeded"
    running = [(e.data["running"], e.data["succeeded"]) for e in rec.of("progress")]
    # One event per turn of the event loop: the first item's end and the second's start
    # fall in one turn (0, 1 then 1, 1 is told as 1, 1).
    assert running == [(0, 0), (1, 0), (1, 1), (0, 2)]


async def test_progress_is_told_once_per_turn_with_the_peak_and_the_last_counts(
    sim: RunningSimulator,
) -> None:
    outcome, rec = await run_graph(lookup_loop(20), items(300), sim=sim)
    assert outcome.status == "succeeded"
    told = rec.of("progress")
    assert len(told) < 300  # not two per item: a few per turn of the event loop
    assert told[-1].data["succeeded"] == 300 and told[-1].data["running"] == 0
    assert max(e.data["peak_running"] for e in told) == 20  # the cap, as in flight
    ends = [
        n
        for n, e in enumerate(rec.events)
        if e.type == "step.finished" and e.data["block"] == "loop"
    ]
    assert rec.events.index(told[-1]) < ends[0]  # the last counts come before the loop's end


async def test_cancelling_the_run_reports_each_item_in_flight_as_cancelled(
    sim: RunningSimulator,
) -> None:
    sim.control.configure(hold=[{"endpoint": "clearbit", "match": {"domain": "d0.example"}}])
    recorder = Recorder()
    task = asyncio.create_task(run_graph(lookup_loop(2), items(2), sim=sim, recorder=recorder))
    try:
        await wait_until(lambda: recorder.of("item.finished", index=1))
        await wait_until(lambda: recorder.of("item.started", index=0))
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the run should have been cancelled")
    finally:
        sim.control.release()
    cancelled = recorder.of("item.cancelled")
    assert [(e.data["item"], e.data["loop"], e.data["index"]) for e in cancelled] == [
        ("loop[0]", "loop", 0)
    ]
    assert not recorder.of("item.finished", index=0) and not recorder.of("item.failed")


async def test_a_loop_at_the_largest_cap_never_queues_for_a_connection(
    sim: RunningSimulator,
) -> None:
    """The outbound pool is as large as MAX_CONCURRENT: a wait for a connection would count
    against the items' attempt timeouts although the server has not seen them yet."""
    sim.control.configure(hold=[{"endpoint": "clearbit"}])
    task = asyncio.create_task(
        run_graph(lookup_loop(MAX_CONCURRENT), items(MAX_CONCURRENT), sim=sim)
    )
    try:
        await wait_until(
            lambda: sim.control.stats()["held"]["clearbit"] == MAX_CONCURRENT, within=120
        )
    finally:
        sim.control.release()
    outcome, _ = await task
    assert outcome.status == "succeeded"
    assert outcome.outputs["loop"]["succeeded"] == MAX_CONCURRENT


def companies_and_people(people_cap: int) -> dict:
    """A company's lookup and its people's loop side by side in the company's body."""
    return graph(
        [
            block("webhook", "webhook"),
            block(
                "companies",
                "loop",
                items="<webhook.body.companies>",
                variable="company",
                max_concurrent=2,
            ),
            block(
                "lookup",
                "http",
                "companies",
                url="https://api.clearbit.com/v2/companies/find?domain=<company.domain>",
                headers={"Authorization": "Bearer k"},
            ),
            block(
                "people",
                "loop",
                "companies",
                items="<company.people>",
                variable="person",
                max_concurrent=people_cap,
            ),
            block(
                "profile",
                "http",
                "people",
                url="https://api.linkedin.com/v2/people?email=<person.email>",
                headers={"Authorization": "Bearer k"},
            ),
        ],
        [("webhook", "companies")],
    )


async def test_an_outer_items_failure_lets_its_inner_loops_items_in_flight_finish(
    sim: RunningSimulator,
) -> None:
    """companies[0]'s lookup fails while two of its people are in flight: like any sibling
    step in flight they finish (a success is stored for a retry to reuse, a failure is a
    failure with its own reason), no more start — recorded not started because the company
    failed — and nothing says the run was cancelled."""
    sim.control.configure(
        latency_ms={"clearbit": 50, "linkedin": 300},
        failures=[
            {"endpoint": "clearbit", "match": {"domain": "c0.example"}, "status": 404},
            {"endpoint": "linkedin", "match": {"email": "p0-1@x.io"}, "status": 404},
        ],
    )
    body = {
        "companies": [
            {"domain": f"c{c}.example", "people": [{"email": f"p{c}-{p}@x.io"} for p in range(n)]}
            for c, n in ((0, 6), (1, 2))
        ]
    }
    outcome, rec = await run_graph(companies_and_people(2), body, sim=sim)
    assert outcome.status == "partially_succeeded"
    failed = outcome.outputs["companies"]["failed"]
    assert [(f["index"], f["block"]) for f in failed] == [(0, "lookup")]
    assert not rec.of("item.cancelled") and not rec.of("step.cancelled")
    assert {e.data["item"] for e in rec.of("item.finished", loop="people")} == {
        "companies[0]/people[0]",
        "companies[1]/people[0]",
        "companies[1]/people[1]",
    }
    stored = rec.of("step.finished", item="companies[0]/people[0]", block="profile")
    assert len(stored) == 1  # its row is stored: a retry reuses it
    [inner_failure] = rec.of("item.failed", loop="people")
    assert inner_failure.data["item"] == "companies[0]/people[1]"
    assert "404" in inner_failure.data["error"]
    [not_started] = rec.of("items.not_started")
    assert not_started.data["parent"] == "companies[0]"
    assert not_started.data["indexes"] == [2, 3, 4, 5]
    assert not_started.data["error"] == "not started: companies[0] failed at lookup"
    [stopped] = rec.of("step.failed", item="companies[0]", block="people")
    assert stopped.data["error"] == "stopped: companies[0] failed at lookup"
    assert sim.control.stats()["requests"]["linkedin"] == 4  # two of companies[0], two of [1]
    assert not any("the run was cancelled" in str(e.data) for e in rec.events)

    # A retry reuses every step that succeeded: the call already made is not made again.
    memo = Memo(
        steps={
            (e.data["item"], e.data["block"]): StoredStep(e.data["output"])
            for e in rec.of("step.finished")
            if e.data["item"]
        }
    )
    sim.control.reset()
    outcome, _ = await run_graph(companies_and_people(2), body, sim=sim, memo=memo)
    assert outcome.status == "succeeded"
    # companies[0]'s people 1 to 5 (1 failed, 2 to 5 never began); people[0]'s is reused.
    assert sim.control.stats()["requests"]["linkedin"] == 5


async def test_a_costly_aggregation_fails_the_loop_naming_the_limit() -> None:
    """Aggregations are bounded like a transform (KLYNTOS_BLOCK_TIMEOUT): the loop fails
    saying which ran too long, and the run does not wait for them to finish."""
    slow = "length([" + ", ".join(["results[].item[?@==`0`][]"] * 20) + "])"
    g = graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.x>", aggregations={"zeros": slow}),
            block("t", "transform", "loop", input="<item>", expression="@"),
        ],
        [("webhook", "loop")],
    )
    body = {"x": [[0] * 300 for _ in range(2000)]}
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome, _ = await run_graph(g, body, options=RunOptions(block_timeout=0.5))
    assert outcome.status == "failed"
    assert "loop: aggregations: computing 'zeros' over 2000 items took longer than 0.5 s" in (
        outcome.error or ""
    )
    assert loop.time() - started < 30
