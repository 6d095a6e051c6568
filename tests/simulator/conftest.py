"""One in-thread simulator for the whole folder, reset to defaults before every test."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from simulator.testing import RunningSimulator, run_in_thread

_LEAD_SCHEMA = {
    "type": "object",
    "properties": {
        "qualification_score": {"type": "integer", "minimum": 1, "maximum": 10},
        "tier": {"type": "string", "enum": ["hot", "warm", "cold"]},
        "summary": {"type": "string"},
        "is_b2b": {"type": "boolean"},
        "fit": {"type": "number", "minimum": 0, "maximum": 1},
        "talking_points": {"type": "array", "items": {"type": "string"}},
        "contact": {
            "type": "object",
            "properties": {
                "role": {"type": "string"},
                "seniority": {"type": "integer", "minimum": 0, "maximum": 5},
            },
            "required": ["role", "seniority"],
            "additionalProperties": False,
        },
    },
    "required": [
        "qualification_score",
        "tier",
        "summary",
        "is_b2b",
        "fit",
        "talking_points",
        "contact",
    ],
    "additionalProperties": False,
}


DEFAULTS = {"latency_ms": 0, "jitter_ms": None, "seed": None, "record": True}


@pytest.fixture(scope="session")
def sim() -> Iterator[RunningSimulator]:
    with run_in_thread() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_simulator(sim: RunningSimulator) -> None:
    sim.control.reset(**DEFAULTS)


@pytest.fixture
def lead_schema() -> dict:
    """The shape of the lead-qualification answer the template asks OpenAI for."""
    return copy.deepcopy(_LEAD_SCHEMA)
