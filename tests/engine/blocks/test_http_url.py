"""The HTTP block's URL template is read once; each item's values land encoded where they go."""

from typing import Any
from urllib.parse import quote

import pytest

from engine.blocks.http import _url_shape, render_url
from engine.core.errors import BlockError
from engine.core.refs import Scope
from engine.core.spec import BlockContext


def context(values: dict[str, Any]) -> BlockContext:
    return BlockContext("http", "http", {}, {}, Scope(values), None, 1)


def test_a_url_template_is_read_once_and_each_item_renders_its_own_values() -> None:
    template = "https://<lead.host>/v2/find?domain=<lead.domain>&n=<lead.n>"
    first = render_url(template, context({"lead": {"host": "a.example", "domain": "x y", "n": 1}}))
    before = _url_shape.cache_info()
    second = render_url(template, context({"lead": {"host": "b.example", "domain": "&", "n": 2}}))
    after = _url_shape.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
    assert first == "https://a.example/v2/find?domain=x%20y&n=1"
    assert second == "https://b.example/v2/find?domain=%26&n=2"
    with pytest.raises(BlockError, match="not a host name"):
        render_url(template, context({"lead": {"host": "a.example/x", "domain": "", "n": 3}}))


def test_a_url_that_is_one_reference_is_that_value_as_it_is() -> None:
    url = "https://example.com/a b?c=<d>"
    assert render_url("<env.URL>", context({"env": {"URL": url}})) == url
    assert render_url("<env.URL>", context({"env": {"URL": url + "2"}})) == url + "2"


@pytest.mark.parametrize(
    "value",
    ["d00151.example", "A-Z_a-z.0~9", "", "x y", "é", "a/b", "50%", "a+b", "ü.example", "\n"]
    + [chr(c) for c in range(0x20, 0x7F)],
)
def test_a_value_in_the_path_or_query_is_encoded_as_quote_encodes_it(value: str) -> None:
    """Values already safe skip `quote`: the URL is the same either way."""
    url = render_url("https://api.example/find?q=<lead.v>", context({"lead": {"v": value}}))
    assert url == "https://api.example/find?q=" + quote(value, safe="")
