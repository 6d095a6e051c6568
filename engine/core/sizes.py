"""How big a value is once written out as JSON, measured without writing it.

A value built by an expression can share parts (`[@, @]` holds the same list twice): in
memory it is small, but every consumer that walks it (redaction, JSON encoding, the rows)
pays for each copy. So sizes count shared parts each time they appear, and each container
is measured once (memoised by identity), which keeps measuring linear in what was built.
"""

from __future__ import annotations

import threading
from typing import Any

from engine.core.errors import BlockError, SizeLimitError

DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024
# What a block output past KLYNTOS_MAX_OUTPUT_BYTES is called in its error ("the block's
# output is larger than … bytes"): the executor's meter and the data connection's reading.
BLOCK_OUTPUT = "the block's output"


class Cancelled(BlockError):
    """The evaluation was abandoned (its step timed out or was cancelled)."""


def text_bytes(text: str) -> int:
    """A string's UTF-8 length (lone surrogates, which JSON input may carry, as 3 bytes)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def readable_bytes(size: int) -> str:
    """A byte count as people read it in an error: 5.2 MB, 40 KB, 512 bytes (decimal)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} byte" if size == 1 else f"{size} bytes"


def _scalar_size(value: Any) -> int:
    kind = type(value)
    if kind is str:
        return (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))) + 2
    if kind is int:
        digits: int = value.bit_length() * 3 // 10
        return digits + 2  # decimal digits, roughly, plus a sign
    if kind is bool:
        return 4 if value else 5
    if value is None:
        return 4
    if kind is float:
        return 24
    if isinstance(value, str):
        return _scalar_size(str(value))
    if isinstance(value, int):
        return _scalar_size(int(value))
    return 16  # anything else (an expression reference) writes out short or not at all


class SizeMeter:
    """Measures values against `limit` bytes; raises SizeLimitError naming `what`.

    Containers it has measured are remembered (with a reference, so their identity stays
    theirs) for as long as the meter lives: share one per evaluation, or per run.
    """

    def __init__(
        self, limit: int, what: str = "the output", cancel: threading.Event | None = None
    ) -> None:
        self.limit = limit
        self.what = what
        self.cancel = cancel
        # id → size, and the measured containers kept alive so no id is reused meanwhile.
        # Plain ints and one list: a tuple per entry would be garbage-collector work (a
        # full collection holds the GIL, and the event loop with it).
        self._sizes: dict[int, int] = {}
        self._kept: list[Any] = []

    def check(self, value: Any) -> int:
        """The value's JSON size; SizeLimitError when it is past the limit."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("stopped: the step ended")
        size = self.measure(value)
        if size > self.limit:
            raise SizeLimitError(self.what, self.limit)
        return size

    def remember(self, value: Any, size: int) -> None:
        """Take another meter's measure of `value` (an expression's result, measured on
        its worker thread), so measuring the output that holds it costs nothing more."""
        if isinstance(value, dict | list):
            self._sizes[id(value)] = size
            self._kept.append(value)

    def measure(self, value: Any) -> int:
        kind = type(value)
        if kind is not dict and kind is not list and not isinstance(value, dict | list):
            return _scalar_size(value)
        known = self._sizes.get(id(value))
        if known is not None:
            return known
        try:
            return self._size(value, 0)
        except _TooDeep:
            return self._size_iteratively(value)

    def _size(self, value: dict[Any, Any] | list[Any], depth: int) -> int:
        """Recursive (fast) measure; containers holding containers are remembered, those
        holding only scalars are cheap to measure again and are not (fewer objects kept)."""
        if depth > _RECURSION_DEPTH:
            raise _TooDeep
        sizes = self._sizes
        scalar = _scalar_size
        total = 1 + len(value) if value else 2
        parts: Any = value
        if type(value) is dict or isinstance(value, dict):
            for key in value:
                total += scalar(key if type(key) is str else str(key)) + 1
            parts = value.values()
        nested = False
        for part in parts:
            kind = type(part)
            # The common scalars inline: this loop is the meter's whole cost.
            if kind is str and part.isascii():
                total += len(part) + 2
            elif kind is int and -(10**15) < part < 10**15:
                total += 4 if -1000 < part < 10000 else 17  # an upper bound on its digits
            elif kind is dict or kind is list or isinstance(part, dict | list):
                nested = True
                known = sizes.get(id(part))
                total += known if known is not None else self._size(part, depth + 1)
                if total > self.limit:
                    raise SizeLimitError(self.what, self.limit)
            else:
                total += scalar(part)
        if total > self.limit:
            raise SizeLimitError(self.what, self.limit)
        if nested:
            sizes[id(value)] = total
            self._kept.append(value)
        return total

    def _size_iteratively(self, value: dict[Any, Any] | list[Any]) -> int:
        """The same measure without recursion, for values nested deeper than Python's
        stack allows (expressions can nest them)."""
        stack: list[Any] = [value]
        done: set[int] = set()
        open_: set[int] = set()
        while stack:
            current = stack[-1]
            if id(current) in self._sizes:
                stack.pop()
                continue
            parts = list(current.values() if isinstance(current, dict) else current)
            if id(current) not in open_:
                open_.add(id(current))
                for part in parts:
                    if isinstance(part, dict | list) and id(part) not in self._sizes:
                        if id(part) in open_:
                            raise BlockError("the value contains itself")
                        stack.append(part)
                continue
            stack.pop()
            done.add(id(current))
            total = 2 + max(0, len(current) - 1)
            if isinstance(current, dict):
                total += sum(_scalar_size(str(key)) + 1 for key in current)
            for part in parts:
                total += (
                    self._sizes[id(part)] if isinstance(part, dict | list) else _scalar_size(part)
                )
            if total > self.limit:
                raise SizeLimitError(self.what, self.limit)
            self._sizes[id(current)] = total
            self._kept.append(current)
        return self._sizes[id(value)]


class _TooDeep(Exception):
    pass


# Python's default recursion limit is 1,000 frames; leave room for the caller's.
_RECURSION_DEPTH = 400
