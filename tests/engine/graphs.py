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


LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"


def lookup_burst_graph(**loop_config: Any) -> dict[str, Any]:
    """`burst_graph` whose loop body calls (simulated) Clearbit for each item."""
    graph = burst_graph()
    graph["blocks"][1]["config"].update(loop_config)
    graph["blocks"][2] = {
        "id": "fetch",
        "type": "http",
        "name": "fetch",
        "parent": "loop",
        "config": {"url": LOOKUP, "headers": {"Authorization": "Bearer <env.CLEARBIT_API_KEY>"}},
    }
    return graph
