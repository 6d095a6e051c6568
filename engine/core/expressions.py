"""JMESPath, bounded: every value an expression produces is measured while it runs.

`@ | [@, @]` doubles what it is given at each repetition while costing almost nothing in
memory (the copies are shared), so the blow-up lands later, on whoever walks the result.
The interpreter here measures each intermediate value (sizes.SizeMeter: shared parts
count each time, each container measured once) and stops at the first one past the limit;
`join` is checked before it builds its string. Evaluation runs on a worker thread so the
event loop keeps serving while a large expression works, and stops when its step ends; those
threads are the expression pool's (expression_pool.py), shared fairly between owners.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jmespath
import jmespath.exceptions
from jmespath import functions
from jmespath.parser import ParsedResult
from jmespath.visitor import Options, TreeInterpreter

if TYPE_CHECKING:
    from jmespath.visitor import _TreeNode

from engine.core import expression_pool
from engine.core.errors import BlockError, SizeLimitError
from engine.core.providers import CURRENT_STEP
from engine.core.sizes import SizeMeter

# Longer expressions are refused by the blocks' config schemas; the parser recurses.
MAX_EXPRESSION_LENGTH = 4096


class ExpressionError(BlockError):
    """An expression that does not compile or fails on its data."""


class NamedExpressionFailed(BlockError):
    """One of several named expressions failed (`search_each`): which one, and why."""

    def __init__(self, name: str, error: BlockError) -> None:
        super().__init__(str(error))
        self.name = name
        self.error = error


def compile_expression(expression: str) -> ParsedResult:
    """Parse once; ExpressionError (naming the problem) for anything that is not JMESPath."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        raise ExpressionError(str(exc)) from None
    except RecursionError:
        raise ExpressionError("nested too deeply") from None


# Runs of whitespace (line breaks, tabs, the Unicode separators) and control characters.
_BREAKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


class _MeteredFunctions(functions.Functions):
    def __init__(self, meter: SizeMeter) -> None:
        super().__init__()
        self.meter = meter

    @functions.signature({"types": ["string"]}, {"types": ["array-string"]})
    def _func_join(self, separator: str, array: list[str]) -> str:
        # The one function whose result can outgrow its arguments many times over.
        size = sum(len(part) for part in array) + len(separator) * max(0, len(array) - 1)
        if size > self.meter.limit:
            raise SizeLimitError(self.meter.what, self.meter.limit)
        return separator.join(array)

    @functions.signature({"types": ["string"]})
    def _func_one_line(self, text: str) -> str:
        # Data put into a list of lines (a Slack report) must not start lines of its own: a
        # lead named "Bob\n• Alice …" would forge an entry. Each run of whitespace and control
        # characters becomes one space.
        return _BREAKS.sub(" ", text).strip()


class _MeteredInterpreter(TreeInterpreter):
    """Measures what the nodes that build values return (lists, objects, projections,
    function results); the others only return parts of values that exist already."""

    def __init__(self, meter: SizeMeter) -> None:
        super().__init__(Options(custom_functions=_MeteredFunctions(meter)))
        self.meter = meter

    def _checked(self, value: Any) -> Any:
        self.meter.check(value)
        return value

    def visit_function_expression(self, node: _TreeNode, value: Any) -> Any:
        return self._checked(super().visit_function_expression(node, value))

    def visit_filter_projection(self, node: _TreeNode, value: Any) -> Any:
        return self._checked(super().visit_filter_projection(node, value))

    def visit_flatten(self, node: _TreeNode, value: Any) -> Any:
        return self._checked(super().visit_flatten(node, value))

    def visit_slice(self, node: _TreeNode, value: Any) -> Any:
        return self._checked(super().visit_slice(node, value))

    def visit_literal(self, node: _TreeNode, value: Any) -> Any:
        return self._checked(super().visit_literal(node, value))

    def visit_multi_select_dict(self, node: _TreeNode, value: Any) -> Any:
        return self._checked(super().visit_multi_select_dict(node, value))

    def visit_multi_select_list(self, node: _TreeNode, value: Any) -> Any:
        return self._checked(super().visit_multi_select_list(node, value))

    def visit_projection(self, node: _TreeNode, value: Any) -> Any:
        return self._checked(super().visit_projection(node, value))

    def visit_value_projection(self, node: _TreeNode, value: Any) -> Any:
        return self._checked(super().visit_value_projection(node, value))


