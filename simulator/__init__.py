"""Klyntos provider simulator: deterministic OpenAI, Clearbit, LinkedIn and Slack over HTTP.

Run it with `python -m simulator`; in tests use `simulator.testing.run_in_thread`, and
recompute expected answers with the pure functions in `simulator.answers`.
"""

from .config import SimulatorConfig

__all__ = ["SimulatorConfig"]
