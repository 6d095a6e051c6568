"""Small workflow graphs shared by the Django-level engine tests."""

from __future__ import annotations

from typing import Any


def burst_graph() -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {
                "id": "loop",
                "type": "loop",
                "name": "loop",
                "config": {"items": "<webhook.body.items>", "max_concurrent": 50},
            },
            {
                "id": "square",
                "type": "transform",
                "name": "square",
                "parent": "loop",
                "config": {"input": {"v": "<item.v>"}, "expression": "v"},
            },
        ],
        "edges": [{"source": "webhook", "target": "loop"}],
    }
