"""Stdlib-only client for the `/_sim/` control API.

Deliberately urllib + json: benchmarks and tests can use it without pulling in the HTTP
clients whose behaviour they are measuring.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


class SimulatorControlError(RuntimeError):
    """The control API answered with an error (e.g. a rejected config)."""


class SimulatorControl:
    def __init__(self, base_url: str, timeout: float = 10.0, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token = token

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={
                **({"Content-Type": "application/json"} if data is not None else {}),
                **({"X-Simulator-Token": self.token} if self.token else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise SimulatorControlError(f"{method} {path} → {exc.code}: {detail}") from exc

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/health")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/stats")

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/config")["config"]

    def reset(self, **config: Any) -> dict[str, Any]:
        """Clear stats, failures and holds; keyword args are applied as config afterwards."""
        return self._call("POST", "/_sim/reset", config)["config"]

    def configure(self, **config: Any) -> dict[str, Any]:
        return self._call("POST", "/_sim/config", config)["config"]

    def release(self, endpoint: str | None = None, match: dict[str, Any] | None = None) -> int:
        """Lift matching holds (all holds when both are None); returns requests woken."""
        body: dict[str, Any] = {}
        if endpoint is not None:
            body["endpoint"] = endpoint
        if match is not None:
            body["match"] = match
        return int(self._call("POST", "/_sim/release", body)["released"])

    def wait_for(
        self, predicate: Any, timeout: float = 5.0, interval: float = 0.01
    ) -> dict[str, Any]:
        """Poll stats until `predicate(stats)` is true; returns those stats (blocking)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"simulator stats never satisfied the predicate: {stats}")
            time.sleep(interval)
