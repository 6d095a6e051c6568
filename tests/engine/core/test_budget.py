"""A run's dollar budget (RunOptions.budget_usd): once reached, loops start no more items;
the items in flight finish and the rest are recorded not started with the reason."""

from __future__ import annotations

from engine.core.executor import RunOptions, plain_dollars
from engine.core.prices import Price, PriceTable, tally
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import Recorder, block, graph, run_graph

PRICES = PriceTable({"gpt-4o-mini": Price(150.0, 600.0)})  # dear, so a few calls count


def analysis_loop(cap: int = 4, **loop_config: object) -> dict:
    return graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=cap, **loop_config),
            block("ai", "agent", "loop", model="gpt-4o-mini", user_prompt="Company: <item.d>"),
        ],
        [("webhook", "loop")],
    )


def items(n: int) -> dict:
    return {"items": [{"d": f"d{i}.example"} for i in range(n)]}


def dollars(rec: Recorder) -> list[float]:
    """Each finished analysis's cost, in the order they finished."""
    out = []
    for event in rec.of("step.finished", block="ai"):
        for model, tokens in tally(event.data["usage"]).items():
            out.append(PRICES.cost(model, tokens.prompt, tokens.completion) or 0.0)
    return out


async def test_a_budget_stops_dispatch_at_most_the_items_in_flight_past_it(
    sim: RunningSimulator,
) -> None:
    sim.control.configure(latency_ms=20)
    # What one analysis costs, measured on a run without a budget.
    _, probe = await run_graph(
        analysis_loop(), items(1), sim=sim, options=RunOptions(prices=PRICES)
    )
    [one] = dollars(probe)
    budget = one * 10.5  # crossed by the 11th call
    rec = Recorder()
    options = RunOptions(budget_usd=budget, prices=PRICES)
    outcome, _ = await run_graph(
        analysis_loop(cap=4), items(60), sim=sim, options=options, recorder=rec
    )
    spent = dollars(rec)
    cap = 4
    # Dispatch stopped once the budget was crossed: at most the items then in flight more.
    assert budget <= sum(spent) <= budget + cap * one
    assert 11 <= len(spent) <= 11 + cap - 1
    [reached] = rec.of("run.budget")
    assert reached.data["budget_usd"] == budget and reached.data["spent_usd"] >= budget
    # No item started after the budget was reached.
    assert all(e.seq < reached.seq for e in rec.of("item.started"))
    [not_started] = rec.of("items.not_started")
    assert len(not_started.data["indexes"]) == 60 - len(spent)
    assert not_started.data["error"].startswith(
        f"not started: the run's budget of ${plain_dollars(budget)}"
    )
    assert outcome.status == "partially_succeeded"
    assert outcome.error is not None and f"{60 - len(spent)} items not started" in outcome.error
    assert outcome.outputs["loop"]["succeeded"] == len(spent)
    # The loop's own waves stop as well.
    rec2 = Recorder()
    options = RunOptions(budget_usd=one * 2.5, prices=PRICES)
    await run_graph(
        analysis_loop(cap=2, batch_size=2), items(20), sim=sim, options=options, recorder=rec2
    )
    assert len(dollars(rec2)) == 4  # the 3rd call crossed it; its batch partner was in flight
    assert [e.data["batch"] for e in rec2.of("loop.batch")] == [1, 2]


async def test_without_a_budget_or_prices_nothing_stops(sim: RunningSimulator) -> None:
    outcome, rec = await run_graph(
        analysis_loop(), items(12), sim=sim, options=RunOptions(budget_usd=0.0)
    )
    assert outcome.status == "succeeded" and not rec.of("run.budget")
    assert len(rec.of("item.finished")) == 12
