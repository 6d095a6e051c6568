"""Property tests of the reference resolver (issue 7, item 3): for any item data, `render`
substitutes each reference of the config once — a whole-field reference keeps its JSON type,
text gets each value as text — and no value is ever read again as a reference, whatever
reference syntax it carries."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.refs import (
    REF_PATTERN,
    MissingReference,
    Reference,
    Scope,
    render,
    stringify,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)
SECRET = "never-substituted-secret-4d2a"


def text_of(tokens: list[str], max_size: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(tokens), max_size=max_size).map("".join)


# Data that carries reference syntax of every shape, naming values that do exist.
REF_LOOKALIKES = ["<secret.key>", "<item.a>", "<item>", "<env.KEY>", "<secret.key", "<<item.a>>"]
DATA_TEXT = text_of(list("ab <>.{}\"'\\$%\n") + REF_LOOKALIKES, 12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | DATA_TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(DATA_TEXT, inner, max_size=3),
    max_leaves=8,
)
FIELDS = ("a", "b", "c")
ITEMS = st.fixed_dictionaries({f: VALUES for f in FIELDS})


def scope_of(item: dict[str, Any]) -> Scope:
    return Scope({"item": item, "secret": {"key": SECRET}, "env": {"KEY": SECRET}})


# Config text: literal text (no reference syntax of its own) and references to the item.
REFERENCE = st.sampled_from([f"<item.{f}>" for f in FIELDS])
CONFIG_TEXT = st.lists(st.one_of(REFERENCE, text_of(list("ab .,:{}\"'\\$%-"), 6)), max_size=5).map(
    "".join
)
CONFIGS = st.recursive(
    CONFIG_TEXT | st.integers() | st.booleans() | st.none(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["x", "y", "<item.a>"]), inner, max_size=3)
    ),
    max_leaves=8,
)


def expected_text(template: str, item: dict[str, Any]) -> Any:
    """The spec, written independently: a template that is exactly one reference is that
    value; otherwise each reference becomes its value as text, in one left-to-right pass."""
    if re.fullmatch(r"<item\.([abc])>", template):
        return item[template[6]]
    out, last = [], 0
    for match in re.finditer(r"<item\.([abc])>", template):
        out += [template[last : match.start()], stringify(item[match.group(1)])]
        last = match.end()
    return "".join(out) + template[last:]


def expected(config: Any, item: dict[str, Any]) -> Any:
    if isinstance(config, str):
        return expected_text(config, item)
    if isinstance(config, dict):
        return {k: expected(v, item) for k, v in config.items()}
    if isinstance(config, list):
        return [expected(v, item) for v in config]
    return config


@PROPERTY_SETTINGS
@given(config=CONFIGS, item=ITEMS)
def test_render_substitutes_every_reference_once(config: Any, item: dict[str, Any]) -> None:
    rendered = render(config, scope_of(item))
    assert rendered == expected(config, item)
    # Reference syntax inside the data stayed data: nothing reached the secret.
    assert SECRET not in json.dumps(rendered, default=str)


@PROPERTY_SETTINGS
@given(item=ITEMS, field=st.sampled_from(FIELDS))
def test_a_whole_reference_keeps_the_value_and_its_type(item: dict[str, Any], field: str) -> None:
    value = render(f"<item.{field}>", scope_of(item))
    assert value == item[field] and type(value) is type(item[field])


@PROPERTY_SETTINGS
@given(
    item=ITEMS,
    lookalike=st.sampled_from(REF_LOOKALIKES),
    around=st.tuples(CONFIG_TEXT, CONFIG_TEXT),
)
def test_a_value_that_looks_like_a_reference_is_inserted_verbatim(
    item: dict[str, Any], lookalike: str, around: tuple[str, str]
) -> None:
    """Rendering is one pass: a value that is itself reference syntax arrives as that text,
    wherever the config places it, never as what it names."""
    scope = scope_of({**item, "b": lookalike})
    assert render("<item.b>", scope) == lookalike
    before, after = (text.replace("<item.b>", "") for text in around)
    rendered = render(f"{before}<item.b>{after}", scope)
    assert lookalike in rendered and SECRET not in rendered


PATH_SEGMENTS = st.lists(
    st.sampled_from(["a", "b", "c", "0", "1", "x", "key", "-", "10"]), min_size=0, max_size=4
)


@PROPERTY_SETTINGS
@given(item=ITEMS, path=PATH_SEGMENTS)
def test_any_path_resolves_or_names_what_is_missing(item: dict[str, Any], path: list[str]) -> None:
    """For any data and any path, resolution returns the value or raises MissingReference
    (which fails the item with its reason) — never KeyError, IndexError or TypeError."""
    reference = Reference("item", tuple(path))
    try:
        value = scope_of(item).resolve(reference)
    except MissingReference as exc:
        assert reference.text in str(exc)
        return
    walked: Any = item
    for segment in path:
        walked = walked[int(segment)] if isinstance(walked, list) else walked[segment]
    assert value is walked


@PROPERTY_SETTINGS
@given(text=DATA_TEXT)
def test_reference_syntax_is_found_exactly_where_the_pattern_says(text: str) -> None:
    """Text with no reference syntax renders to itself without looking anything up."""
    if REF_PATTERN.search(text) is None:
        assert render(text, Scope()) == text
