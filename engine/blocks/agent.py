"""Agent: one chat completion through any OpenAI-compatible endpoint.

With a JSON-schema response format the answer's fields become outputs of their own
(`<agent_analysis.budget_estimate>`); `content` always holds the text.

Failover: `failover` lists more models (each with its own API key if needed) answering in
the same response format. A call goes to the first of the block's model and those whose
provider key (`host/model`) lets calls through now — breaker not open, no Retry-After pause,
budget not exhausted — and a 429, or its key pausing while the call waits for a slot, moves
the same attempt on to the next one (only the last one waits for a paused key). Each call's
usage records the key that answered (`endpoint`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai

# `client.chat` imports these on first use (~30-60 ms of module and pydantic model building,
# on the event loop, in the first run's first call): paid when the process starts instead.
# `openai.resources.chat` alone is a lazy package that imports nothing until an attribute
# is read, so the modules themselves are named.
import openai.resources.chat.chat  # noqa: F401
import openai.resources.chat.completions.completions  # noqa: F401

from engine.blocks.base import BaseBlock, config_schema
from engine.core.errors import BlockError, TransientError, is_retryable_status, parse_retry_after
from engine.core.providers import ProviderPaused
from engine.core.refs import Scope, stringify, substitute
from engine.core.schemas import (
    JsonSchema,
    Unresolvable,
    obj,
    properties_of,
    schema_problems,
    schema_validator,
)
from engine.core.sizes import readable_bytes, text_bytes
from engine.core.spec import BlockContext

# How much of an endpoint's error message a step error quotes.
ERROR_EXCERPT = 300
PROMPT_FIELDS = ("system_prompt", "user_prompt")
# How many references a too-large prompt's error names (the largest first).
NAMED_REFERENCES = 3
# Models a failover list may hold (after the block's own).
MAX_FAILOVER = 5
# Images one call may carry (OpenAI-style `image_url` content parts), and the URL forms
# accepted: the provider fetches them, so only http(s) URLs and inline `data:image/` ones.
MAX_IMAGES = 16
IMAGE_PREFIXES = ("https://", "http://", "data:image/")
# What `chat.completions.create` passes to `post`: the client's bearer key as Authorization.
# The SDK's own defaults are named too: it deep-copies those it fills in, on every call.
_OPTIONS: Any = {
    "security": {"bearer_auth": True},
    **dict.fromkeys(("headers", "max_retries", "timeout", "post_parser"), openai.NOT_GIVEN),
}
# Response-format validators kept (one per block config in use; see _validator).
MAX_VALIDATORS = 64
_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}
USAGE_SCHEMA = obj(
    {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
    }
)


class AgentBlock(BaseBlock):
    type = "agent"
    label = "Agent"
    description = "Asks an LLM (any OpenAI-compatible endpoint)."
    icon = "sparkles"
    test_effect = "calls the model provider for real: one request, billed as usual"
    # The block renders its prompts itself, measuring what each reference adds (see run).
    raw_fields = frozenset(PROMPT_FIELDS)
    # Text sent to a size-limited service: validation warns about lists that grow with a batch.
    size_limited_fields = frozenset(PROMPT_FIELDS)
    config_schema = config_schema(
        {
            "model": {"type": "string", "default": "gpt-4o-mini", "minLength": 1},
            "system_prompt": {"type": "string", "title": "System prompt"},
            "user_prompt": {"type": "string", "title": "User prompt", "minLength": 1},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "max_tokens": {"type": "integer", "minimum": 1},
            "response_format": {"type": "object", "title": "Response JSON schema"},
            "images": {
                "type": ["string", "array"],
                "title": "Images (URLs sent with the user prompt as image parts)",
                "items": {"type": "string"},
                "maxItems": MAX_IMAGES,
            },
            "image_detail": {"enum": ["auto", "low", "high"], "title": "Image detail"},
            "api_key": {"type": "string", "title": "API key (e.g. <env.OPENAI_API_KEY>)"},
            "failover": {
                "type": "array",
                "title": (
                    "Failover models, in order, with the same response format: used when the "
                    'model before is paused, out of budget or answers 429 (e.g. [{"model": '
                    '"gpt-4o"}])'
                ),
                "maxItems": MAX_FAILOVER,
                "items": {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string", "minLength": 1},
                        "api_key": {"type": "string"},
                    },
                    "required": ["model"],
                    "additionalProperties": False,
                },
            },
        },
        required=["user_prompt"],
        retry=True,
        cache=True,
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        fields = dict(properties_of(config.get("response_format")))
        return obj(
            {
                **fields,
                "content": {"type": "string"},
                "model": {"type": "string"},
                "usage": USAGE_SCHEMA,
            }
        )

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        return _failover_problems(config) + _format_problems(config)

    def origin(self, config: Mapping[str, Any], services: Any) -> str | None:
        return str(services.openai_base_url)  # every model of the block is called there

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        config = ctx.config
        system, user = render_prompts(ctx, ctx.services.agent_max_prompt_bytes)
        images = image_urls(config.get("images"))
        if images and text_bytes(system) + text_bytes(user) + sum(map(len, images)) > (
            ctx.services.agent_max_prompt_bytes
        ):
            raise BlockError(
                f"prompt and images are over KLYNTOS_AGENT_MAX_PROMPT_BYTES "
                f"({readable_bytes(ctx.services.agent_max_prompt_bytes)}): pass images as URLs "
                f"rather than inline data"
            )
        host = urlsplit(ctx.services.openai_base_url).hostname or ""
        registry = ctx.services.outbound.providers
        endpoints = _endpoints(config)
        # The first whose provider lets calls through now goes first; the rest follow in
        # order for a 429. None free (all paused): wait for the first.
        free = [e for e in endpoints if registry.available(host, e[0])]
        order = free + [e for e in endpoints if e not in free]
        for index, (model, api_key) in enumerate(order):
            last = index + 1 == len(order)
            try:
                return await self._complete(
                    ctx, system, user, images, model, api_key, or_next=not last
                )
            except ProviderPaused:
                continue  # paused while it waited: the next model takes this item
            except TransientError as exc:
                if index + 1 < len(order) and (
                    exc.status == 429 or not registry.available(host, model)
                ):
                    continue  # the next model takes this item now
                raise
        raise AssertionError("unreachable: the last endpoint raises")

    async def _complete(
        self,
        ctx: BlockContext,
        system: str,
        user: str,
        images: list[str],
        model: str,
        api_key: str | None,
        *,
        or_next: bool = False,
    ) -> dict[str, Any]:
        config = ctx.config
        messages = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user_content(user, images, config)})
        # The SDK's low-level post with the body as JSON-ready dicts: `chat.completions.create`
        # would run its typed transform over the params and wrap the answer (over a
        # millisecond of CPU per call, which adds up when a loop's items answer at once).
        body: dict[str, Any] = {"model": model, "messages": messages}
        if config.get("temperature") is not None:
            body["temperature"] = config["temperature"]
        if config.get("max_tokens"):
            body["max_tokens"] = config["max_tokens"]
        schema = ctx.raw_config.get("response_format")
        if schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": f"{ctx.block_name}_response", "schema": schema},
            }
        client = ctx.services.openai(api_key)
        # The call counts against the endpoint's host and its host/model key (caps, rates,
        # tokens reserved from an estimate and settled from `usage`, AIMD).
        prompt_chars = len(system) + len(user)
        provider = ctx.services.outbound.providers.call(
            urlsplit(ctx.services.openai_base_url).hostname or "",
            model=model,
            prompt_chars=prompt_chars,
            max_tokens=config.get("max_tokens"),
            or_next=or_next,
        )
        async with provider:
            try:
                # The HTTP response itself: the answer is read from its JSON, skipping the SDK's
                # model construction. Errors are still the SDK's (APIStatusError, ...).
                response = await client.post(
                    _completions_url(client), cast_to=httpx.Response, body=body, options=_OPTIONS
                )
                provider.observe(response.status_code, response.headers)
                completion = response.json()
            except openai.APIStatusError as exc:
                provider.observe(exc.status_code, exc.response.headers)
                message = f"LLM endpoint returned {exc.status_code}: {_error_message(exc, ctx)}"
                if is_retryable_status(exc.status_code):
                    raise TransientError(
                        message,
                        retry_after=parse_retry_after(exc.response.headers.get("retry-after")),
                        status=exc.status_code,
                    ) from exc
                raise BlockError(message) from exc
            except openai.APITimeoutError as exc:
                raise TransientError(f"LLM endpoint timed out: {exc}", timeout=True) from exc
            except openai.APIConnectionError as exc:
                raise TransientError(f"LLM endpoint unreachable: {exc}") from exc
            except ValueError as exc:  # a 2xx whose body is not JSON
                raise TransientError(
                    f"LLM endpoint answered with something other than JSON: {exc}"
                ) from exc
            if isinstance(completion, dict) and isinstance(completion.get("usage"), dict):
                provider.settle(completion["usage"], prompt_chars)
        choices = completion.get("choices") if isinstance(completion, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise TransientError("LLM endpoint returned no choices")
        content = (choices[0].get("message") or {}).get("content") or ""
        usage = completion.get("usage") if isinstance(completion.get("usage"), dict) else {}
        model = str(completion.get("model") or model)
        # `endpoint`: the provider key that answered (a failover's choice shows here).
        ctx.record_usage(
            **{**usage, "provider": "openai", "model": model, "endpoint": provider.key}
        )
        output: dict[str, Any] = {"content": content, "model": model, "usage": usage}
        if schema:
            output.update(_structured(content, schema))
        return output


def _completions_url(client: openai.AsyncOpenAI) -> str:
    """The endpoint's absolute URL, as the SDK would join it onto its base URL (which it
    keeps ending in "/"): given whole, the SDK parses one URL instead of joining two."""
    base = client.base_url
    return "/chat/completions" if base.query else f"{base}chat/completions"


def _format_problems(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    schema = config.get("response_format")
    if not schema:
        return []
    problems = schema_problems(schema)
    if problems:
        return [("response_format", problem) for problem in problems]
    properties = properties_of(schema)
    if schema.get("type") != "object" or not properties:
        return [("response_format", "must be an object schema with properties")]
    reserved = {"content", "model", "usage"} & set(properties)
    if reserved:
        return [("response_format", f"field names reserved for the block: {sorted(reserved)}")]
    return []


def _endpoints(config: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(model, API key) in order: the block's own, then its failover list's."""
    api_key = config.get("api_key") or None
    endpoints: list[tuple[str, str | None]] = [(config.get("model") or "gpt-4o-mini", api_key)]
    failover = config.get("failover")
    for entry in failover if isinstance(failover, list) else []:
        if isinstance(entry, Mapping) and entry.get("model"):
            endpoints.append((str(entry["model"]), entry.get("api_key") or api_key))
    return endpoints


