"""What of a loop's `results` later blocks can read, found from the graph before it runs.

A loop hands downstream `{results, count, succeeded, failed}` plus its aggregations. Kept
whole, `results` holds every item's full outputs until the run ends (41 MB for 100,000 HTTP
calls). Most graphs read far less: the template's aggregations read one score and the item
per result; many graphs read nothing of it. So the loop keeps, per succeeded item, only the
parts some reader can reach (`prune`), and nothing at all when nobody reads `results`.

Readers are the references of blocks outside the loop (`<loop.results.0.outputs.x>`,
`<loop>`) and the loop's own aggregations, JMESPath over its output. An aggregation is read
by an abstract interpreter over the expression's tree: each value is tracked as the paths of
the output it comes from (`Origin`), and whatever is used as a value (compared, summed,
returned, tested for truth) is needed whole at those paths. Anything it does not model
needs the whole output, so a reader always sees the same answer as with `results` whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jmespath.parser import ParsedResult

from engine.core.graph import Block, Graph
from engine.core.refs import find_references, iter_strings

ANY = "*"  # a path step: any element of a list
# More digit segments than this in one reference (each a list index or a key) is read as
# needing the whole output rather than 2**n paths.
MAX_DIGIT_SEGMENTS = 4
# The root of an aggregation's data is the loop's output.
RESULTS = "results"


@dataclass
class Need:
    """A tree over a value: which parts of it some reader can reach."""

    whole: bool = False  # everything under here, as it is
    every: bool = False  # every key or element (its length or its keys are read)
    fields: dict[str, Need] = field(default_factory=dict)
    each: Need | None = None  # the elements of a list

    def at(self, path: Iterable[str]) -> Need:
        node = self
        for step in path:
            if step == ANY:
                if node.each is None:
                    node.each = Need()
                node = node.each
            else:
                node = node.fields.setdefault(step, Need())
        return node


def merge(into: Need, need: Need) -> None:
    """Add `need` to `into` (copying: needs are shared between loops' caches)."""
    into.whole |= need.whole
    into.every |= need.every
    for key, child in need.fields.items():
        merge(into.fields.setdefault(key, Need()), child)
    if need.each is not None:
        if into.each is None:
            into.each = Need()
        merge(into.each, need.each)


def prune(value: Any, need: Need | None) -> Any:
    """`value` with only what `need` reaches: unread keys dropped, unread values None."""
    if need is None:
        return None
    if need.whole:
        return value
    if isinstance(value, dict):
        fields = need.fields
        keys = value.keys() if need.every else [k for k in fields if k in value]
        return {k: prune(value[k], fields.get(k)) for k in keys}
    if isinstance(value, list):
        return [prune(element, need.each) for element in value]
    return value


Origin = tuple[tuple[str, ...], int]  # a path of the root, and how many lists wrap it


class _Reader:
    """Needs of one expression over the loop's output (an abstract JMESPath interpreter)."""

    def __init__(self, root: Need) -> None:
        self.root = root

    def need(self, origins: Iterable[Origin]) -> None:
        for path, _ in origins:
            self.root.at(path).whole = True

    def everything(self) -> set[Origin]:
        self.root.whole = True
        return set()

    def visit(self, node: Any, current: set[Origin]) -> set[Origin]:
        method = getattr(self, "visit_" + str(node.get("type")), None)
        if method is None:  # a node this reader does not model reads everything
            return self.everything()
        found: set[Origin] = method(node, current)
        for path, _ in found:  # kept, so that null stays null (projections skip nulls)
            self.root.at(path)
        return found

    @staticmethod
    def elements(origins: Iterable[Origin]) -> set[Origin]:
        return {(p, d - 1) if d else ((*p, ANY), 0) for p, d in origins}

    @staticmethod
    def listed(origins: Iterable[Origin]) -> set[Origin]:
        """A new list made of these values."""
        return {(p, d + 1) for p, d in origins}

    def children(self, node: Any) -> list[Any]:
        return list(node.get("children") or [])

    def visit_identity(self, node: Any, current: set[Origin]) -> set[Origin]:
        return current

    visit_current = visit_identity

    def visit_literal(self, node: Any, current: set[Origin]) -> set[Origin]:
        return set()

    def visit_field(self, node: Any, current: set[Origin]) -> set[Origin]:
        # A field of a list is null: nothing of it is read.
        return {((*p, str(node["value"])), 0) for p, d in current if not d}

    def visit_subexpression(self, node: Any, current: set[Origin]) -> set[Origin]:
        for child in self.children(node):
            current = self.visit(child, current)
        return current

    visit_index_expression = visit_subexpression

    def visit_index(self, node: Any, current: set[Origin]) -> set[Origin]:
        return self.elements(current)

    def visit_slice(self, node: Any, current: set[Origin]) -> set[Origin]:
        return self.listed(self.elements(current))

    def visit_pipe(self, node: Any, current: set[Origin]) -> set[Origin]:
        left, right = self.children(node)
        return self.visit(right, self.visit(left, current))

    def visit_projection(self, node: Any, current: set[Origin]) -> set[Origin]:
        left, right = self.children(node)
        each = self.elements(self.visit(left, current))
        return self.listed(self.visit(right, each))

    def visit_filter_projection(self, node: Any, current: set[Origin]) -> set[Origin]:
        left, right, condition = self.children(node)
        each = self.elements(self.visit(left, current))
        self.need(self.visit(condition, each))  # tested for truth: read whole
        return self.listed(self.visit(right, each))

    def visit_value_projection(self, node: Any, current: set[Origin]) -> set[Origin]:
        left, right = self.children(node)
        self.need(self.visit(left, current))  # an object's values: read it whole
        self.visit(right, set())
        return set()

    def visit_flatten(self, node: Any, current: set[Origin]) -> set[Origin]:
        (child,) = self.children(node)
        found: set[Origin] = set()
        for path, depth in self.visit(child, current):
            if depth == 0:
                found |= {((*path, ANY), 1), ((*path, ANY, ANY), 1)}
            elif depth == 1:
                found |= {(path, 1), ((*path, ANY), 1)}
            else:
                found.add((path, depth - 1))
        return found

    def visit_comparator(self, node: Any, current: set[Origin]) -> set[Origin]:
        for child in self.children(node):
            self.need(self.visit(child, current))
        return set()

    def visit_not_expression(self, node: Any, current: set[Origin]) -> set[Origin]:
        return self.visit_comparator(node, current)

    def visit_or_expression(self, node: Any, current: set[Origin]) -> set[Origin]:
        left, right = self.children(node)
        tested = self.visit(left, current)
        self.need(tested)  # its truth decides: read whole
        return tested | self.visit(right, current)

    visit_and_expression = visit_or_expression

    def visit_multi_select_list(self, node: Any, current: set[Origin]) -> set[Origin]:
        for child in self.children(node):
            if child is not None and child.get("type") == "key_val_pair":
                child = self.children(child)[0]
            self.need(self.visit(child, current))
        return set()

    visit_multi_select_dict = visit_multi_select_list

    def visit_function_expression(self, node: Any, current: set[Origin]) -> set[Origin]:
        name = str(node["value"])
        args = self.children(node)
        exprefs = [a for a in args if a.get("type") == "expref"]
        values = [self.visit(a, current) for a in args if a.get("type") != "expref"]
        if name in {"sort_by", "max_by", "min_by"} and len(exprefs) == 1 and len(values) == 1:
            each = self.elements(values[0])
            self.need(self.visit(self.children(exprefs[0])[0], each))  # the keys compared
            return each if name != "sort_by" else self.listed(each)
        if name == "map" and len(exprefs) == 1 and len(values) == 1:
            each = self.elements(values[0])
            return self.listed(self.visit(self.children(exprefs[0])[0], each))
        if exprefs:
            return self.everything()
        if name == "reverse" and len(values) == 1:
            return self.listed(self.elements(values[0]))
        if name == "not_null":
            return set().union(*values)
        if name == "length" and len(values) == 1:
            for path, depth in values[0]:
                if not depth:  # a list's length needs its elements, not what is in them
                    self.root.at(path).every = True
            return set()
        for value in values:  # every other function reads its arguments whole
            self.need(value)
        return set()


def expression_needs(parsed: ParsedResult, root: Need) -> None:
    """Add to `root` (a need over the loop's output) what the expression reads of it."""
    reader = _Reader(root)
    reader.need(reader.visit(parsed.parsed, {((), 0)}))


def reference_needs(path: tuple[str, ...], root: Need) -> None:
    """Add what a reference `<loop.path>` reads. A digit segment is a list index or a key."""
    digits = [i for i, step in enumerate(path) if step.isdigit()]
    if len(digits) > MAX_DIGIT_SEGMENTS:
        root.whole = True
        return
    for choice in itertools.product((False, True), repeat=len(digits)):
        steps = list(path)
        for index, as_element in zip(digits, choice, strict=True):
            if as_element:
                steps[index] = ANY
        root.at(steps).whole = True


def results_need(
    graph: Graph,
    loop: Block,
    aggregations: Mapping[str, ParsedResult],
    enclosing: Need | None = None,
) -> Need | None:
    """What each `results` entry must keep: a need (whole when read whole), None when no
    reader reads `results` at all. `enclosing` is what the enclosing loop's entries keep:
    its readers reach this loop's output through `outputs.<this loop>`."""
    root = Need()
    if enclosing is not None:
        outputs = enclosing.fields.get("outputs")
        if enclosing.whole or (outputs is not None and outputs.whole):
            root.whole = True
        elif outputs is not None and loop.name in outputs.fields:
            merge(root, outputs.fields[loop.name])
    for block in graph.blocks:
        if block.id == loop.id or any(a.id == loop.id for a in graph.ancestors(block.id)):
            continue  # the loop's own config and body: there its name is the iteration
        for _, text in iter_strings(block.config):
            for reference in find_references(text):
                if reference.root == loop.name:
                    reference_needs(reference.path, root)
    for parsed in aggregations.values():
        expression_needs(parsed, root)
    if root.whole:
        return Need(whole=True)
    results = root.fields.get(RESULTS)
    if results is None or results.whole:
        return results
    entry = results.each  # None: only its length is read, so its elements stay as None
    if entry is not None and "item" in entry.fields:
        # The loop's input element lives as long as the input does: kept as it is.
        entry.fields["item"].whole = True
    return entry
