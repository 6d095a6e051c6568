import json
import threading
from typing import Any

import pytest

from engine.core.errors import BlockError, SizeLimitError
from engine.core.sizes import Cancelled, SizeMeter


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        "",
        "plain",
        [],
        {},
        ["a", None, [True, False], {"k": "v"}],
        {"outer": {"inner": ["x", "y"], "flag": None}, "list": [[], {}]},
    ],
)
def test_sizes_are_the_compact_json_length(value: Any) -> None:
    assert SizeMeter(10**9).measure(value) == len(json.dumps(value, separators=(",", ":")))


def test_non_ascii_text_counts_its_utf8_bytes() -> None:
    assert SizeMeter(100).measure("é€😀") == 2 + 2 + 3 + 4


def test_shared_parts_count_each_time_and_are_measured_once() -> None:
    part = ["x" * 10]
    doubled: Any = part
    for _ in range(30):
        doubled = [doubled, doubled]
    meter = SizeMeter(10**12)
    size = meter.measure(doubled)
    assert size > 2**30 * 14  # every copy counted...
    assert len(meter._sizes) == 30  # ...each container measured once (not the leaf)


def test_past_the_limit_raises_naming_the_setting() -> None:
    with pytest.raises(
        SizeLimitError, match=r"the output is larger than 10 bytes \(KLYNTOS_MAX_OUTPUT_BYTES\)"
    ):
        SizeMeter(10, "the output").check(["0123456789"])
    deep: Any = []
    for _ in range(100_000):  # deeper than Python recursion: measured without it
        deep = [deep]
    assert SizeMeter(10**9).check(deep) == 200_002


def test_a_value_containing_itself_is_an_error_not_a_hang() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(BlockError, match="contains itself"):
        SizeMeter(100).measure(loop)


def test_a_set_cancel_event_stops_the_next_check() -> None:
    cancel = threading.Event()
    meter = SizeMeter(100, cancel=cancel)
    meter.check("ok")
    cancel.set()
    with pytest.raises(Cancelled):
        meter.check("ok")
