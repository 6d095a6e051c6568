"""SQL and reference injection: item data is data.

A value that arrives through a reference is substituted once and never read again as a
reference (`<env.X>` or `<lead.x>` in a lead's name stays text), and in SQL every reference
is a bound parameter, on SQLite and on PostgreSQL, whatever quoting the value carries.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
from aiohttp import web

from engine.blocks import REGISTRY
from engine.config import data_connection
from engine.core.data import DataConnection, SqliteData
from engine.core.events import EventBus
from engine.core.executor import Executor, RunOutcome
from engine.core.graph import parse_graph
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.redaction import Redactor
from engine.core.refs import Scope, render
from engine.core.services import Services
from tests.engine.core.graphkit import Recorder
from tests.hostile.conftest import Upstream, serve

SECRET = "sk-live-4f9b2c7d1e8a6035"
ENV = {"API_KEY": SECRET}

HOSTILE = [
    "'; DROP TABLE enriched_leads; --",
    "O'Brien",
    "\\'; DELETE FROM enriched_leads; --",
    "'' OR 1=1 --",
    "$$; DELETE FROM enriched_leads; $$",
    "$tag$ x $tag$",
    "E'\\''; DELETE FROM enriched_leads; --",
    "/* */ UNION SELECT sql FROM sqlite_master --",
    "?",
    "%s",
    "$1",
    ":name",
    "\\",
    "<env.API_KEY>",
    "<lead.name>",
    "<hook.body.v>",
    "caf\u00e9 \U0001f389 \u202e",
]


def graph(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """A webhook then the given blocks in a chain."""
    all_blocks = [{"id": "hook", "type": "webhook", "name": "hook", "config": {}}, *blocks]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in pairwise(all_blocks)]
    return {"blocks": all_blocks, "edges": edges}


def block(name: str, type_: str, **config: Any) -> dict[str, Any]:
    return {"id": name, "type": type_, "name": name, "config": config}


async def run(
    graph_json: dict[str, Any],
    body: Any,
    *,
    data: DataConnection | None = None,
    trusted: tuple[str, ...] = (),
) -> tuple[RunOutcome, Recorder]:
    recorder = Recorder()
    services = Services(
        outbound=OutboundFactory(OutboundConfig(trusted_hosts=frozenset(trusted))), data=data
    )
    executor = Executor(
        parse_graph(graph_json),
        REGISTRY,
        bus=EventBus(recorder, Redactor(ENV.values())),
        services=services,
        env=ENV,
    )
    try:
        outcome = await executor.run(body)
    finally:
        await services.aclose()
    return outcome, recorder


def output(recorder: Recorder, name: str) -> Any:
    finished = recorder.of("step.finished", name=name)
    failed = recorder.of("step.failed", name=name)
    assert finished, f"{name} did not finish: {[e.data.get('error') for e in failed]}"
    return finished[0].data["output"]


# --- the resolver ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE)
def test_render_substitutes_once(value: str) -> None:
    scope = Scope({"env": ENV, "hook": {"body": {"v": value}}, "lead": {"name": "Ada"}})
    assert render("<hook.body.v>", scope) == value
    assert render("say <hook.body.v>!", scope) == f"say {value}!"
    assert render({"a": ["<hook.body.v>"]}, scope) == {"a": [value]}


# --- SQL -------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "data.sqlite3"
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE enriched_leads (lead_id text unique, name text)")
    setup.execute("INSERT INTO enriched_leads VALUES ('keep', 'Keep me')")
    setup.commit()
    setup.close()
    return path


def table_rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as reader:
        return reader.execute("SELECT lead_id, name FROM enriched_leads").fetchall()


@pytest.mark.parametrize("value", HOSTILE)
async def test_sqlite_binds_every_reference(sqlite_path: Path, value: str) -> None:
    sql = "INSERT INTO enriched_leads (lead_id, name) VALUES (<hook.body.id>, '<hook.body.v>');"
    read = "SELECT name, '<hook.body.v>' AS quoted, <hook.body.v> AS bare FROM enriched_leads WHERE lead_id = '<hook.body.id>'"
    outcome, recorder = await run(
        graph([block("write", "database", sql=sql), block("read", "database", sql=read)]),
        {"id": "x1", "v": value},
        data=SqliteData(str(sqlite_path)),  # the run closes it
    )
    assert outcome.status == "succeeded"
    assert output(recorder, "read")["rows"] == [{"name": value, "quoted": value, "bare": value}]
    rows = table_rows(sqlite_path)
    assert sorted(rows) == [("keep", "Keep me"), ("x1", value)]
    assert SECRET not in repr(rows)


@pytest.fixture
def postgres_data(user: Any) -> Any:
    """The user's own data connection (their schema, their role)."""
    return data_connection(user.pk)


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
@pytest.mark.parametrize("value", HOSTILE)
def test_postgresql_binds_every_reference(postgres_data: DataConnection, value: str) -> None:
    assert postgres_data.dialect == "postgresql"
    sql = (
        "SELECT '<hook.body.v>' AS quoted, <hook.body.v> AS bare, '<hook.body.v>' || 'x' AS joined"
    )

    async def go() -> tuple[RunOutcome, Recorder]:
        try:
            return await run(
                graph([block("read", "database", sql=sql)]), {"v": value}, data=postgres_data
            )
        finally:
            await postgres_data.aclose()

    outcome, recorder = asyncio.run(go())
    assert output(recorder, "read")["rows"] == [
        {"quoted": value, "bare": value, "joined": value + "x"}
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DELETE FROM enriched_leads",
        "SELECT '<hook.body.v>'; DELETE FROM enriched_leads",
        "SELECT 1 -- '; DELETE FROM enriched_leads\n; DELETE FROM enriched_leads",
        "SELECT '<hook.body.v>' /* ; */ ; DROP TABLE enriched_leads",
    ],
)
def test_more_than_one_statement_is_a_validation_error(sql: str) -> None:
    problems = REGISTRY["database"].check({"sql": sql})
    assert problems and problems[0][0] == "sql", problems


