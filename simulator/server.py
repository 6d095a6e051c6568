"""The aiohttp application: provider routes plus the `/_sim/` control API."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .config import ConfigError, FailureRule, SimulatorConfig
from .providers import PROVIDERS, Provider
from .state import Call, SimulatorState

STATE_KEY: web.AppKey[SimulatorState] = web.AppKey("simulator_state", SimulatorState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PROVIDER_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/v1/chat/completions", "openai"),
    ("POST", "/chat/completions", "openai"),
    ("GET", "/v2/companies/find", "clearbit"),
    ("GET", "/v2/people", "linkedin"),
    ("POST", "/api/chat.postMessage", "slack"),
    ("GET", "/v1/sources/{name}", "sources"),
    ("GET", "/pages/{slug}", "pages"),
)


def _failure_response(provider: Provider, rule: FailureRule) -> web.Response:
    headers = dict(rule.headers)
    if rule.retry_after is not None:
        headers["Retry-After"] = rule.retry_after
    body = rule.body if rule.body is not None else provider.failure_body(rule.status)
    if isinstance(body, str):
        return web.Response(text=body, status=rule.status, headers=headers)
    return web.json_response(body, status=rule.status, headers=headers)


def _throttled(provider: Provider, retry_after: str | None) -> web.Response:
    return _failure_response(provider, FailureRule(status=429, retry_after=retry_after))


def provider_handler(provider: Provider) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        endpoint = provider.endpoint
        # Counted from the first line to the last so peaks reflect true client concurrency.
        state.enter(endpoint)
        entry: dict[str, Any] | None = None
        latency = 0.0
        status: int | None = None
        try:
            call: Call = await provider.read(request)
            entry = state.record_start(call)
            if state.over_in_flight(endpoint):  # a provider's own limit answers at once
                status = 429
                return _throttled(provider, state.retry_after(endpoint))
            await state.wait_hold(call)
            latency = state.latency_ms(endpoint)
            if latency > 0:
                await asyncio.sleep(latency / 1000)
            response = provider.precheck(call)
            if response is None:
                rule = state.take_failure(call)
                if rule is not None:
                    response = _failure_response(provider, rule)
            if response is None:
                response = provider.answer(state, call)
            status = response.status
            return response
        finally:
            state.exit(endpoint)
            if entry is not None:
                entry["finished"] = time.time()
                entry["end_seq"] = state.next_seq()
                entry["latency_ms"] = latency
                entry["status"] = status

    return handle


# ------------------------------------------------------------------ control API


async def _control_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ConfigError("control body must be a JSON object")
    return body


def _bad_request(exc: Exception) -> web.Response:
    return web.json_response({"ok": False, "error": str(exc)}, status=400)


async def _health(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response({"ok": True, "in_flight_total": state.in_flight_total})


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].snapshot())


async def _get_config(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "config": request.app[STATE_KEY].config.to_dict()})


async def _post_config(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        state.configure(await _control_body(request))
    except ValueError as exc:  # ConfigError and JSON errors
        return _bad_request(exc)
    return web.json_response({"ok": True, "config": state.config.to_dict()})


async def _reset(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await _control_body(request)
        SimulatorConfig().update(body)  # validate first: a bad reset must not half-apply
    except ValueError as exc:
        return _bad_request(exc)
    state.reset(body)
    return web.json_response({"ok": True, "config": state.config.to_dict()})


async def _release(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await _control_body(request)
    except ValueError as exc:
        return _bad_request(exc)
    released = state.release(body.get("endpoint"), body.get("match"))
    return web.json_response({"ok": True, "released": released})


async def _release_on_shutdown(app: web.Application) -> None:
    # Parked requests would otherwise hold the server's graceful shutdown open.
    app[STATE_KEY].release_all()


TOKEN_HEADER = "X-Simulator-Token"


def _control_guard(token: str) -> Any:
    """The control API reconfigures the simulator for everyone: in sandbox mode a workflow's
    HTTP block can reach the simulator through a host override, so control calls need the
    token the launcher chose (health stays open for readiness checks)."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_sim/") and request.path != "/_sim/health":
            given = request.headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return web.json_response({"error": "control token required"}, status=403)
        return await handler(request)

    return guard


def build_app(
    config: SimulatorConfig | None = None, *, control_token: str | None = None
) -> web.Application:
    app = web.Application(middlewares=[_control_guard(control_token)] if control_token else [])
    app[STATE_KEY] = SimulatorState(config)
    for method, path, endpoint in PROVIDER_ROUTES:
        app.router.add_route(method, path, provider_handler(PROVIDERS[endpoint]))
    app.router.add_get("/_sim/health", _health)
    app.router.add_get("/_sim/stats", _stats)
    app.router.add_get("/_sim/config", _get_config)
    app.router.add_post("/_sim/config", _post_config)
    app.router.add_post("/_sim/reset", _reset)
    app.router.add_post("/_sim/release", _release)
    app.on_shutdown.append(_release_on_shutdown)
    return app


async def start(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Start serving `app`; returns the runner and the bound port (useful with port=0)."""
    # access_log=None: logging every request would dominate the 10k-request benchmarks.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = next(addr[1] for addr in runner.addresses if isinstance(addr, tuple))
    return runner, int(bound)
