"""The loop block's own checks name no block the workflow may not have."""

from __future__ import annotations

from engine.blocks import REGISTRY


def test_items_that_are_not_one_reference_say_how_to_pick_one() -> None:
    problems = REGISTRY["loop"].check({"items": "webhook.body.leads"})
    assert problems == [
        ("items", "items must be one reference to a list: type < to pick one in scope")
    ]
    assert REGISTRY["loop"].check({"items": "<hook_in.body.leads>"}) == []
