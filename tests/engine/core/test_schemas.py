"""An author's schema is checked against the metaschema once per schema text: the answer is
the same every time, for valid and broken schemas alike, and callers get their own list."""

from __future__ import annotations

from engine.core import schemas
from engine.core.schemas import schema_problems, with_defaults


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


LEADS = {
    "type": "object",
    "properties": {
        "leads": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string", "default": ""},
                    "tags": {"type": "array", "default": []},
                    "company": {
                        "type": "object",
                        "properties": {"size": {"type": "integer", "default": 0}},
                    },
                },
            },
        },
        "source": {"type": "string", "default": "webhook"},
    },
}


def test_defaults_fill_missing_fields_at_any_depth_and_leave_the_value_as_it_was() -> None:
    body = {"leads": [{"id": "a"}, {"id": "b", "title": "CTO", "company": {}}]}
    filled = with_defaults(LEADS, body)
    assert filled == {
        "leads": [
            {"id": "a", "title": "", "tags": []},
            {"id": "b", "title": "CTO", "tags": [], "company": {"size": 0}},
        ],
        "source": "webhook",
    }
    assert body == {"leads": [{"id": "a"}, {"id": "b", "title": "CTO", "company": {}}]}
    # Each default is a copy of its own: a block changing one changes no other.
    assert filled["leads"][0]["tags"] is not filled["leads"][1]["tags"]


def test_a_value_with_nothing_to_fill_is_returned_as_it_is() -> None:
    complete = {"id": "a", "title": "x", "tags": [], "company": {"size": 3}}
    body = {"leads": [complete], "source": "api"}
    assert with_defaults(LEADS, body) is body
    no_defaults = {"type": "array", "items": {"properties": {"id": {"type": "string"}}}}
    items = [{}] * 3
    assert with_defaults(no_defaults, items) is items
    # Anything the schema does not describe (or a schema that is not one) passes through.
    assert with_defaults(LEADS, "text") == "text"
    assert with_defaults(True, {"a": 1}) == {"a": 1}
    assert with_defaults({"properties": {"a": {"default": 1}}}, [1, 2]) == [1, 2]
