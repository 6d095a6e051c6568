"""The pure answer functions: deterministic, schema-valid, and shaped like the providers."""

from __future__ import annotations

import json
import re

import jsonschema

from simulator import answers


def lead_request(text: str, schema: dict) -> dict:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You qualify sales leads."},
            {"role": "user", "content": text},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "lead", "schema": schema},
        },
    }


def test_schema_answers_are_valid_and_deterministic(lead_schema: dict) -> None:
    scores, tiers, sizes = set(), set(), set()
    for i in range(200):
        request = lead_request(f"Lead number {i} from acme{i}.com", lead_schema)
        body = answers.chat_completion(request)
        assert body == answers.chat_completion(json.loads(json.dumps(request)))
        value = json.loads(body["choices"][0]["message"]["content"])
        jsonschema.validate(value, lead_schema)
        assert set(value) == set(lead_schema["properties"])
        scores.add(value["qualification_score"])
        tiers.add(value["tier"])
        sizes.add(len(value["talking_points"]))
    # Bounds are honoured and the whole range is actually used.
    assert scores == set(range(1, 11))
    assert tiers == {"hot", "warm", "cold"}
    assert sizes == {1, 2, 3}


def test_property_values_depend_only_on_seed_and_name(lead_schema: dict) -> None:
    request = lead_request("same lead", lead_schema)
    base = json.loads(answers.chat_content(request))
    other = json.loads(answers.chat_content(lead_request("another lead", lead_schema)))
    assert base != other
    seed = answers.chat_seed(request)
    assert base["qualification_score"] == 1 + answers._hash_int(seed, "qualification_score") % 10


def test_completion_envelope_and_usage(lead_schema: dict) -> None:
    request = lead_request("Jane from Acme wants pricing", lead_schema)
    body = answers.chat_completion(request)
    assert body["object"] == "chat.completion"
    assert body["created"] == answers.CREATED
    assert body["model"] == "gpt-4o-mini"
    assert body["id"] == "chatcmpl-sim" + answers.chat_seed(request)[:24]
    choice = body["choices"][0]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    usage = body["usage"]
    assert usage["prompt_tokens"] == 4 + 5  # words in the system + user messages
    assert usage["completion_tokens"] == len(choice["message"]["content"].split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_plain_text_answer_quotes_hash_and_prompt() -> None:
    long_prompt = "Tell me about Acme Corp, " + "which sells anvils to coyotes " * 10
    request = {"model": "m", "messages": [{"role": "user", "content": long_prompt}]}
    content = answers.chat_content(request)
    seed = answers.chat_seed(request)
    assert content.startswith(f"Summary ({seed[:6]}): ")
    assert long_prompt[:80] in content
    assert long_prompt[:81] not in content
    assert content == answers.chat_content(request)
    # The seed covers model and response_format too.
    assert answers.chat_seed({**request, "model": "other"}) != seed
    assert answers.chat_seed({**request, "response_format": {"type": "text"}}) != seed


def test_content_parts_count_as_text() -> None:
    request = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "alpha beta"}]}],
    }
    assert answers.prompt_text(request) == "alpha beta"
    assert answers.chat_completion(request)["usage"]["prompt_tokens"] == 2


def test_schema_features_refs_nullable_bounds_formats() -> None:
    schema = {
        "$defs": {"Point": {"type": "object", "properties": {"label": {"type": "string"}}}},
        "type": "object",
        "properties": {
            "point": {"$ref": "#/$defs/Point"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 5, "maximum": 6}]},
            "nullable": {"type": ["string", "null"], "maxLength": 4},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "negative": {"type": "integer", "maximum": -3},
            "email": {"type": "string", "format": "email"},
            "website": {"type": "string", "format": "uri"},
            "padded": {"type": "string", "minLength": 40},
            "fixed": {"const": "yes"},
            "pair": {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "maxItems": 2},
        },
    }
    for i in range(50):
        value = answers.schema_value(schema, f"seed-{i}")
        jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
        assert set(value) == set(schema["properties"])
        assert re.fullmatch(r"[a-z]+\.[0-9a-f]{6}@example\.com", value["email"])


def test_company() -> None:
    company = answers.company("acme.com")
    digest = answers.sha256_hex("acme.com")
    assert company["name"] == "Acme"
    assert company["domain"] == "acme.com"
    assert company["metrics"]["employees"] == 10 + int(digest[:8], 16) % 5000
    assert company["metrics"]["estimatedAnnualRevenue"] in answers.REVENUE_BANDS
    assert company["category"]["industry"] in answers.INDUSTRIES
    assert answers.company("globex.io")["name"] == "Globex"
    assert company == answers.company("acme.com")


def test_person() -> None:
    email = "Jane.Doe@acme.com"
    person = answers.person(email)
    digest = answers.sha256_hex(email)
    assert person["email"] == email
    assert person["profile_url"] == f"https://www.linkedin.com/in/jane-doe-{digest[:6]}"
    assert person["headline"].endswith(" at Acme")
    assert person == answers.person(email)


def test_slack_post() -> None:
    assert answers.slack_post("#sales-leads", "hi", 3) == {
        "ok": True,
        "channel": "#sales-leads",
        "ts": "1700000003.000100",
        "message": {"text": "hi", "type": "message"},
    }
