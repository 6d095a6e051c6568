import pytest

from engine.core.refs import (
    MissingReference,
    Scope,
    find_references,
    render,
    substitute,
    whole_reference,
)


def scope() -> Scope:
    top = Scope(
        {"webhook": {"body": {"leads": [{"id": 1, "name": "Ada"}]}}, "env": {"KEY": "s3cret"}}
    )
    return top.child(
        {"lead": {"id": 7, "name": "Bob", "tags": ["a"], "meta": None}, "loop": {"index": 3}}
    )


def test_whole_field_keeps_json_type() -> None:
    assert render("<lead.id>", scope()) == 7
    assert render("<lead.tags>", scope()) == ["a"]
    assert render("<webhook.body.leads>", scope()) == [{"id": 1, "name": "Ada"}]
    assert render("<lead.meta>", scope()) is None


def test_inside_text_objects_become_json_and_strings_stay() -> None:
    assert render("Lead <lead.name> #<loop.index>", scope()) == "Lead Bob #3"
    assert render("tags=<lead.tags>", scope()) == 'tags=["a"]'
    assert render({"a": ["x <lead.id>"]}, scope()) == {"a": ["x 7"]}


def test_missing_path_names_the_reference() -> None:
    with pytest.raises(MissingReference, match=r"<lead.email>.*no field 'email'"):
        render("<lead.email>", scope())
    with pytest.raises(MissingReference, match=r"<lead.meta.x>.*null"):
        render("x <lead.meta.x>", scope())
    with pytest.raises(MissingReference, match="'nobody' has no value"):
        render("<nobody>", scope())


def test_list_index_and_outer_scope() -> None:
    assert render("<webhook.body.leads.0.name>", scope()) == "Ada"
    assert render("<env.KEY>", scope()) == "s3cret"


def test_substituted_text_is_never_scanned_again() -> None:
    inner = Scope({"env": {"SECRET": "hunter2hunter2"}}).child({"lead": {"msg": "hi <env.SECRET>"}})
    assert render("Message: <lead.msg>", inner) == "Message: hi <env.SECRET>"


def test_reference_syntax() -> None:
    assert [r.text for r in find_references("a <b.c> <img src=x onerror=alert(1)> <d>")] == [
        "<b.c>",
        "<d>",
    ]
    assert whole_reference(" <a.b> ") is not None
    assert whole_reference("x <a.b>") is None


@pytest.mark.parametrize(
    "filler", ["", "x" * 3000]
)  # a text parsed once and remembered; a long one each time
def test_substitution_is_the_same_for_short_and_long_texts_and_their_repeats(filler: str) -> None:
    text = f"<lead.name>{filler} and <lead.name>, <loop.index>!<lead.tags><not a ref>"
    sizes: dict[str, int] = {}
    for _ in range(2):
        assert render(text, scope()) == f'Bob{filler} and Bob, 3!["a"]<not a ref>'
        assert substitute(text, scope(), lambda value, at: f"{at}", sizes) == (
            f"0{filler} and {16 + len(filler)}, {29 + len(filler)}!{42 + len(filler)}<not a ref>"
        )
    assert whole_reference(" <lead.name> ") == whole_reference("<lead.name>") is not None
    assert sizes == {
        "<lead.name>": 2 * (1 + len(str(16 + len(filler)))),
        "<loop.index>": 2 * len(str(29 + len(filler))),
        "<lead.tags>": 2 * len(str(42 + len(filler))),
    }
