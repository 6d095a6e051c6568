"""Bench (j)'s arithmetic: the k-th item to finish is shown at the first counter reading that
counts k items, and its delay is that reading's time minus the item's end."""

from __future__ import annotations

import pytest

from bench.editor_delay import BenchError, delays


def test_each_item_is_shown_at_the_first_reading_that_counts_it() -> None:
    # Counter readings [done, ms since the epoch]; items ended at 1.0, 1.1, 1.2 and 2.0 s.
    seen = [[0, 500.0], [2, 1300.0], [3, 1400.0], [4, 2250.0]]
    got = delays(seen, [1.2, 1.0, 2.0, 1.1])
    assert [round(d, 3) for d in got] == [0.3, 0.2, 0.2, 0.25]


def test_an_item_the_editor_never_counted_is_an_error() -> None:
    with pytest.raises(BenchError, match="never counted 2 items"):
        delays([[1, 1000.0]], [0.5, 0.6])
