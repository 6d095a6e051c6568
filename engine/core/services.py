"""What blocks reach the outside world through, built once per run by the host process."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from engine.core.data import DataConnection
from engine.core.outbound import OutboundFactory
from engine.core.result_cache import ResultCache
from engine.core.slots import Slots
from engine.core.step_permits import Durability

log = logging.getLogger(__name__)

# KLYNTOS_AGENT_MAX_PROMPT_BYTES: a prompt past this is refused before the provider is called
# (naming what made it large) instead of the endpoint's bare 413 or context-length error.
DEFAULT_AGENT_MAX_PROMPT_BYTES = 1_000_000


@dataclass
class Services:
    outbound: OutboundFactory
    data: DataConnection | None = None
    openai_api_key: str = ""
    openai_base_url: str = "https://api.openai.com/v1"
    slack_token: str = ""
    slack_base_url: str = "https://slack.com/api/"
    agent_max_prompt_bytes: int = DEFAULT_AGENT_MAX_PROMPT_BYTES
    # Caps held across processes (engine/core/slots.py): with workers, each loop item holds a
    # slot of its loop's key in this run; None inline (the loop's window is the cap).
    slots: Slots | None = None
    run_id: str = ""
    # Where blocks with `cache` keep their outputs (engine/core/result_cache.py); None: off.
    result_cache: ResultCache | None = None
    # The run's store, as the permits a loop's body steps hold until their rows are stored
    # see it, so a crash repeats at most the cap's worth of each block's calls
    # (engine/core/step_permits.py). None: nothing is stored (a run in memory), no permits.
    durability: Durability | None = None
    _openai: dict[str, Any] = field(default_factory=dict)

    def openai(self, api_key: str | None = None) -> Any:
        """One AsyncOpenAI per key, all sharing the factory's HTTP client."""
        key = api_key or self.openai_api_key or "sk-not-configured"
        if key not in self._openai:
            self._openai[key] = self.outbound.openai_client(
                api_key=key, base_url=self.openai_base_url
            )
        return self._openai[key]

    def slack(self, token: str | None = None) -> Any:
        from slack_sdk.web.async_client import AsyncWebClient

        return AsyncWebClient(
            token=token or self.slack_token,
            session=self.outbound.aiohttp_session(),
            base_url=self.outbound.slack_base_url(self.slack_base_url),
            retry_handlers=[],  # the engine is the only layer that retries
        )

    async def aclose(self) -> None:
        if self.result_cache is not None:  # its last outputs written, its connection closed
            try:
                await self.result_cache.aclose()
            except Exception:  # the cache never fails a run, nor keeps the rest open
                log.warning("result cache: could not close", exc_info=True)
        await self.outbound.aclose()
        if self.data is not None:
            await self.data.aclose()
