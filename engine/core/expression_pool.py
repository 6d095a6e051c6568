"""The threads expressions evaluate on, shared fairly between owners.

A transform or a loop's aggregations can keep a thread busy for minutes (JMESPath over a
large list). On the event loop's default executor — which also serves the database calls
(`sync_to_async`) and the data pools' `prepare` — one owner's heavy loop took every thread,
and every other owner's runs waited behind it. Here expressions get their own threads
(`threads`, KLYNTOS_EXPRESSION_THREADS), and one owner holds at most `owner_threads` of them
at once (KLYNTOS_EXPRESSION_OWNER_THREADS, default half, at least 1): their further
evaluations queue, in order, behind their own, while other owners' take the threads left.
Owners with queued work are served in turn (round robin), one evaluation each.

A queued evaluation whose caller stopped waiting (its step's timeout, the run's cancel) is
dropped: its future is cancelled, its data released at once, and no thread ever runs it.

What it does not do: CPU-bound evaluations of several owners still share one interpreter
lock, so each runs in slices of it; an owner gets its thread, not a core.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

DEFAULT_THREADS = 4


def default_owner_threads(threads: int) -> int:
    return max(1, threads // 2)


class _Job:
    __slots__ = ("future", "call")

    def __init__(self, future: Future[Any], call: Callable[[], Any] | None) -> None:
        self.future = future
        self.call = call


class ExpressionPool:
    """`threads` threads (started on first use, daemons: an evaluation never holds up the
    process's exit); at most `owner_threads` of them busy for one owner at a time.

    The lock guards bookkeeping only (a few list operations), never an evaluation."""

    def __init__(self, threads: int = DEFAULT_THREADS, owner_threads: int | None = None) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._queues: dict[str, deque[_Job]] = {}  # owners with queued work, in turn order
        self._running: dict[str, int] = {}
        self._workers: list[threading.Thread] = []
        self.threads = 0
        self.owner_threads = 0
        self.configure(threads, owner_threads)

    def configure(self, threads: int, owner_threads: int | None = None) -> None:
        """Resize (more threads start as needed; extra ones end once idle)."""
        if threads < 1:
            raise ValueError("KLYNTOS_EXPRESSION_THREADS must be at least 1")
        share = default_owner_threads(threads) if owner_threads is None else owner_threads
        if not 1 <= share <= threads:
            raise ValueError(
                "KLYNTOS_EXPRESSION_OWNER_THREADS must be from 1 to KLYNTOS_EXPRESSION_THREADS"
            )
        with self._lock:
            self.threads, self.owner_threads = threads, share
            self._lock.notify_all()

    def submit(
        self, owner: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Run `fn(*args, **kwargs)` on one of the threads as `owner`'s evaluation."""
        future: Future[Any] = Future()
        job = _Job(future, lambda: fn(*args, **kwargs))
        future.add_done_callback(lambda done: _drop_if_cancelled(job, done))
        with self._lock:
            queue = self._queues.get(owner)
            if queue is None:
                queue = self._queues[owner] = deque()
            queue.append(job)
            if len(self._workers) < self.threads:
                worker = threading.Thread(
                    target=self._work, name=f"expression-{len(self._workers)}", daemon=True
                )
                self._workers.append(worker)
                worker.start()
            self._lock.notify()
        return future

    def running(self, owner: str) -> int:
        with self._lock:
            return self._running.get(owner, 0)

    def _next(self) -> tuple[str, _Job] | None:
        """The next job to run (lock held): the first owner in turn under their share."""
        for owner in list(self._queues):
            if self._running.get(owner, 0) >= self.owner_threads:
                continue
            queue = self._queues.pop(owner)  # re-added at the end: its turn is over
            job = None
            while queue:
                candidate = queue.popleft()
                if candidate.future.set_running_or_notify_cancel():
                    job = candidate
                    break
            if queue:
                self._queues[owner] = queue
            if job is not None:
                self._running[owner] = self._running.get(owner, 0) + 1
                return owner, job
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                while True:
                    if sum(self._running.values()) >= self.threads:
                        picked = None  # shrunk: this one waits (or ends) until under the size
                    else:
                        picked = self._next()
                    if picked is not None:
                        break
                    idle = not self._lock.wait(timeout=IDLE_SECONDS) and not self._queues
                    if idle or len(self._workers) > self.threads:
                        self._workers.remove(threading.current_thread())
                        return  # idle, or the pool shrank: the next submit starts another
            owner, job = picked
            call, job.call = job.call, None
            try:
                result = call() if call is not None else None  # None: dropped (cannot be)
            except BaseException as exc:  # handed to the awaiting step
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)
            finally:
                del call
                with self._lock:
                    left = self._running[owner] - 1
                    if left:
                        self._running[owner] = left
                    else:
                        del self._running[owner]
                    self._lock.notify_all()


# A thread with nothing to run for this long ends.
IDLE_SECONDS = 60.0


def _drop_if_cancelled(job: _Job, done: Future[Any]) -> None:
    if done.cancelled():
        job.call = None  # its data is released now; the thread that pops it skips it


# The process's pool: every event loop's evaluations (`engine/config.py` sizes it from the
# settings when it builds a run's services).
POOL = ExpressionPool()
