import asyncio
import threading
import time
from typing import Any

import pytest

from engine.core import expressions
from engine.core.errors import SizeLimitError
from engine.core.expressions import (
    ExpressionError,
    NamedExpressionFailed,
    compile_expression,
    search,
    search_async,
    search_each_async,
)


def test_results_match_plain_jmespath() -> None:
    data = {"results": [{"s": 1, "n": "a"}, {"s": 3, "n": "b"}, {"s": 2, "n": "c"}]}
    expression = "reverse(sort_by(results, &s))[:2].{name: n, score: s}"
    assert search(expression, data, max_bytes=10_000) == [
        {"name": "b", "score": 3},
        {"name": "c", "score": 2},
    ]
    assert search("join(', ', results[*].n)", data, max_bytes=10_000) == "a, b, c"
    assert search("missing.field", data, max_bytes=10_000) is None


def test_every_intermediate_value_is_bounded() -> None:
    with pytest.raises(SizeLimitError, match="larger than 1000 bytes"):
        search("@" + " | [@, @]" * 10, "0123456789", max_bytes=1000)
    # The same expression is fine on data it keeps under the limit.
    assert search("@" + " | [@, @]" * 3, "x", max_bytes=1000) is not None


def test_join_is_bounded_by_the_string_it_would_build() -> None:
    # The list is 800 bytes; the text it would join into is 2,190.
    with pytest.raises(SizeLimitError):
        search("join('----------', @)", ["a"] * 200, max_bytes=1000)
    assert search("join('-', @)", ["a"] * 200, max_bytes=1000) == "-".join(["a"] * 200)


def test_one_line_keeps_a_value_on_one_line() -> None:
    data = {"name": "Bob\r\n• Alice\t(A1)\u2028x\x00y  z ", "n": 3}
    assert search("one_line(name)", data, max_bytes=1000) == "Bob • Alice (A1) x y z"
    assert search("one_line(to_string(n))", data, max_bytes=1000) == "3"
    with pytest.raises(ExpressionError):  # text only, as JMESPath's own string functions
        search("one_line(n)", data, max_bytes=1000)


def test_bad_expressions_and_bad_data_are_expression_errors() -> None:
    with pytest.raises(ExpressionError):
        compile_expression("results[")
    with pytest.raises(ExpressionError, match="longer than 4096"):
        compile_expression("a" * 5000)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression("[" * 2000 + "]" * 2000)
    with pytest.raises(ExpressionError):
        search("sum(@)", ["a", "b"], max_bytes=1000)


async def test_the_evaluation_stops_when_its_step_is_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stopped = threading.Event()
    real_search = expressions.search

    def slow_search(*args: Any, **kwargs: Any) -> Any:
        cancel = kwargs["cancel"]
        try:
            while True:  # an expression that keeps producing values
                real_search("@", [1], max_bytes=100, cancel=cancel)
                time.sleep(0.001)
        finally:
            stopped.set()

    monkeypatch.setattr(expressions, "search", slow_search)
    task = asyncio.ensure_future(search_async("@", [1], max_bytes=100))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(stopped.wait, 5)


async def test_named_expressions_run_in_one_hop_and_read_the_ones_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One hop to the expression threads for them all (engine/core/expression_pool.py).
    from engine.core import expression_pool

    thread_hops: list[object] = []
    submit = expression_pool.POOL.submit

    def recording(owner: str, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        thread_hops.append(fn)
        return submit(owner, fn, *args, **kwargs)

    monkeypatch.setattr(expression_pool.POOL, "submit", recording)
    data: dict[str, Any] = {"results": [{"score": 3}, {"score": 9}, {"score": 5}]}
    expressions = {
        "best": "max_by(results, &score).score",
        "count": "length(results)",
        "summary": "join(' of ', [to_string(best), to_string(count)])",  # reads both above
    }
    await search_each_async(expressions, data, max_bytes=10_000)
    assert (data["best"], data["count"], data["summary"]) == (9, 3, "9 of 3")
    assert len(thread_hops) == 1


async def test_the_first_named_expression_that_fails_is_named_and_those_before_kept() -> None:
    data: dict[str, Any] = {"results": [1, 2]}
    expressions = {"total": "sum(results)", "broken": "sum(@)", "never": "length(results)"}
    with pytest.raises(NamedExpressionFailed) as failed:
        await search_each_async(expressions, data, max_bytes=10_000)
    assert failed.value.name == "broken"
    assert isinstance(failed.value.error, ExpressionError)
    assert data["total"] == 3 and "never" not in data
    with pytest.raises(
        NamedExpressionFailed, match="its result is larger than 50 bytes"
    ) as too_big:
        await search_each_async({"big": "results"}, {"results": ["x" * 100]}, max_bytes=50)
    assert too_big.value.name == "big"
