"""What LLM tokens cost: a price per model (US dollars per million tokens, input and output).

`KLYNTOS_MODEL_PRICES` (JSON: `{"model": {"input": 0.15, "output": 0.6}}`) adds to or replaces
entries of `DEFAULT_PRICES`; a malformed table is refused when the process starts
(`engine/apps.py`), naming the entry. Dollars are worked out when a run is read, from the
token counts its steps stored, so a price configured later prices earlier runs too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# OpenAI's published standard-tier prices (USD per 1M tokens) for its common chat models.
# Cached input tokens are counted at the input price (an upper bound).
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.4),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4": (30.0, 60.0),
    "gpt-3.5-turbo": (0.5, 1.5),
    "o1": (15.0, 60.0),
    "o1-mini": (1.1, 4.4),
    "o3": (2.0, 8.0),
    "o3-mini": (1.1, 4.4),
    "o4-mini": (1.1, 4.4),
}

MAX_ENTRIES = 1000
MAX_MODEL_CHARS = 200
MAX_PRICE = 100_000.0  # USD per 1M tokens: far above any model's, below a typo's
PER_TOKENS = 1_000_000
# A provider answers with a dated snapshot of the model asked for ("gpt-4o-mini-2024-07-18",
# "gpt-3.5-turbo-0125"): priced as its model, and only such suffixes (so a price for
# "gpt-4o" never prices "gpt-4o-mini").
SNAPSHOT = re.compile(r"(.+?)-(\d{4}-\d{2}-\d{2}|\d{4})")


class PriceError(ValueError):
    """A price table that cannot be used; the message names the entry."""


@dataclass(frozen=True, slots=True)
class Price:
    input: float  # USD per 1M prompt tokens
    output: float  # USD per 1M completion tokens

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / PER_TOKENS

    def as_dict(self) -> dict[str, float]:
        return {"input": self.input, "output": self.output}


FREE = Price(0.0, 0.0)


def parse_prices(text: str) -> dict[str, Price]:
    """The configured table; empty text is an empty table. Raises `PriceError`."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PriceError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise PriceError('must be a JSON object: {"model": {"input": 0.15, "output": 0.6}}')
    if len(data) > MAX_ENTRIES:
        raise PriceError(f"{len(data)} models, more than {MAX_ENTRIES}")
    return {_model(name): _price(name, entry) for name, entry in data.items()}


def _model(name: str) -> str:
    if not name.strip() or len(name) > MAX_MODEL_CHARS:
        raise PriceError(f"model name {name[:40]!r} must be 1-{MAX_MODEL_CHARS} characters")
    return name


def _price(name: str, entry: Any) -> Price:
    if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
        raise PriceError(
            f"{name}: must be {{'input': <USD per 1M tokens>, 'output': <USD per 1M tokens>}}"
            f", got {json.dumps(entry)[:80]}"
        )
    values = []
    for side in ("input", "output"):
        value = entry[side]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PriceError(f"{name}.{side}: must be a number (USD per 1M tokens)")
        if not math.isfinite(value) or not 0 <= value <= MAX_PRICE:
            raise PriceError(f"{name}.{side}: must be between 0 and {MAX_PRICE:g}")
        values.append(float(value))
    return Price(*values)


class PriceTable:
    """Prices by model name. `fallback` prices models nobody listed (sandbox mode: zero,
    the simulator bills nothing); without one they are unpriced (None)."""

    def __init__(self, prices: Mapping[str, Price], fallback: Price | None = None) -> None:
        self.prices = dict(prices)
        self.fallback = fallback

    @classmethod
    def build(cls, configured: str, *, simulated: bool) -> PriceTable:
        """The defaults (none when the simulator answers the LLM calls) under the configured
        table."""
        defaults = {} if simulated else {m: Price(*p) for m, p in DEFAULT_PRICES.items()}
        return cls({**defaults, **parse_prices(configured)}, FREE if simulated else None)

    def price(self, model: str) -> Price | None:
        found = self.prices.get(model)
        snapshot = SNAPSHOT.fullmatch(model) if found is None else None
        if snapshot is not None:
            found = self.prices.get(snapshot.group(1))
        return found if found is not None else self.fallback

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = self.price(model)
        return None if price is None else price.cost(prompt_tokens, completion_tokens)


# A token count an upstream reported is trusted up to here (a hostile endpoint's 1e300 would
# turn every sum into infinity); anything but a number counts as 0.
MAX_TOKENS = 10**12
UNKNOWN_MODEL = "unknown"


@dataclass(slots=True)
class Tokens:
    """Token counts of some LLM calls of one model."""

    prompt: int = 0
    completion: int = 0
    total: int = 0
    calls: int = 0

    def add(self, other: Tokens) -> None:
        self.prompt += other.prompt
        self.completion += other.completion
        self.total += other.total
        self.calls += other.calls


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return int(min(max(value, 0), MAX_TOKENS))


def model_name(value: Any) -> str:
    text = value if isinstance(value, str) else UNKNOWN_MODEL if value is None else str(value)
    return text[:MAX_MODEL_CHARS] or UNKNOWN_MODEL


def tally(usage: Any, into: dict[str, Tokens] | None = None) -> dict[str, Tokens]:
    """Tokens by model over a step's stored `usage` (a list of the calls' usage objects, as
    the agent block records them). The SQL in engine/run_costs.py sums the same way."""
    sums = into if into is not None else {}
    for entry in usage if isinstance(usage, list) else ():
        if not isinstance(entry, dict):
            continue
        prompt, completion = (
            _count(entry.get("prompt_tokens")),
            _count(entry.get("completion_tokens")),
        )
        total = entry.get("total_tokens")
        calls = Tokens(
            prompt,
            completion,
            _count(total)
            if isinstance(total, int | float) and not isinstance(total, bool)
            else prompt + completion,
            1,
        )
        sums.setdefault(model_name(entry.get("model")), Tokens()).add(calls)
    return sums
