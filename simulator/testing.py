"""Start a simulator for a test or benchmark: in a daemon thread or as a subprocess."""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from .config import SimulatorConfig
from .control import SimulatorControl
from .server import build_app, start

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
_LISTENING = "simulator listening on "


class RunningSimulator:
    """A started simulator: `.base_url`, `.control`, `.stop()`; also a context manager."""

    def __init__(
        self,
        base_url: str,
        stopper: Callable[[], None],
        process: subprocess.Popen[str] | None = None,
    ) -> None:
        self.base_url = base_url
        self.port = int(base_url.rsplit(":", 1)[1])
        self.control = SimulatorControl(base_url)
        self.process = process
        self._stopper: Callable[[], None] | None = stopper

    def stop(self) -> None:
        stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_in_thread(host: str = "127.0.0.1", port: int = 0, **config: Any) -> RunningSimulator:
    """Serve on a private event loop in a daemon thread; returns once it is listening."""
    app = build_app(SimulatorConfig.from_dict(config))
    loop = asyncio.new_event_loop()
    ready: queue.Queue[tuple[Any, int] | BaseException] = queue.Queue()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            runner, bound = loop.run_until_complete(start(app, host, port))
        except BaseException as exc:  # surfaced to the caller below
            ready.put(exc)
            loop.close()
            return
        ready.put((runner, bound))
        try:
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="klyntos-simulator", daemon=True)
    thread.start()
    outcome = ready.get(timeout=10)
    if isinstance(outcome, BaseException):
        raise RuntimeError(f"simulator failed to start on {host}:{port}") from outcome
    _runner, bound = outcome

    def stopper() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    return RunningSimulator(f"http://{host}:{bound}", stopper)


def _cli_args(options: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if key in ("no_record",):
            if value:
                args.append(flag)
        elif key == "jitter_ms" and isinstance(value, list | tuple):
            args += [flag, f"{value[0]},{value[1]}"]
        elif value is not None:
            args += [flag, str(value)]
    return args


def run_in_process(
    port: int = 0, host: str = "127.0.0.1", timeout: float = 15.0, **options: Any
) -> RunningSimulator:
    """Spawn `python -m simulator` (options are CLI flags: latency_ms=5, no_record=True, ...)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    command = [
        sys.executable,
        "-m",
        "simulator",
        "--host",
        host,
        "--port",
        str(port),
        *_cli_args(options),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump(stream: IO[str]) -> None:
        # Keep draining stdout so the child can never block on a full pipe.
        for line in stream:
            lines.put(line)
        lines.put(None)

    assert process.stdout is not None
    threading.Thread(target=pump, args=(process.stdout,), daemon=True).start()

    def stopper() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    try:
        while True:
            line = lines.get(timeout=timeout)
            if line is None:
                raise RuntimeError(f"simulator exited with {process.wait()} before listening")
            if line.startswith(_LISTENING):
                base_url = line[len(_LISTENING) :].strip()
                return RunningSimulator(base_url, stopper, process)
    except BaseException:
        stopper()
        raise


def peak_concurrency(
    received: list[dict[str, Any]], group: Callable[[dict[str, Any]], Any] | None = None
) -> tuple[int, int, int]:
    """From recorded requests (`stats()["received"]`, ordered by their `start_seq`/`end_seq`):
    the most in flight at once, the most in flight within one group (`group(entry)`, e.g.
    a company's domain), and the most groups with a request in flight at once."""
    events = sorted(
        [(e["start_seq"], 1, e) for e in received] + [(e["end_seq"], -1, e) for e in received],
        key=lambda event: event[0],
    )
    in_flight, peak, peak_in_group, peak_groups = 0, 0, 0, 0
    groups: dict[Any, int] = {}
    for _, step, entry in events:
        in_flight += step
        peak = max(peak, in_flight)
        if group is None:
            continue
        key = group(entry)
        groups[key] = groups.get(key, 0) + step
        peak_in_group = max(peak_in_group, groups[key])
        if not groups[key]:
            del groups[key]
        peak_groups = max(peak_groups, len(groups))
    return peak, peak_in_group, peak_groups
