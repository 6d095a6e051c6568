"""Runs as jobs (KLYNTOS_EXECUTOR=workers): starting a run defers a `klyntos.run` job in the
transaction that creates the Run row (engine/submit.py), and `manage.py worker` processes on
any machine execute them. A job hands its run to the worker's in-process executor, so a run
executes exactly as it does inline: it claims its lease first (engine/leases.py), and a
worker that dies leaves a lease that runs out and a job that stalls — another worker resumes
the run from its rows, and retries the stalled job (which then finds the run held or ended).
"""

from __future__ import annotations

import asyncio

from procrastinate.contrib.django import app

QUEUE = "klyntos-runs"
# A worker whose last heartbeat is older than this is taken for dead: its jobs are retried,
# and it is not counted among the live workers a loop's chunks are sized for.
STALLED_SECONDS = 30
RUN_TASK = "klyntos.run"


@app.task(name=RUN_TASK, queue=QUEUE)
async def run_job(run_id: str) -> None:
    from engine.runner import executor

    await asyncio.wrap_future(executor.submit(run_id))


# Chunks of a distributed loop (engine/distribute.py) have a queue of their own, taken by a
# worker's own share of job slots: a coordinator waiting for its chunks never holds the slot
# a chunk needs.
CHUNK_QUEUE = "klyntos-chunks"
CHUNK_TASK = "klyntos.loop_chunk"


# A worker process serves each queue with a Procrastinate worker of its own (its own
# heartbeat row): engine/management/commands/worker.py.
WORKER_QUEUES = (QUEUE, CHUNK_QUEUE)


@app.task(name=CHUNK_TASK, queue=CHUNK_QUEUE)
async def chunk_job(chunk_id: int) -> None:
    from engine.runner import executor

    await asyncio.wrap_future(executor.submit_chunk(chunk_id))
