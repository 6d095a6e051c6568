"""Fixtures for block tests: the same headless simulator as the engine core's."""

from tests.engine.core.conftest import sim

__all__ = ["sim"]
