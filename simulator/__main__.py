"""`python -m simulator`: run the provider simulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from .config import SimulatorConfig
from .server import build_app, start


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="fixed latency per request")
    parser.add_argument("--jitter-ms", default=None, metavar="LO,HI", help="uniform latency range")
    parser.add_argument("--seed", type=int, default=None, help="seed for the jitter RNG")
    parser.add_argument(
        "--no-record", action="store_true", help="keep counts and peaks, not request bodies"
    )
    parser.add_argument(
        "--control-token",
        default=os.environ.get("KLYNTOS_SIMULATOR_TOKEN") or None,
        help="require this X-Simulator-Token on /_sim/ control calls (default: $KLYNTOS_SIMULATOR_TOKEN)",
    )
    parser.add_argument(
        "--exit-with",
        type=int,
        default=None,
        metavar="PID",
        help="stop once process PID is gone (the launcher: a kill -9 of it leaves none behind)",
    )
    return parser.parse_args(argv)


# How often a simulator started with --exit-with looks for its launcher.
PARENT_CHECK_SECONDS = 0.5


async def _until_gone(pid: int, stop: asyncio.Event) -> None:
    """Sets `stop` once `pid` no longer runs (or is no longer our parent: it was reaped)."""
    while not stop.is_set():
        if os.getppid() != pid:  # re-parented: the launcher died without stopping us
            stop.set()
            return
        await asyncio.sleep(PARENT_CHECK_SECONDS)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    data: dict[str, Any] = {"latency_ms": args.latency_ms, "seed": args.seed}
    data["record"] = not args.no_record
    if args.jitter_ms:
        data["jitter_ms"] = args.jitter_ms.split(",")
    return SimulatorConfig.from_dict(data)


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.ensure_future(_until_gone(args.exit_with, stop)) if args.exit_with else None
    app = build_app(config_from_args(args), control_token=args.control_token)
    runner, port = await start(app, args.host, args.port)
    # Exactly one line, printed only once connections are accepted: launchers wait for it.
    print(f"simulator listening on http://{args.host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config_from_args(args)
    except ValueError as exc:  # ConfigError or an unparsable --jitter-ms
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
