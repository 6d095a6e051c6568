"""The run_workflow command runs real runs: the engine tests' simulator (40 ms, every provider
host routed to it) and an owner holding the template's secrets."""

from tests.engine.conftest import owner, simulator

__all__ = ["owner", "simulator"]
