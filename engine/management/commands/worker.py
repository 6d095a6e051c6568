"""`manage.py worker [--concurrency N]`: executes runs deferred as jobs (KLYNTOS_EXECUTOR=workers).

One process: the Procrastinate worker takes `klyntos.run` jobs (at most N at a time) and
hands each run to this process's in-process executor; a look-out, every
KLYNTOS_RUN_RESUME_POLL_SECONDS, resumes runs whose executor died (their lease ran out) and
retries the jobs of workers that stopped sending heartbeats. SIGTERM or Ctrl-C is a graceful
stop: no new job, no new item; the items in flight finish (KLYNTOS_DRAIN_SECONDS); every
run stores what it did and gives its lease back, and another worker (or this one, restarted)
resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from engine.startup_checks import NotReady, ensure_ready

log = logging.getLogger("klyntos.worker")


class Command(BaseCommand):
    help = "Execute runs from the job queue (KLYNTOS_EXECUTOR=workers), until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency",
            type=int,
            default=10,
            help="runs coordinated, chunks taken and loop items run at once (default 10)",
        )
        parser.add_argument("--name", default="", help="the worker's name (default host:pid)")

    def handle(self, *args: Any, concurrency: int, name: str, **options: Any) -> None:
        if not settings.ON_POSTGRESQL:
            raise CommandError("workers need PostgreSQL: set DATABASE_URL=postgres://…")
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        try:
            ensure_ready()
        except NotReady as exc:
            raise CommandError(str(exc)) from None
        name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.stdout.write(
            f"worker {name}: executing {concurrency} runs and {concurrency} loop items at a time"
            f" ({chunk_slots(concurrency)} chunks of loops; Ctrl-C stops)"
        )
        self.stdout.flush()
        asyncio.run(serve(name, concurrency))
        self.stdout.write(f"worker {name}: stopped")


async def serve(name: str, concurrency: int) -> None:
    from procrastinate.contrib.django import app

    from engine.jobs import CHUNK_QUEUE, QUEUE, STALLED_SECONDS, WORKER_QUEUES
    from engine.runner import executor

    executor.serve_as_worker(concurrency)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # Listen/notify needs a connection of its own, not Django's (RECIPES.md).
    with app.replace_connector(app.connector.get_worker_connector()):  # type: ignore[attr-defined]
        async with app.open_async():
            # Runs and chunks take separate job slots: a run waiting for its loop's chunks
            # never holds the slot one of them needs. One Procrastinate worker per queue of
            # WORKER_QUEUES (`chunks.live_workers` counts on it).
            served = {
                QUEUE: (name, concurrency),
                CHUNK_QUEUE: (f"{name}/chunks", chunk_slots(concurrency)),
            }
            workers = [
                asyncio.create_task(
                    app.run_worker_async(
                        queues=[queue],
                        name=served[queue][0],
                        concurrency=served[queue][1],
                        install_signal_handlers=False,
                        delete_jobs="successful",  # finished jobs are pruned
                        stalled_worker_timeout=STALLED_SECONDS,
                        listen_notify=True,
                        fetch_job_polling_interval=settings.KLYNTOS_WORKER_JOB_POLL_SECONDS,
                    )
                )
                for queue in WORKER_QUEUES
            ]
            look_out = asyncio.create_task(keep_looking(app, stopping))
            await stopping.wait()
            log.warning("stopping: letting the items in flight finish")
            # Interrupt every run (no new item), let them store and give back their leases.
            left = await asyncio.to_thread(executor.stop, settings.KLYNTOS_DRAIN_SECONDS)
            if left:
                log.warning("%d run(s) stopped before their items in flight finished", left)
            await asyncio.to_thread(executor.close_slots)
            look_out.cancel()
            for task in workers:
                task.cancel()
            for task in (look_out, *workers):
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def chunk_slots(concurrency: int) -> int:
    """Chunks taken at once: enough to keep `concurrency` items in flight (a chunk runs many
    items at once) and two more, claimed ahead: the worker's items go to its oldest chunk
    first (`RankedGate`), so while one chunk's items run the next is claimed and loaded and
    the one before stores its last rows, instead of every chunk starting, draining and
    closing together. No more than that: each chunk writes on a connection of its own."""
    return max(3, math.ceil(concurrency / settings.KLYNTOS_LOOP_CHUNK_SIZE) + 2)


async def keep_looking(app: Any, stopping: asyncio.Event) -> None:
    from engine.db_calls import db_call
    from engine.jobs import STALLED_SECONDS
    from engine.resumer import resume_interrupted

    poll = settings.KLYNTOS_RUN_RESUME_POLL_SECONDS
    while not stopping.is_set():
        try:
            await db_call(resume_interrupted)
            for job in await app.job_manager.get_stalled_jobs(
                seconds_since_heartbeat=STALLED_SECONDS
            ):
                log.warning("retrying job %s of a worker that stopped answering", job.id)
                await app.job_manager.retry_job(job)
        except Exception:  # a database hiccup must not end the look-out
            log.exception("the look for interrupted runs failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), poll)
