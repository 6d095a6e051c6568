"""The price table: parsing KLYNTOS_MODEL_PRICES, looking models up, summing stored usage."""

from __future__ import annotations

import pytest

from engine.core.prices import (
    DEFAULT_PRICES,
    FREE,
    MAX_TOKENS,
    Price,
    PriceError,
    PriceTable,
    Tokens,
    parse_prices,
    tally,
)


def test_parses_a_table_in_usd_per_million_tokens() -> None:
    table = parse_prices('{"my-model": {"input": 1.5, "output": 6}}')
    assert table == {"my-model": Price(1.5, 6.0)}
    assert table["my-model"].cost(1_000_000, 500_000) == pytest.approx(4.5)
    assert parse_prices("  ") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpt-4o=1/2", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"m": 1}', "m: must be {'input'"),
        ('{"m": {"input": 1}}', "m: must be {'input'"),
        ('{"m": {"input": 1, "output": 2, "cached": 0.5}}', "m: must be {'input'"),
        ('{"m": {"input": "1", "output": 2}}', "m.input: must be a number"),
        ('{"m": {"input": true, "output": 2}}', "m.input: must be a number"),
        ('{"m": {"input": 1, "output": -2}}', "m.output: must be between 0 and"),
        ('{"m": {"input": 1e9, "output": 2}}', "m.input: must be between 0 and"),
        ('{"m": {"input": NaN, "output": 2}}', "m.input: must be between 0 and"),
        ('{"": {"input": 1, "output": 2}}', "must be 1-200 characters"),
    ],
)
def test_refuses_a_bad_table_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(PriceError, match=message.replace("{", r"\{").replace("(", r"\(")):
        parse_prices(text)


def test_defaults_price_the_common_openai_models_and_their_snapshots() -> None:
    table = PriceTable.build("", simulated=False)
    assert table.price("gpt-4o-mini") == Price(*DEFAULT_PRICES["gpt-4o-mini"])
    # Providers answer with a dated snapshot of the model asked for.
    assert table.price("gpt-4o-mini-2024-07-18") == Price(0.15, 0.6)
    assert table.price("gpt-3.5-turbo-0125") == Price(0.5, 1.5)
    assert table.price("gpt-4o-2024-08-06") == Price(2.5, 10.0)
    # Only a dated suffix: another model that starts with a priced name is not that model.
    assert PriceTable({"gpt-4o": Price(2.5, 10)}).price("gpt-4o-mini") is None
    assert table.price("llama-3-70b") is None
    assert table.cost("llama-3-70b", 10, 10) is None


def test_configured_prices_replace_and_add_to_the_defaults() -> None:
    table = PriceTable.build(
        '{"gpt-4o-mini": {"input": 1, "output": 2}, "llama-3-70b": {"input": 0.5, "output": 0.5}}',
        simulated=False,
    )
    assert table.price("gpt-4o-mini") == Price(1.0, 2.0)
    assert table.price("llama-3-70b") == Price(0.5, 0.5)
    assert table.price("gpt-4o") == Price(2.5, 10.0)


def test_the_simulator_costs_nothing_unless_configured() -> None:
    table = PriceTable.build('{"gpt-4o": {"input": 1, "output": 1}}', simulated=True)
    assert table.price("gpt-4o-mini") == FREE
    assert table.cost("gpt-4o-mini", 1000, 1000) == 0.0
    assert table.price("gpt-4o") == Price(1.0, 1.0)


def test_tally_sums_usage_by_model_and_distrusts_odd_counts() -> None:
    usage = [
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "model": "a"},
        {"prompt_tokens": 1, "completion_tokens": 2, "model": "a"},  # no total: the sum
        {"prompt_tokens": "many", "completion_tokens": -3, "total_tokens": True, "model": "b"},
        {"prompt_tokens": 1e300, "completion_tokens": 1.7, "model": None},
        "not an entry",
    ]
    sums = tally(usage)
    assert sums == {
        "a": Tokens(11, 7, 18, 2),
        "b": Tokens(0, 0, 0, 1),
        "unknown": Tokens(MAX_TOKENS, 1, MAX_TOKENS + 1, 1),
    }
    assert tally("[redacted]") == {}
    tally([{"prompt_tokens": 4, "model": "a"}], sums)
    assert sums["a"] == Tokens(15, 7, 22, 3)