def search(
    expression: str | ParsedResult,
    data: Any,
    *,
    max_bytes: int,
    what: str = "the expression's result",
    cancel: threading.Event | None = None,
    sizes: SizeMeter | None = None,
) -> Any:
    """Evaluate with every produced value bounded by `max_bytes` (as JSON).

    Raises SizeLimitError past it, ExpressionError when the expression fails on the data.
    The result's size is handed to `sizes` (the run's output meter) when given.
    """
    parsed = compile_expression(expression) if isinstance(expression, str) else expression
    meter = SizeMeter(max_bytes, what, cancel)
    try:
        result = _MeteredInterpreter(meter).visit(parsed.parsed, data)
    except (jmespath.exceptions.JMESPathError, TypeError, ValueError) as exc:
        raise ExpressionError(str(exc)) from None
    except RecursionError:
        raise ExpressionError("nested too deeply") from None
    size = meter.check(result)  # a plain field access returns a part nobody measured yet
    if sizes is not None:
        sizes.remember(result, size)
    return result


async def search_async(
    expression: str | ParsedResult,
    data: Any,
    *,
    max_bytes: int,
    what: str = "the expression's result",
    sizes: SizeMeter | None = None,
) -> Any:
    """`search` on a worker thread; when the awaiting step is cancelled (its timeout, the
    run's cancel) the evaluation stops at its next value instead of running on."""
    return await _on_thread_until_cancelled(
        search, expression, data, max_bytes=max_bytes, what=what, sizes=sizes
    )


async def _on_thread_until_cancelled(evaluate: Any, *args: Any, **kwargs: Any) -> Any:
    """`evaluate(*args, **kwargs, cancel=...)` on a worker thread; the cancel event is set
    when the awaiting step ends, so the evaluation stops at its next value."""
    cancel = threading.Event()
    # On the expression threads, as the run's owner (expression_pool.py), never on the
    # loop's default executor, which the database calls need. A cancel of the awaiting step
    # cancels the queued evaluation too: it never runs.
    future = expression_pool.POOL.submit(_owner(), evaluate, *args, cancel=cancel, **kwargs)
    try:
        return await asyncio.wrap_future(future)
    finally:
        cancel.set()


# The owner of the run being executed (the executor sets it as a run starts): what a loop's
# aggregations, which run outside any one step's attempt, count for.
EXPRESSION_OWNER: contextvars.ContextVar[str] = contextvars.ContextVar(
    "expression_owner", default=""
)


def _owner() -> str:
    """The owner of the run whose step evaluates ('' outside any run: one group)."""
    step = CURRENT_STEP.get()
    if step is not None and step.share.owner.owner:
        return step.share.owner.owner
    return EXPRESSION_OWNER.get()


def search_each(
    expressions: Mapping[str, str | ParsedResult],
    data: dict[str, Any],
    *,
    max_bytes: int,
    what: str = "its result",
    cancel: threading.Event | None = None,
    sizes: SizeMeter | None = None,
) -> None:
    """`search` each expression in order, each result stored in `data` under its name, so a
    later expression can read an earlier one's (a loop's aggregations). The first failure
    raises NamedExpressionFailed naming its expression; those before it are kept."""
    for name, expression in expressions.items():
        try:
            data[name] = search(
                expression, data, max_bytes=max_bytes, what=what, cancel=cancel, sizes=sizes
            )
        except BlockError as exc:
            raise NamedExpressionFailed(name, exc) from None


async def search_each_async(
    expressions: Mapping[str, str | ParsedResult],
    data: dict[str, Any],
    *,
    max_bytes: int,
    what: str = "its result",
    sizes: SizeMeter | None = None,
) -> None:
    """`search_each` in one worker-thread hop for them all (one hop each made a loop's end
    wait for five round trips through the thread pool before its next block started);
    stopped at the next value when the awaiting step is cancelled, as `search_async`."""
    await _on_thread_until_cancelled(
        search_each, expressions, data, max_bytes=max_bytes, what=what, sizes=sizes
    )
