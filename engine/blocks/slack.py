"""Slack message via chat.postMessage; referenced text is escaped for Slack (& < >).

A message longer than Slack's limit is cut with a visible marker rather than refused: at
the end of a long run, a shortened announcement beats none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

# Imported when the process starts, not by the first run's Slack step (~0.2 s).
import slack_sdk.web.async_client  # noqa: F401
from slack_sdk.errors import SlackApiError

from engine.blocks.base import BaseBlock, config_schema
from engine.core.errors import BlockError, TransientError, is_retryable_status, parse_retry_after
from engine.core.outbound import transport_errors
from engine.core.refs import Scope, stringify, substitute
from engine.core.schemas import JsonSchema, obj
from engine.core.spec import BlockContext
from engine.core.text_controls import without_bidi_controls


def slack_escape(text: str) -> str:
    """A referenced value as Slack text: its markup characters escaped, and its bidi controls
    dropped (engine/core/text_controls.py), so a value can neither link nor reorder a line."""
    text = without_bidi_controls(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Slack's own limit on a message's text (chat.postMessage answers msg_too_long past it).
SLACK_TEXT_LIMIT = 40_000


def render_slack_text(template: str, scope: Scope) -> str:
    """The author's own markup stays; every referenced value is escaped."""
    return substitute(template, scope, lambda value, _: slack_escape(stringify(value)))


def cut_to_limit(text: str, limit: int = SLACK_TEXT_LIMIT) -> str:
    """`text` if it fits, else its head and "… (cut: N characters more)", `limit` in all.

    The cut never splits an escape (`&amp;`) or the author's markup (`<url|label>`): every
    `<` in the text is markup (values arrive escaped), so an unclosed one moves the cut
    before it, as does an `&` that starts an entity the cut would split."""
    if len(text) <= limit:
        return text
    keep = limit - len(_marker(len(text)))
    head = text[:keep]
    opened = head.rfind("<")
    if opened > head.rfind(">"):
        head = head[:opened]
    amp = head.rfind("&", max(0, len(head) - 5))
    if amp >= 0 and ";" not in head[amp:]:
        head = head[:amp]
    return head + _marker(len(text) - len(head))


def _marker(cut: int) -> str:
    return f"… (cut: {cut} characters more)"


class SlackBlock(BaseBlock):
    type = "slack"
    label = "Slack message"
    description = "Posts a message to a Slack channel."
    icon = "message"
    test_effect = "posts the message to the channel for real"
    raw_fields = frozenset({"text"})
    size_limited_fields = frozenset({"text"})
    config_schema = config_schema(
        {
            "channel": {"type": "string", "minLength": 1, "title": "Channel"},
            "text": {"type": "string", "minLength": 1, "title": "Message"},
            "token": {"type": "string", "title": "Bot token (e.g. <env.SLACK_BOT_TOKEN>)"},
        },
        required=["channel", "text"],
        retry=True,
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        return obj(
            {
                "ok": {"type": "boolean"},
                "channel": {"type": "string"},
                "ts": {"type": "string"},
                "text": {"type": "string"},
            }
        )

    def origin(self, config: Mapping[str, Any], services: Any) -> str | None:
        return str(services.slack_base_url)

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        text = cut_to_limit(render_slack_text(ctx.raw_config["text"], ctx.scope))
        client = ctx.services.slack(ctx.config.get("token") or None)
        provider = ctx.services.outbound.providers.call(
            urlsplit(ctx.services.slack_base_url).hostname or ""
        )
        async with provider:
            try:
                with transport_errors("Slack unreachable"):
                    response = await client.chat_postMessage(
                        channel=ctx.config["channel"], text=text
                    )
                provider.observe(response.status_code, response.headers)
            except SlackApiError as exc:
                status = exc.response.status_code
                provider.observe(status, exc.response.headers)
                error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
                message = f"Slack returned {status}: {error or exc.response.data}"
                if is_retryable_status(status):
                    retry_after = parse_retry_after(
                        exc.response.headers.get("Retry-After")
                        or exc.response.headers.get("retry-after")
                    )
                    raise TransientError(message, retry_after=retry_after, status=status) from exc
                raise BlockError(message) from exc
        return {
            "ok": bool(response.get("ok")),
            "channel": response.get("channel"),
            "ts": response.get("ts"),
            "text": text,
        }
