"""Per-provider wire formats: how to read a request, reject it, fail it, or answer it.

Each provider is a small table of functions; the generic handler in `server.py` runs them
in a fixed order (record → hold → latency → precheck → injected failure → answer), so the
providers behave identically with respect to stats, holds and failures.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import answers
from .state import Call, SimulatorState


@dataclass(frozen=True)
class Provider:
    endpoint: str
    read: Callable[[web.Request], Awaitable[Call]]
    # Auth and unparseable bodies: rejected before a failure rule can consume its budget.
    precheck: Callable[[Call], web.Response | None]
    answer: Callable[[SimulatorState, Call], web.Response]
    failure_body: Callable[[int], Any]


def _base_call(request: web.Request, endpoint: str) -> Call:
    return Call(
        endpoint=endpoint,
        method=request.method,
        path=request.path,
        query=dict(request.query),
        authorization=request.headers.get("Authorization"),
        raw_query=request.rel_url.raw_query_string,
    )


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        return ""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _json_object(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        return None, f"could not parse JSON body: {exc}"
    if not isinstance(body, dict):
        return None, "request body must be a JSON object"
    return body, None


# ----------------------------------------------------------------------- OpenAI


def _openai_error(
    status: int, message: str, type_: str, code: str | None, param: str | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status)


async def _read_openai(request: web.Request) -> Call:
    call = _base_call(request, "openai")
    call.json, call.body_error = _json_object(await request.read())
    if call.json is not None:
        call.fields = call.json
        call.prompt = answers.prompt_text(call.json)
    return call


def _precheck_openai(call: Call) -> web.Response | None:
    if not bearer_token(call.authorization):
        return _openai_error(
            401,
            "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY'.",
            "invalid_request_error",
            "invalid_api_key",
        )
    if call.body_error:
        return _openai_error(400, call.body_error, "invalid_request_error", "invalid_json")
    return None


def _answer_openai(state: SimulatorState, call: Call) -> web.Response:
    body = call.json or {}
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _openai_error(
            400, "you must provide a model parameter", "invalid_request_error", None, "model"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _openai_error(
            400, "'messages' must be a non-empty array", "invalid_request_error", None, "messages"
        )
    image_problem = answers.invalid_image(body)
    if image_problem:
        return _openai_error(
            400, image_problem, "invalid_request_error", "invalid_image_url", "messages"
        )
    if body.get("stream"):
        # Streaming is not part of the template's contract; fail loudly, not subtly.
        return _openai_error(
            400,
            "the simulator does not support stream=true",
            "invalid_request_error",
            None,
            "stream",
        )
    completion = answers.chat_completion(body)
    if not state.take_tokens("openai", completion["usage"]["total_tokens"]):
        refused = _openai_error(
            429,
            "Rate limit reached for tokens per window (simulated)",
            "tokens",
            "rate_limit_exceeded",
        )
        retry_after = state.retry_after("openai")
        if retry_after is not None:
            refused.headers["Retry-After"] = retry_after
        return refused
    return web.json_response(completion)


def _openai_failure_body(status: int) -> Any:
    if status == 429:
        type_, code = "rate_limit_exceeded", "rate_limit_exceeded"
    elif status >= 500:
        type_, code = "server_error", None
    else:
        type_, code = "invalid_request_error", None
    return {
        "error": {
            "message": f"Simulated error (HTTP {status})",
            "type": type_,
            "param": None,
            "code": code,
        }
    }


# ---------------------------------------------------------- Clearbit / LinkedIn


def _lookup_error(status: int, type_: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": type_, "message": message}}, status=status)


async def _read_get(request: web.Request, endpoint: str) -> Call:
    call = _base_call(request, endpoint)
    call.fields = dict(call.query)
    return call


async def _read_clearbit(request: web.Request) -> Call:
    return await _read_get(request, "clearbit")


async def _read_linkedin(request: web.Request) -> Call:
    return await _read_get(request, "linkedin")


def _precheck_lookup(call: Call) -> web.Response | None:
    if not (call.authorization or "").strip():
        return _lookup_error(401, "auth_required", "An Authorization header is required")
    return None


def _answer_clearbit(state: SimulatorState, call: Call) -> web.Response:
    domain = call.query.get("domain", "").strip()
    if not domain:
        return _lookup_error(422, "invalid_request", "Missing required parameter: domain")
    return web.json_response(answers.company(domain))


def _answer_linkedin(state: SimulatorState, call: Call) -> web.Response:
    email = call.query.get("email", "").strip()
    if not email:
        return _lookup_error(422, "invalid_request", "Missing required parameter: email")
    return web.json_response(answers.person(email))


def _lookup_failure_body(status: int) -> Any:
    type_ = "rate_limit" if status == 429 else "server_error" if status >= 500 else "error"
    return {"error": {"type": type_, "message": f"Simulated error (HTTP {status})"}}


# ------------------------------------------------------------------------ Slack


async def _read_slack(request: web.Request) -> Call:
    call = _base_call(request, "slack")
    if request.content_type == "application/json":
        call.json, call.body_error = _json_object(await request.read())
    else:
        # slack_sdk sends form-encoded bodies for some calls (and files as multipart).
        form = await request.post()
        call.json = {key: value for key, value in form.items() if isinstance(value, str)}
    body = call.json or {}
    call.fields = body
    text = body.get("text")
    call.text = text if isinstance(text, str) else None
    return call


def _slack_token(call: Call) -> str:
    token = (call.json or {}).get("token")
    return bearer_token(call.authorization) or (token.strip() if isinstance(token, str) else "")


def _precheck_slack(call: Call) -> web.Response | None:
    # Slack reports API errors with HTTP 200 and ok=false.
    if not _slack_token(call):
        return web.json_response({"ok": False, "error": "not_authed"})
    if call.body_error:
        return web.json_response({"ok": False, "error": "invalid_json"})
    return None


# Slack refuses a message text longer than this (HTTP 200, ok=false, msg_too_long).
SLACK_MAX_TEXT = 40_000


def _answer_slack(state: SimulatorState, call: Call) -> web.Response:
    channel = (call.json or {}).get("channel")
    if not isinstance(channel, str) or not channel.strip():
        return web.json_response({"ok": False, "error": "channel_not_found"})
    if len(call.text or "") > SLACK_MAX_TEXT:
        return web.json_response({"ok": False, "error": "msg_too_long"})
    state.slack_counter += 1
    return web.json_response(answers.slack_post(channel, call.text or "", state.slack_counter))


def _slack_failure_body(status: int) -> Any:
    return {"ok": False, "error": "ratelimited" if status == 429 else "internal_error"}


# ------------------------------------------------------------ public data sources


async def _read_sources(request: web.Request) -> Call:
    call = await _read_get(request, "sources")
    call.fields["source"] = request.match_info.get("name", "")
    return call


def _precheck_sources(call: Call) -> web.Response | None:
    name = call.fields.get("source", "")
    if name not in answers.SOURCE_PARAMS:
        known = ", ".join(sorted(answers.SOURCE_PARAMS))
        return _lookup_error(404, "not_found", f"No source named {name!r}; try one of {known}")
    return None


def _answer_sources(state: SimulatorState, call: Call) -> web.Response:
    name = call.fields["source"]
    param = answers.SOURCE_PARAMS[name]
    value = call.query.get(param, "").strip()
    if not value:
        return _lookup_error(422, "invalid_request", f"Missing required parameter: {param}")
    return web.json_response(answers.source(name, value))


# ------------------------------------------------------------------------ web pages


async def _read_pages(request: web.Request) -> Call:
    call = await _read_get(request, "sources")
    call.fields["page"] = request.match_info.get("slug", "")
    return call


def _precheck_pages(call: Call) -> web.Response | None:
    return None


def _answer_pages(state: SimulatorState, call: Call) -> web.Response:
    return web.Response(text=answers.page(call.fields["page"]), content_type="text/html")


PROVIDERS: dict[str, Provider] = {
    "openai": Provider(
        "openai", _read_openai, _precheck_openai, _answer_openai, _openai_failure_body
    ),
    "clearbit": Provider(
        "clearbit", _read_clearbit, _precheck_lookup, _answer_clearbit, _lookup_failure_body
    ),
    "linkedin": Provider(
        "linkedin", _read_linkedin, _precheck_lookup, _answer_linkedin, _lookup_failure_body
    ),
    "slack": Provider("slack", _read_slack, _precheck_slack, _answer_slack, _slack_failure_body),
    "sources": Provider(
        "sources", _read_sources, _precheck_sources, _answer_sources, _lookup_failure_body
    ),
    # Web pages are served (and counted) as one more public source, on its host.
    "pages": Provider("sources", _read_pages, _precheck_pages, _answer_pages, _lookup_failure_body),
}
