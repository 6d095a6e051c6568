"""An author's schema is checked against the metaschema once per schema text: the answer is
the same every time, for valid and broken schemas alike, and callers get their own list."""

from __future__ import annotations

from engine.core import schemas
from engine.core.schemas import schema_problems


def test_problems_are_remembered_per_schema_text_and_stay_the_same() -> None:
    broken = {"type": "object", "properties": {"a": {"type": 5}}}
    first = schema_problems(broken)
    assert first and first[0].startswith("not a valid JSON schema")
    first.append("mine")
    hits = schemas._schema_problems_of_text.cache_info().hits
    assert schema_problems(dict(broken)) == first[:-1]  # an equal schema, another object
    assert schemas._schema_problems_of_text.cache_info().hits == hits + 1
    dangling = {"$ref": "#/$defs/missing"}
    assert schema_problems(dangling) == schema_problems(dangling) != []
    assert schema_problems({"type": "object"}) == []
    assert schema_problems([1]) == ["must be a JSON schema object"]
