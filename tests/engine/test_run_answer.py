"""A finished run as the HTTP answer a waiting caller gets (engine/run_answer.py)."""

from __future__ import annotations

import json
from typing import Any

from engine.core.graph import parse_graph
from engine.run_answer import Ended, compose
from tests.engine.core.graphkit import block, graph


def with_response(**config: Any) -> Any:
    return parse_graph(
        graph(
            [block("webhook", "webhook"), block("reply", "response", **config)],
            [("webhook", "reply")],
        )
    )


def ended(status: str, outputs: dict[str, Any] | None = None, **more: Any) -> Ended:
    return Ended("run-1", status, outputs or {}, more.pop("error", ""), **more)


def test_a_response_block_answers_with_its_status_headers_and_json_body() -> None:
    output = {"status": 201, "headers": {"X-Total": "3"}, "body": {"ok": True, "n": 3}}
    answer = compose(with_response(), ended("succeeded", {"reply": output}))
    assert answer.status == 201
    assert answer.headers == {"X-Total": "3", "Content-Type": "application/json"}
    assert json.loads(answer.body) == {"ok": True, "n": 3}


def test_text_bodies_go_as_text_and_no_content_has_no_body() -> None:
    text = {"status": 200, "headers": {"Content-Type": "text/csv"}, "body": "a,b\n1,2\n"}
    assert compose(with_response(), ended("succeeded", {"reply": text})).body == b"a,b\n1,2\n"
    empty = {"status": 204, "headers": {}, "body": {"ignored": 1}}
    assert compose(with_response(), ended("succeeded", {"reply": empty})).body == b""


def test_a_failed_run_answers_the_error_status_with_the_failing_blocks_error() -> None:
    answer = compose(
        with_response(error_status=502),
        ended(
            "failed",
            error="fetch: GET https://x/ returned 500",
            failed_block="fetch",
            failed_error="GET https://x/ returned 500: boom",
        ),
    )
    assert answer.status == 502
    assert json.loads(answer.body) == {
        "error": "GET https://x/ returned 500: boom",
        "block": "fetch",
        "run_id": "run-1",
        "status": "failed",
    }


def test_without_a_response_block_the_last_blocks_output_is_the_answer() -> None:
    chain = parse_graph(
        graph(
            [block("webhook", "webhook"), block("shape", "transform", input={}, expression="@")],
            [("webhook", "shape")],
        )
    )
    answer = compose(chain, ended("succeeded", {"webhook": {"body": 1}, "shape": {"result": 2}}))
    assert (answer.status, json.loads(answer.body)) == (200, {"result": 2})
    failed = compose(chain, ended("failed", error="shape: no", failed_block="shape"))
    assert failed.status == 500
    assert json.loads(failed.body)["error"] == "shape: no"


def test_a_workflow_ending_in_several_blocks_answers_each_by_name() -> None:
    forked = parse_graph(
        graph(
            [
                block("webhook", "webhook"),
                block("a", "transform", input={}, expression="`1`"),
                block("b", "transform", input={}, expression="`2`"),
            ],
            [("webhook", "a"), ("webhook", "b")],
        )
    )
    outputs = {"a": {"result": 1}, "b": {"result": 2}}
    answer = compose(forked, ended("succeeded", outputs))
    assert json.loads(answer.body) == {"a": {"result": 1}, "b": {"result": 2}}


def test_a_cancelled_run_is_an_error_answer() -> None:
    answer = compose(with_response(error_status=503), ended("cancelled"))
    assert answer.status == 503
    assert json.loads(answer.body)["error"] == "the run was cancelled"
