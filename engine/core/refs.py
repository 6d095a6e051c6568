"""References: `<name.path.to.field>` inside block config, resolved in exactly one place.

A reference that is a whole field keeps its JSON type; inside text, strings are inserted as
they are and everything else as JSON. Substitution happens once: text that arrives through a
reference is data and is never scanned for references again.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.sizes import text_bytes

REF_PATTERN = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_\-]+)*)>")


@dataclass(frozen=True, slots=True)
class Reference:
    root: str
    path: tuple[str, ...]

    @property
    def text(self) -> str:
        return "<" + ".".join((self.root, *self.path)) + ">"

    @property
    def dotted(self) -> str:
        return ".".join((self.root, *self.path))


class MissingReference(LookupError):
    """A reference whose value is not there at run time; fails the item that needed it."""

    def __init__(self, reference: Reference, detail: str) -> None:
        self.reference = reference
        super().__init__(f"reference {reference.text}: {detail}")


def _from_match(match: re.Match[str]) -> Reference:
    path = tuple(part for part in match.group(2).split(".") if part)
    return Reference(match.group(1), path)


def find_references(text: str) -> list[Reference]:
    return [_from_match(m) for m in REF_PATTERN.finditer(text)]


def whole_reference(text: str) -> Reference | None:
    """The reference if `text` is exactly one reference (it then keeps its JSON type)."""
    if len(text) <= _CACHED_TEXT:
        return _whole_cached(text)
    return _whole(text)


def _whole(text: str) -> Reference | None:
    match = REF_PATTERN.fullmatch(text.strip())
    return _from_match(match) if match else None


# A config's texts are rendered once per item, the same few thousand times over: each is
# parsed once (up to this many characters; longer ones, like a big prompt, every time).
_CACHED_TEXT = 2048
_whole_cached = functools.lru_cache(maxsize=4096)(_whole)

# A text as its literal runs (one more than its references) and its references with where
# each starts.
_Template = tuple[tuple[str, ...], tuple[tuple[Reference, int], ...]]


def _parse(text: str) -> _Template:
    literals, references, end = [], [], 0
    for match in REF_PATTERN.finditer(text):
        literals.append(text[end : match.start()])
        references.append((_from_match(match), match.start()))
        end = match.end()
    literals.append(text[end:])
    return tuple(literals), tuple(references)


_parse_cached = functools.lru_cache(maxsize=4096)(_parse)


def _template(text: str) -> _Template:
    return _parse_cached(text) if len(text) <= _CACHED_TEXT else _parse(text)


def iter_strings(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string inside a config value, with the path of keys/indexes that leads to it."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_strings(item, (*path, str(index)))


class Scope:
    """Names visible to a block at run time, layered: run → loop item → nested item."""

    __slots__ = ("_values", "_parent")

    def __init__(self, values: Mapping[str, Any] | None = None, parent: Scope | None = None):
        self._values: dict[str, Any] = dict(values or {})
        self._parent = parent

    def child(self, values: Mapping[str, Any]) -> Scope:
        return Scope(values, self)

    def set(self, name: str, value: Any) -> None:
        self._values[name] = value

    def lookup(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope._values:
                return scope._values[name]
            scope = scope._parent
        raise KeyError(name)

    def resolve(self, reference: Reference) -> Any:
        try:
            value = self.lookup(reference.root)
        except KeyError:
            raise MissingReference(reference, f"'{reference.root}' has no value here") from None
        for depth, segment in enumerate(reference.path):
            value = _step(value, segment, reference, depth)
        return value


def _step(value: Any, segment: str, reference: Reference, depth: int) -> Any:
    """`value`'s field or item `segment`, the `depth`-th of `reference`'s path (what was
    walked before it is named only in an error: every item resolves its references)."""
    if isinstance(value, Mapping):
        if segment in value:
            return value[segment]
        raise MissingReference(reference, f"'{_walked(reference, depth)}' has no field '{segment}'")
    if isinstance(value, list):
        if segment.isdigit() and int(segment) < len(value):
            return value[int(segment)]
        raise MissingReference(reference, f"'{_walked(reference, depth)}' has no item '{segment}'")
    kind = "null" if value is None else type(value).__name__
    raise MissingReference(
        reference, f"'{_walked(reference, depth)}' is {kind}, it has no field '{segment}'"
    )


def _walked(reference: Reference, depth: int) -> str:
    return ".".join((reference.root, *reference.path[:depth]))


def stringify(value: Any) -> str:
    """How a value reads inside text: strings as they are, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def substitute(
    text: str,
    scope: Scope,
    encode: Callable[[Any, int], str],
    sizes: dict[str, int] | None = None,
) -> str:
    """Replace each reference in text by `encode(value, position)`: how a sink (URL, Slack,
    SQL literal) writes a value into its own language.

    `sizes`, when given, gets the UTF-8 bytes each reference wrote (keyed by its text,
    summed over repeats): a size-limited sink names what made its text large from the
    values as they were substituted, never by resolving them again."""
    literals, references = _template(text)
    if not references:
        return text
    out = [literals[0]]
    for (reference, start), literal in zip(references, literals[1:], strict=True):
        encoded = encode(scope.resolve(reference), start)
        if sizes is not None:
            sizes[reference.text] = sizes.get(reference.text, 0) + text_bytes(encoded)
        out.append(encoded)
        out.append(literal)
    return "".join(out)


def render_text(text: str, scope: Scope) -> Any:
    if "<" not in text:  # no reference in it (most config values: a method, a header)
        return text
    whole = whole_reference(text)
    if whole is not None and text.strip() == text:
        return scope.resolve(whole)
    return substitute(text, scope, lambda value, _: stringify(value))


def render(value: Any, scope: Scope) -> Any:
    """Substitute every reference in a config value (recursively), once."""
    if isinstance(value, str):
        return render_text(value, scope)
    if isinstance(value, Mapping):
        return {key: render(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, scope) for item in value]
    return value
