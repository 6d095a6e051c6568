"""(w) Runs on workers (issue 8): what the queue costs, how a run scales over workers, and
how many database statements an item takes.

- **queue**: one run of N items at zero latency, executed inline (the in-process executor,
  as `make run`) and then by one `manage.py worker` (the run deferred as a job, its loop
  spread in chunks); items/s of the worker over items/s inline (target ≥ 0.8).
- **scale**: 2,000 items at L = 1 s under a loop cap of 100, one worker with
  `--concurrency 50` against two (target ≥ 1.85×: the second worker doubles what the
  cluster takes on, and the cap lets it).
- **statements**: database statements per item, counted at the client (every psycopg cursor
  of the processes involved: the web side that starts the run and the worker), inline and
  on a worker, while the queue run executes.
- alongside the queue run, what the machine's load does not move as much as wall time: the
  CPU seconds of each thread (the inline driver's, the worker's; `cpu_ratio` is inline's
  process CPU over the worker's), the worker's statements by kind, and each run's timeline
  (started, first item, last item, ended). `BENCH_W_PROFILE="py-spy record … -o OUT"`
  attaches that profiler to each worker (OUT-0, …).
- **big**: one loop of 10,000 items on one worker at zero latency (100 chunks): its wall
  time, the coordinator's tail once the last item ended (the poll, reading the items'
  stored steps back a slice at a time and composing, the run's end) and the worker's memory
  (resident before, peak after).

Everything runs on fresh PostgreSQL databases against the simulator in its own process. The
workers are this module too (`--serve`): `manage.py worker`'s `serve` with statement
counting, reported on SIGUSR1 (so idle polling before and after the run is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.databases import fresh_databases
from bench.harness import BENCH_HOST, REPO, BenchError, one_get_loop_graph, simulator

TARGETS = {"queue_ratio": 0.8, "scale_ratio": 1.85}
CAP = 100
SCALE_ITEMS = 2_000
BIG_ITEMS = 10_000
SCALE_LATENCY_MS = 1_000
WORKER_CONCURRENCY = 50
TIMEOUT = 900.0

# --- statement counting (this module's processes only) -----------------------------------

_counted = 0
_by_thread: Counter[str] = Counter()
_by_kind: Counter[str] = Counter()  # by the statement's first words
_quiet = threading.local()  # set on a thread whose statements are the bench's own


def count_statements() -> None:
    """Count every statement psycopg sends from this process (sync and async cursors)."""
    import psycopg

    def wrap(cls: Any, name: str) -> None:
        original = getattr(cls, name)
        if asyncio.iscoroutinefunction(original):

            async def counted_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                _tally(name, args)
                return await original(self, *args, **kwargs)

            setattr(cls, name, counted_async)
        else:

            def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
                _tally(name, args)
                return original(self, *args, **kwargs)

            setattr(cls, name, counted)

    for cls in (psycopg.Cursor, psycopg.AsyncCursor):
        wrap(cls, "execute")
        wrap(cls, "executemany")


TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> Counter[str]:
    """CPU so far of each thread of this process (clock ticks), by thread name (digits
    stripped): what a run costs whatever else the shared machine does."""
    # native id → Python name (the OS knows them all as "python")
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    found: Counter[str] = Counter()
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = names.get(task.name) or stat[stat.index("(") + 1 : stat.rindex(")")]
        name = name.split(" (")[0].rstrip("0123456789_-")
        fields = stat[stat.rindex(")") + 2 :].split()
        found[name] += int(fields[11]) + int(fields[12])  # utime + stime
    times = os.times()  # threads that ended meanwhile too
    found["(process)"] = round((times.user + times.system) * TICKS)
    return found


def _cpu_delta(after: Counter[str], before: Counter[str]) -> dict[str, float]:
    """CPU seconds by thread between two `thread_cpu()`s."""
    return {k: round(v / TICKS, 2) for k, v in (after - before).most_common() if v >= 1}


def _tally(name: str, args: tuple[Any, ...]) -> None:
    global _counted
    if not getattr(_quiet, "on", False):
        n = len(args[1]) if name == "executemany" and len(args) > 1 else 1
        _counted += n
        _by_thread[threading.current_thread().name.rstrip("0123456789_-")] += n
        _by_kind[_kind(args[0] if args else "")] += n


def _kind(query: Any) -> str:
    text = query if isinstance(query, str) else getattr(query, "as_string", lambda _: "")(None)
    words = " ".join(str(text).split())
    return words[:48]


# --- a worker process --------------------------------------------------------------------


def serve(concurrency: int, report: str) -> None:
    """`manage.py worker` with statement counting; SIGUSR1 writes the count to `report`."""
    import django

    django.setup()
    count_statements()
    from engine.management.commands.worker import serve as worker_serve

    def dump(*_: Any) -> None:
        report_text = {"statements": _counted, "cpu": thread_cpu(), "kinds": _by_kind}
        Path(report).write_text(json.dumps(report_text))

    signal.signal(signal.SIGUSR1, dump)
    print("worker ready", flush=True)
    asyncio.run(worker_serve(f"bench-{os.getpid()}", concurrency))


class Workers:
    def __init__(self, count: int, concurrency: int, tmp: Path) -> None:
        self.reports = [tmp / f"worker-{i}.count" for i in range(count)]
        # At `statements()`: their threads' CPU seconds, their statements by kind.
        self.cpu: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.lines: list[str] = []  # what the workers print (Procrastinate's job lines)
        self.processes = [
            subprocess.Popen(  # noqa: S603 -- our own module, fixed argv
                [sys.executable, "-m", "bench.workers", "--serve", str(concurrency), str(report)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for report in self.reports
        ]
        for process in self.processes:
            assert process.stdout is not None
            seen: list[str] = []
            while not any("Starting worker on queues klyntos-chunks" in line for line in seen):
                line = process.stdout.readline()
                if not line:
                    raise BenchError("a worker did not start: " + "".join(seen)[-2000:])
                seen.append(line)
            threading.Thread(
                target=lambda s=process.stdout: self.lines.extend(s), daemon=True
            ).start()
        # BENCH_W_PROFILE="py-spy record --threads -f raw -o OUT": each worker profiled
        # (attached, so its signals stay its own), to OUT-<n>.
        profile = os.environ.get("BENCH_W_PROFILE", "").split()
        self.profilers = [
            subprocess.Popen(  # noqa: S603 -- the operator's own profiler command
                [*profile[:-1], f"{profile[-1]}-{i}", "--pid", str(process.pid)],
                stdout=subprocess.DEVNULL,
            )
            for i, process in enumerate(self.processes)
            if profile
        ]

    def statements(self) -> int:
        """Statements so far of the workers (and, in `self.cpu`, their threads' CPU)."""
        for report in self.reports:
            report.unlink(missing_ok=True)
        for process in self.processes:
            process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not all(r.exists() for r in self.reports):
            if time.monotonic() > deadline:
                raise BenchError("a worker did not report its statements")
            time.sleep(0.05)
        time.sleep(0.05)  # written whole
        reports = [json.loads(r.read_text()) for r in self.reports]
        self.cpu, self.kinds = Counter(), Counter()
        for report in reports:
            self.cpu.update(report["cpu"])
            self.kinds.update(report["kinds"])
        return sum(int(report["statements"]) for report in reports)

    def job_seconds(self, task: str) -> list[float]:
        """How long each job of `task` lasted, from Procrastinate's own log lines."""
        found = []
        for line in self.lines:
            if f"Job {task}[" in line and " lasted " in line:
                found.append(float(line.rsplit(" lasted ", 1)[1].split(" s", 1)[0]))
        return found

    def memory_mb(self, field: str) -> float:
        """`VmRSS` (resident now) or `VmHWM` (peak) of the first worker, in MB."""
        status = Path(f"/proc/{self.processes[0].pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith(field + ":"))
        return int(line.split()[1]) / 1024

    def stop(self) -> None:
        for profiler in self.profilers:
            profiler.send_signal(signal.SIGINT)  # writes its file
            profiler.wait(60)
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


# --- the driver (the web side) -----------------------------------------------------------


def _timed_run(workflow: Any, n: int) -> tuple[float, Any]:
    """Start a run of n items as the webhook would and wait for its end: (seconds, run)."""
    from builder import services
    from engine.models import FINAL_STATUSES, Run

    items = [{"domain": f"d{i}.bench"} for i in range(n)]
    started = time.perf_counter()
    run, _ = services.run_start(workflow=workflow, input={"items": items})
    _quiet.on = True  # the polling below is the bench's, not the run's
    try:
        while Run.objects.filter(pk=run.pk).values_list("status", flat=True)[0] not in (
            FINAL_STATUSES
        ):
            time.sleep(0.05)
    finally:
        _quiet.on = False
    took = time.perf_counter() - started
    run.refresh_from_db()
    if run.status != "succeeded" or run.succeeded != n:
        raise BenchError(f"run {run.status}: {run.succeeded} of {n} succeeded; {run.error}")
    return took, run


def _timeline(run: Any) -> dict[str, float]:
    """Seconds from the run's creation to: it started, its first item started, its last item
    ended, it ended (where a run's wall time goes beyond its items)."""
    from django.db.models import Max, Min

    from engine.models import ItemRun

    items = ItemRun.objects.filter(run=run).aggregate(
        first=Min("started_at"), last=Max("finished_at")
    )
    marks = {
        "started": run.started_at,
        "first_item": items["first"],
        "last_item": items["last"],
        "ended": run.finished_at,
    }
    return {k: round((v - run.created_at).total_seconds(), 3) for k, v in marks.items() if v}


def drive(part: str, n: int, tmp: Path) -> dict[str, Any]:
    import django

    django.setup()
    count_statements()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from builder import services
    from engine.models import ItemRun

    call_command("migrate", interactive=False, verbosity=0)
    call_command("migrate", database="data", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user(f"bench-{part}")
    url = f"https://{BENCH_HOST}/v2/companies/find?domain=<item.domain>"
    graph = one_get_loop_graph(CAP, url, "Bearer bench-workers")
    workflow = services.workflow_create(owner=user, name=f"bench w {part}", graph=graph)
    result: dict[str, Any] = {}
    if part == "queue":
        settings.KLYNTOS_EXECUTOR = "inline"
        _timed_run(workflow, min(n, 200))  # warm-up: imports, the owner's data, connections
        before, threads, cpu = _counted, Counter(_by_thread), thread_cpu()
        inline_s, inline_run = _timed_run(workflow, n)
        result["inline_timeline"] = _timeline(inline_run)
        inline_statements = _counted - before
        result["inline_cpu_by_thread"] = _cpu_delta(thread_cpu(), cpu)
        result["inline_statements_by_thread"] = dict(_by_thread - threads)
        settings.KLYNTOS_EXECUTOR = "workers"
        workers = Workers(1, WORKER_CONCURRENCY, tmp)
        try:
            _timed_run(workflow, min(n, 200))
            worker_before, before = workers.statements(), _counted
            cpu, kinds = workers.cpu, workers.kinds
            worker_s, run = _timed_run(workflow, n)
            worker_statements = workers.statements() - worker_before + _counted - before
            result["worker_cpu_by_thread"] = _cpu_delta(workers.cpu, cpu)
            result["worker_statements_by_kind"] = dict((workers.kinds - kinds).most_common(12))
            result["worker_timeline"] = _timeline(run)
        finally:
            workers.stop()
        chunk_s = workers.job_seconds("klyntos.loop_chunk")[-run.chunks.count() :]
        result["chunk_job_s"] = [round(x, 3) for x in chunk_s]
        result.update(
            inline_s=inline_s,
            worker_s=worker_s,
            inline_statements=inline_statements,
            worker_statements=worker_statements,
            chunks=run.chunks.count(),
            workers_used=ItemRun.objects.filter(run=run).values("worker").distinct().count(),
        )
    elif part == "big":
        from django.db.models import Max

        settings.KLYNTOS_EXECUTOR = "workers"
        workers = Workers(1, WORKER_CONCURRENCY, tmp)
        try:
            _timed_run(workflow, 200)  # warm-up (a loop of 2 chunks)
            before_mb = workers.memory_mb("VmRSS")
            took, run = _timed_run(workflow, n)
            peak_mb = workers.memory_mb("VmHWM")
        finally:
            workers.stop()
        last_item = ItemRun.objects.filter(run=run).aggregate(at=Max("finished_at"))["at"]
        result.update(
            big_s=took,
            chunks=run.chunks.count(),
            tail_s=(run.finished_at - last_item).total_seconds(),
            rss_before_mb=round(before_mb, 1),
            peak_rss_mb=round(peak_mb, 1),
        )
    else:
        settings.KLYNTOS_EXECUTOR = "workers"
        for count in (1, 2):
            workers = Workers(count, WORKER_CONCURRENCY, tmp)
            try:
                took, run = _timed_run(workflow, n)
            finally:
                workers.stop()
            used = ItemRun.objects.filter(run=run).values("worker").distinct().count()
            result[f"workers_{count}_s"] = took
            result[f"workers_{count}_used"] = used
    return result


# --- the bench ---------------------------------------------------------------------------


def _drive(part: str, n: int, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 -- our own module, fixed argv
        [sys.executable, "-m", "bench.workers", "--drive", part, "--n", str(n)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{part} driver failed ({done.returncode}): {done.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured


def run(*, quick: bool = False, n: int | None = None) -> dict[str, Any]:
    queue_n = n or (500 if quick else 2_000)
    scale_n = 400 if quick else SCALE_ITEMS
    big_n = 2_000 if quick else BIG_ITEMS
    with simulator(latency_ms=0, no_record=True) as sim, fresh_databases("w") as databases:
        env = {
            **os.environ,
            **databases,
            "DJANGO_SETTINGS_MODULE": "klyntos.settings",
            "KLYNTOS_HOST_OVERRIDES": f"{BENCH_HOST}={sim.base_url}",
            "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14",
            # As a deployment of workers sets it: loop caps held across them (slot leases).
            "KLYNTOS_EXECUTOR": "workers",
            "PYTHONUNBUFFERED": "1",
        }
        queue = _drive("queue", queue_n, env)
        big = _drive("big", big_n, env)
        sim.control.configure(latency_ms=SCALE_LATENCY_MS)
        scale = _drive("scale", scale_n, env)
    queue_ratio = queue["inline_s"] / queue["worker_s"]
    scale_ratio = scale["workers_1_s"] / scale["workers_2_s"]
    result = {
        "bench": "workers",
        "queue_n": queue_n,
        "inline_items_per_s": round(queue_n / queue["inline_s"], 1),
        "worker_items_per_s": round(queue_n / queue["worker_s"], 1),
        "queue_ratio": round(queue_ratio, 3),
        "chunks": queue["chunks"],
        "statements_per_item_inline": round(queue["inline_statements"] / queue_n, 2),
        "statements_per_item_worker": round(queue["worker_statements"] / queue_n, 2),
        "inline_statements_by_thread": queue["inline_statements_by_thread"],
        "chunk_job_s": queue["chunk_job_s"],
        # CPU seconds by thread during the timed run: the inline driver's, the worker's.
        "inline_cpu_by_thread": queue["inline_cpu_by_thread"],
        "worker_cpu_by_thread": queue["worker_cpu_by_thread"],
        "worker_statements_by_kind": queue["worker_statements_by_kind"],
        "inline_timeline": queue["inline_timeline"],
        "worker_timeline": queue["worker_timeline"],
        "cpu_ratio": round(
            queue["inline_cpu_by_thread"]["(process)"] / queue["worker_cpu_by_thread"]["(process)"],
            3,
        ),
        "big_n": big_n,
        "big_items_per_s": round(big_n / big["big_s"], 1),
        "big_chunks": big["chunks"],
        "big_tail_s": round(big["tail_s"], 2),
        "big_worker_rss_before_mb": big["rss_before_mb"],
        "big_worker_peak_rss_mb": big["peak_rss_mb"],
        "scale_n": scale_n,
        "latency_s": SCALE_LATENCY_MS / 1000,
        "cap": CAP,
        "concurrency_per_worker": WORKER_CONCURRENCY,
        "one_worker_s": round(scale["workers_1_s"], 2),
        "two_workers_s": round(scale["workers_2_s"], 2),
        "two_workers_used": scale["workers_2_used"],
        "ideal_two_workers_s": scale_n * SCALE_LATENCY_MS / 1000 / CAP,
        "scale_ratio": round(scale_ratio, 3),
        "targets": TARGETS,
    }
    result["pass"] = queue_ratio >= TARGETS["queue_ratio"] and scale_ratio >= TARGETS["scale_ratio"]
    return result


def summary(result: dict[str, Any]) -> str:
    return (
        f"workers: queue {result['worker_items_per_s']:.0f} vs inline "
        f"{result['inline_items_per_s']:.0f} items/s → {result['queue_ratio']:.2f} (≥0.8; CPU "
        f"{result['cpu_ratio']:.2f}); "
        f"scale {result['one_worker_s']:.1f} s → {result['two_workers_s']:.1f} s with 2 workers "
        f"= {result['scale_ratio']:.2f}× (≥1.85); statements/item inline "
        f"{result['statements_per_item_inline']}, worker {result['statements_per_item_worker']}; "
        f"{result['big_n']} items on one worker {result['big_items_per_s']:.0f} items/s, tail "
        f"{result['big_tail_s']} s, worker RSS "
        f"{result['big_worker_rss_before_mb']:.0f} → peak {result['big_worker_peak_rss_mb']:.0f} MB "
        f"{'PASS' if result['pass'] else 'FAIL'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers")
    parser.add_argument("--serve", nargs=2, metavar=("CONCURRENCY", "REPORT"))
    parser.add_argument("--drive", choices=["queue", "scale", "big"])
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
    elif args.drive:
        tmp = Path(tempfile.mkdtemp(prefix="bench-w-"))
        print(json.dumps(drive(args.drive, args.n or SCALE_ITEMS, tmp)), flush=True)
    else:
        result = run(quick=args.quick, n=args.n)
        print(summary(result), file=sys.stderr)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
