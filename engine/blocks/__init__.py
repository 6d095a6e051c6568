"""The block catalogue: one module per block type, one registration line each."""

from __future__ import annotations

from engine.blocks.agent import AgentBlock
from engine.blocks.base import BaseBlock
from engine.blocks.database import DatabaseBlock
from engine.blocks.http import HttpBlock
from engine.blocks.loop import LoopBlock
from engine.blocks.response import ResponseBlock
from engine.blocks.schedule import ScheduleBlock
from engine.blocks.slack import SlackBlock
from engine.blocks.transform import TransformBlock
from engine.blocks.webhook import WebhookBlock

REGISTRY: dict[str, BaseBlock] = {
    block.type: block
    for block in (
        WebhookBlock(),
        ScheduleBlock(),
        LoopBlock(),
        AgentBlock(),
        HttpBlock(),
        DatabaseBlock(),
        SlackBlock(),
        TransformBlock(),
        ResponseBlock(),
    )
}


def catalogue() -> list[dict[str, object]]:
    return [block.describe() for block in REGISTRY.values()]