async def test_a_reference_in_identifier_position_cannot_name_a_table(
    sqlite_path: Path,
) -> None:
    """A value is bound where a value goes; it can never become a table name."""
    outcome, recorder = await run(
        graph([block("read", "database", sql="SELECT * FROM <hook.body.table>")]),
        {"table": "sqlite_master"},
        data=SqliteData(str(sqlite_path)),
    )
    assert outcome.status == "failed"
    assert "query failed" in recorder.of("step.failed", name="read")[0].data["error"]


# --- references in item data are never resolved ------------------------------------------


@pytest.mark.parametrize("value", ["<env.API_KEY>", "<lead.name>", "<hook.body.other>", "<env>"])
async def test_item_data_reaching_an_http_request_is_sent_as_text(
    upstream: Upstream, value: str
) -> None:
    body = {"v": value, "other": "resolved-other"}
    config = {
        "url": f"{upstream.base_url}/leads/<hook.body.v>",
        "method": "POST",
        "headers": {"X-Lead": "<hook.body.v>"},
        "query": {"q": "<hook.body.v>"},
        "body": {"note": "Lead says: <hook.body.v>", "whole": "<hook.body.v>"},
    }
    outcome, recorder = await run(
        graph([block("send", "http", **config)]), body, trusted=(upstream.hostport,)
    )
    assert outcome.status == "succeeded"
    (seen,) = upstream.requests
    assert seen["headers"]["X-Lead"] == value
    assert json.loads(seen["body"]) == {"note": f"Lead says: {value}", "whole": value}
    path, _, query = seen["path"].partition("?")
    assert unquote(path) == f"/leads/{value}" and parse_qs(query) == {"q": [value]}
    assert SECRET not in repr(seen) + repr(recorder.events)
    assert "resolved-other" not in repr(seen)


async def test_an_upstream_answer_holding_references_stays_text(upstream: Upstream) -> None:
    """Block A's output contains reference syntax; block B reads it: no second resolution."""

    async def sneaky(request: web.Request) -> web.StreamResponse:
        return web.json_response({"name": "<env.API_KEY>", "tpl": "Hi <lead.name>"})

    for server in serve(sneaky):
        outcome, recorder = await run(
            graph(
                [
                    block("fetch", "http", url=f"{server.base_url}/lead"),
                    block(
                        "shape",
                        "transform",
                        input={"n": "<fetch.body.name>", "t": "x <fetch.body.tpl>"},
                        expression="[n, t]",
                    ),
                ]
            ),
            {},
            trusted=(server.hostport,),
        )
    assert outcome.status == "succeeded"
    assert output(recorder, "shape") == {"result": ["<env.API_KEY>", "x Hi <lead.name>"]}
    assert SECRET not in repr(recorder.events)


async def test_loop_items_holding_references_stay_text() -> None:
    loop = {
        "id": "each",
        "type": "loop",
        "name": "each",
        "config": {"items": "<hook.body.leads>", "variable": "lead"},
    }
    inner = {
        "id": "echo",
        "type": "transform",
        "name": "echo",
        "parent": "each",
        "config": {"input": {"n": "<lead.name>", "s": "said: <lead.name>"}, "expression": "[n, s]"},
    }
    leads = [{"name": "<env.API_KEY>"}, {"name": "<lead.name>"}, {"name": "<each.results>"}]
    outcome, recorder = await run(
        {
            "blocks": [block("hook", "webhook"), loop, inner],
            "edges": [{"source": "hook", "target": "each"}],
        },
        {"leads": leads},
    )
    assert outcome.status == "succeeded", outcome.error
    results = sorted(
        tuple(e.data["output"]["result"]) for e in recorder.of("step.finished", name="echo")
    )
    assert results == sorted((lead["name"], f"said: {lead['name']}") for lead in leads)
    assert SECRET not in repr(recorder.events)
