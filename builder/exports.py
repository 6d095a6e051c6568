"""A workflow as a file, and which secrets workflows use.

An export is the workflow's saved graph with its name and description and the names of the
secrets it reads (`<env.NAME>`): secrets travel by name only. Pinned test data (a block's
`pin`: outputs of the owner's runs, often personal data) stays home unless asked for. The graph holds references,
never values; all the same, any value of the owner's secrets (or of the allow-listed process
variables they could read) found in the document is masked before it leaves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from builder.models import Workflow
from builder.selectors import env_for_owner, workflows_for
from engine.core.redaction import Redactor
from engine.core.refs import find_references, iter_strings

EXPORT_KIND = "klyntos/workflow"
EXPORT_FORMAT = 1
ENV_ROOT = "env"


def secret_names_in(graph: Any) -> list[str]:
    """The NAMEs of every `<env.NAME…>` reference in the graph's block configs, sorted."""
    names: set[str] = set()
    blocks = graph.get("blocks") if isinstance(graph, dict) else None
    for block in blocks if isinstance(blocks, list) else []:
        config = block.get("config") if isinstance(block, dict) else None
        for _, text in iter_strings(config or {}):
            if "<env." not in text:
                continue
            for ref in find_references(text):
                if ref.root == ENV_ROOT and ref.path:
                    names.add(ref.path[0])
    return sorted(names)


def without_pins(graph: Any) -> Any:
    """The graph with no block's `pin`."""
    blocks = graph.get("blocks") if isinstance(graph, dict) else None
    if not isinstance(blocks, list):
        return graph
    return {
        **graph,
        "blocks": [
            {k: v for k, v in b.items() if k != "pin"} if isinstance(b, dict) else b for b in blocks
        ],
    }


def workflow_export(workflow: Workflow, *, pins: bool = False) -> dict[str, Any]:
    graph = workflow.current_version.graph if workflow.current_version else {}
    if not pins:
        graph = without_pins(graph)
    document = {
        "kind": EXPORT_KIND,
        "format": EXPORT_FORMAT,
        "name": workflow.name,
        "description": workflow.description,
        "secrets": secret_names_in(graph),
        "graph": graph or {"blocks": [], "edges": []},
    }
    masked: dict[str, Any] = Redactor(env_for_owner(workflow.owner_id).values()).value(document)
    return masked


def export_filename(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:80] or "workflow"
    return f"{stem}.klyntos.json"


def secret_usage(owner: Any, names: Iterable[str] = ()) -> dict[str, list[dict[str, Any]]]:
    """Every secret name the owner's workflows read (and every one in `names`), with the
    workflows (id, name) whose draft or live version reads it, and which of the two does:
    a secret only the live version reads still runs every webhook call, so it is in use."""
    usage: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    workflows = workflows_for(owner).select_related("current_version", "published_version")
    for workflow in workflows.order_by("name", "pk"):
        draft, live = workflow.current_version, workflow.published_version
        in_draft = set(secret_names_in(draft.graph)) if draft else set()
        in_live = set(secret_names_in(live.graph)) if live else set()
        for name in sorted(in_draft | in_live):
            usage.setdefault(name, []).append(
                {
                    "id": workflow.pk,
                    "name": workflow.name,
                    "draft": name in in_draft,
                    "live": name in in_live,
                }
            )
    return usage


def live_readers(owner: Any, name: str) -> list[dict[str, Any]]:
    """The owner's workflows whose live version reads the secret `name`."""
    return [use for use in secret_usage(owner).get(name, []) if use["live"]]
