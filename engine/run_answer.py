"""A finished run as an HTTP answer, for a caller who waited for it (`Prefer: wait=`).

With a Response block (engine/blocks/response.py) the answer is what it rendered: its status,
its headers and its body; when the run failed or was cancelled, the block's `error_status`
with the failing block's error. Without one, the output of the block the workflow ends in
(an object of outputs by name when it ends in several) with 200, or 500 with the error.
Everything comes from the stored run, which is masked already (secrets by value, engine/store.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from engine.blocks.response import DEFAULT_ERROR_STATUS, DEFAULT_STATUS
from engine.core.executor import is_skipped_output
from engine.core.graph import RESPONSE_TYPE, Graph, parse_graph
from engine.models import FINAL_STATUSES, Run, RunStatus, StepRun

JSON_TYPE = "application/json"
NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Ended:
    """What the answer is made of: the stored end of one run."""

    run_id: str
    status: str
    outputs: Mapping[str, Any]
    error: str
    failed_block: str | None = None
    failed_error: str | None = None


def compose(graph: Graph, ended: Ended) -> Answer:
    responder = next((b for b in graph.blocks if b.type == RESPONSE_TYPE), None)
    succeeded = ended.status in {RunStatus.SUCCEEDED, RunStatus.PARTIALLY_SUCCEEDED}
    if responder is not None and is_skipped_output(ended.outputs.get(responder.name)):
        responder = None  # skipped by its run_if: answered as if the workflow had none
    if responder is not None:
        output = ended.outputs.get(responder.name)
        if succeeded and isinstance(output, Mapping):
            headers = {str(k): str(v) for k, v in (output.get("headers") or {}).items()}
            return _answer(int(output.get("status") or DEFAULT_STATUS), output.get("body"), headers)
        error_status = int(responder.config.get("error_status") or DEFAULT_ERROR_STATUS)
        return _failure(error_status, ended)
    if not succeeded:
        return _failure(DEFAULT_ERROR_STATUS, ended)
    return _answer(DEFAULT_STATUS, _last_output(graph, ended.outputs), {})


def _last_output(graph: Graph, outputs: Mapping[str, Any]) -> Any:
    """The output of the top-level block nothing follows; of each, by name, when several.
    A block skipped by its `run_if` stands aside for the blocks it follows (the lead
    template without failures answers its summary's Slack post, not the skipped notice)."""
    predecessors = graph.predecessors(None)
    followed = {source for preds in predecessors.values() for source in preds}
    ends = [b for b in predecessors if b not in followed]
    seen: set[str] = set()
    last: list[str] = []
    while ends:
        block_id = ends.pop(0)
        if block_id in seen:
            continue
        seen.add(block_id)
        name = graph.block(block_id).name
        if is_skipped_output(outputs.get(name)) and predecessors[block_id]:
            ends.extend(sorted(predecessors[block_id]))
        elif name not in last:
            last.append(name)
    if len(last) == 1:
        return outputs.get(last[0])
    return {name: outputs.get(name) for name in last}


def _failure(status: int, ended: Ended) -> Answer:
    if ended.status == RunStatus.CANCELLED:
        message = ended.failed_error or ended.error or "the run was cancelled"
    else:
        message = ended.failed_error or ended.error or "the run failed"
    body = {
        "error": message,
        "block": ended.failed_block,
        "run_id": ended.run_id,
        "status": ended.status,
    }
    return _answer(status, body, {})


def _answer(status: int, body: Any, headers: dict[str, str]) -> Answer:
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if status in NO_BODY_STATUSES:
        return Answer(status, b"", headers)
    if content_type is None:
        headers = {**headers, "Content-Type": JSON_TYPE}
        content_type = JSON_TYPE
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("text/") and isinstance(body, str):
        return Answer(status, body.encode(), headers)
    return Answer(status, json.dumps(body, ensure_ascii=False).encode(), headers)


def read_answer(run_id: Any) -> Answer | None:
    """The answer of a run that has ended; None while it runs (or when there is no run).
    Called on a worker thread: leaves no database connection open behind."""
    try:
        run = Run.objects.select_related("version").filter(pk=run_id).first()
        if run is None or run.status not in FINAL_STATUSES:
            return None
        failed: Mapping[str, Any] | None = (
            StepRun.objects.filter(run=run, item_key="", status="failed")
            .order_by("finished_at")
            .values("name", "error")
            .first()
        )
        graph = parse_graph(run.version.graph)
        outputs = run.outputs if isinstance(run.outputs, Mapping) else {}
        if failed is None and run.status == RunStatus.FAILED:
            failed = _loop_that_failed_whole(graph, outputs, run.error)
        ended = Ended(
            str(run.pk),
            run.status,
            outputs,
            run.error,
            failed["name"] if failed else None,
            failed["error"] if failed else None,
        )
        return compose(graph, ended)
    finally:
        connections.close_all()


def _loop_that_failed_whole(
    graph: Graph, outputs: Mapping[str, Any], error: str
) -> Mapping[str, Any] | None:
    """The top-level loop whose every item failed and that went on (`on_all_failed`): its
    own step succeeded, so no failed step names it, but the run failed for it."""
    for block in graph.blocks:
        output = outputs.get(block.name)
        if block.parent is None and block.is_loop and isinstance(output, Mapping):
            if output.get("count") and output.get("succeeded") == 0:
                return {"name": block.name, "error": error}
    return None