def _failover_problems(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The shape is the config schema's; here: each model once, the block's own first."""
    failover = config.get("failover")
    if not isinstance(failover, list):
        return []
    own = config.get("model") or "gpt-4o-mini"
    seen = {own}
    for index, entry in enumerate(failover):
        model = entry.get("model") if isinstance(entry, Mapping) else None
        if not isinstance(model, str) or not model:
            continue
        if model in seen:
            why = "the block's own model" if model == own else "listed before"
            return [(f"failover.{index}.model", f"'{model}' is {why}: each model is tried once")]
        seen.add(model)
    return []


def image_urls(value: Any) -> list[str]:
    """The rendered `images` field as a list of URLs: one URL, a list of them, or a whole
    reference to either. Anything else fails the step, saying what it got."""
    if value is None or value == "" or value == []:
        return []
    urls = value if isinstance(value, list) else [value]
    if len(urls) > MAX_IMAGES:
        raise BlockError(f"images: {len(urls)} images, at most {MAX_IMAGES} per call")
    for index, url in enumerate(urls):
        if not isinstance(url, str) or not url.startswith(IMAGE_PREFIXES):
            shown = url[:60] if isinstance(url, str) else type(url).__name__
            raise BlockError(
                f"images[{index}]: expected an http(s) or data:image/ URL, got {shown!r}"
            )
    return list(urls)


def user_content(text: str, images: list[str], config: Mapping[str, Any]) -> Any:
    """The user message's content: the text alone, or text then one part per image."""
    if not images:
        return text
    detail = config.get("image_detail")
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for url in images:
        image: dict[str, Any] = {"url": url}
        if detail:
            image["detail"] = detail
        parts.append({"type": "image_url", "image_url": image})
    return parts


def render_prompts(ctx: BlockContext, max_bytes: int) -> tuple[str, str]:
    """The system and user prompts as text, refused past `max_bytes` (UTF-8, together)
    before anything is sent: the error names the references that made them large, from
    the sizes `substitute` measured as it wrote each value in."""
    sizes: dict[str, int] = {}
    system, user = (_prompt(ctx.raw_config.get(name), ctx.scope, sizes) for name in PROMPT_FIELDS)
    total = text_bytes(system) + text_bytes(user)
    if total > max_bytes:
        raise BlockError(_too_large(total, max_bytes, sizes))
    return system, user


def _prompt(template: Any, scope: Scope, sizes: dict[str, int]) -> str:
    if template is None:
        return ""
    if not isinstance(template, str):  # a config that skipped validation: its JSON
        return stringify(template)
    return substitute(template, scope, lambda value, _: stringify(value), sizes)


def _too_large(total: int, limit: int, sizes: dict[str, int]) -> str:
    message = (
        f"prompt is {readable_bytes(total)}, over KLYNTOS_AGENT_MAX_PROMPT_BYTES "
        f"({readable_bytes(limit)})"
    )
    largest = sorted(sizes.items(), key=lambda pair: pair[1], reverse=True)[:NAMED_REFERENCES]
    named = [f"{ref} contributes {readable_bytes(size)}" for ref, size in largest if size]
    own = total - sum(sizes.values())
    if own > (largest[0][1] if largest else 0):
        return "; ".join([message, *named, f"the prompt's own text is {readable_bytes(own)}"])
    return "; ".join([message, ", ".join(named), "summarise a list with loop aggregations instead"])


def _error_message(exc: openai.APIStatusError, ctx: BlockContext) -> str:
    """The endpoint's own words: its error's `message`, else its whole answer, which the
    SDK's message leaves out for answers not shaped like OpenAI's errors."""
    body = exc.body
    if isinstance(body, dict) and body.get("message"):
        text = str(body["message"])
    elif body and str(body) not in exc.message:
        text = f"{exc.message} - {body}" if isinstance(body, dict | list) else str(body)
    else:
        text = exc.message
    return ctx.redactor.excerpt(text, ERROR_EXCERPT)


def _validator(schema: Mapping[str, Any]) -> Any:
    """The block's response format as a validator, built once per config object: building
    one costs more CPU than checking a typical answer, and every loop item would."""
    entry = _VALIDATORS.get(id(schema))
    if entry is None or entry[0] is not schema:
        if len(_VALIDATORS) >= MAX_VALIDATORS:
            _VALIDATORS.clear()
        # Holding the schema keeps its id from being reused by another object.
        entry = _VALIDATORS[id(schema)] = (schema, schema_validator(schema))
    return entry[1]


def _structured(content: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise BlockError(f"the model's answer is not JSON ({exc.msg})") from exc
    try:
        errors = sorted(_validator(schema).iter_errors(data), key=str)
    except Unresolvable as exc:
        raise BlockError(
            f"the response format has a $ref that cannot be resolved ({exc})"
        ) from None
    except RecursionError:
        raise BlockError("the response format's $refs refer to each other without end") from None
    if errors:
        raise BlockError(
            f"the model's answer does not match the response format: {errors[0].message}"
        )
    return dict(data)
