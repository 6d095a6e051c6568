"""Pure, deterministic provider answers.

Everything here is a function of its arguments only (no clock, no randomness, no I/O), so
tests and benchmarks can import these functions and recompute every answer the simulator
served.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

# A fixed timestamp: a real clock would make responses unrepeatable.
CREATED = 1700000000
SLACK_TS_BASE = 1700000000

REVENUE_BANDS: tuple[str, ...] = (
    "$0-$1M",
    "$1M-$10M",
    "$10M-$50M",
    "$50M-$100M",
    "$100M-$250M",
    "$250M-$1B",
    "$1B-$10B",
)
INDUSTRIES: tuple[str, ...] = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Logistics",
    "Education",
    "Media",
    "Energy",
    "Professional Services",
)
_TITLES = (
    "Head of Growth",
    "VP Sales",
    "Founder & CEO",
    "Director of Operations",
    "Marketing Manager",
    "Chief Technology Officer",
    "Account Executive",
    "Product Lead",
)
_ADJECTIVES = (
    "steady",
    "bright",
    "northern",
    "clear",
    "rapid",
    "quiet",
    "bold",
    "solid",
    "agile",
    "lean",
    "vivid",
    "prime",
)
_NOUNS = (
    "harbor",
    "signal",
    "pipeline",
    "summit",
    "ledger",
    "compass",
    "beacon",
    "orchard",
    "bridge",
    "engine",
    "meadow",
    "anchor",
)
_NEXT_STEPS = (
    "book a discovery call",
    "send a tailored case study",
    "loop in a solutions engineer",
    "nurture with the monthly newsletter",
    "offer a product trial",
)
# Guards against recursive schemas ($ref cycles) producing infinite output.
_MAX_DEPTH = 8


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal inputs always hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- chat


def content_text(content: Any) -> str:
    """Text of a message `content`: a string, or a list of parts like {"type":"text",...}."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return str(content)


# Prompt tokens one image costs (OpenAI's flat price for a low-detail image).
IMAGE_TOKENS = 85
IMAGE_URL_PREFIXES = ("https://", "http://", "data:image/")


def image_urls(request: Mapping[str, Any]) -> list[str]:
    """The URL of every `image_url` content part, in message order (invalid ones included)."""
    found: list[str] = []
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, Mapping) and part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, Mapping) else image
                found.append(url if isinstance(url, str) else "")
    return found


def invalid_image(request: Mapping[str, Any]) -> str | None:
    """What is wrong with the request's first unusable image part, as OpenAI words it."""
    for url in image_urls(request):
        if not url.startswith(IMAGE_URL_PREFIXES):
            return f"Invalid image URL: {url[:80]!r}. Expected a URL or a base64 data URL."
    return None


def message_texts(messages: Iterable[Any]) -> list[str]:
    return [content_text(m.get("content")) for m in messages if isinstance(m, Mapping)]


def prompt_text(request: Mapping[str, Any]) -> str:
    """All message contents joined with newlines (what `prompt_contains` matches against)."""
    messages = request.get("messages")
    return "\n".join(message_texts(messages)) if isinstance(messages, list) else ""


def chat_seed(request: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of (model, messages, response_format)."""
    key = {
        "model": request.get("model"),
        "messages": request.get("messages"),
        "response_format": request.get("response_format"),
    }
    return sha256_hex(canonical_json(key))


def _word_count(text: str) -> int:
    return len(text.split())


def chat_completion(request: Mapping[str, Any]) -> dict[str, Any]:
    """A full OpenAI Chat Completions response body for `request` (a parsed request body)."""
    seed = chat_seed(request)
    content = chat_content(request, seed)
    messages = request.get("messages")
    prompt_tokens = sum(_word_count(t) for t in message_texts(messages or []))
    prompt_tokens += IMAGE_TOKENS * len(image_urls(request))
    completion_tokens = _word_count(content)
    return {
        "id": f"chatcmpl-sim{seed[:24]}",
        "object": "chat.completion",
        "created": CREATED,
        "model": request.get("model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_klyntos_sim",
    }


def chat_content(request: Mapping[str, Any], seed: str | None = None) -> str:
    """The assistant message content alone (JSON text when a schema was requested)."""
    seed = seed or chat_seed(request)
    response_format = request.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            value = schema_value(schema or {"type": "object"}, seed)
            return json.dumps(value, ensure_ascii=False)
        if kind == "json_object":
            # JSON mode has no schema: any deterministic object is a faithful answer.
            return json.dumps(
                {"summary": f"Summary ({seed[:6]})", "answer": _phrase(seed, "answer")},
                ensure_ascii=False,
            )
    return _plain_text(request, seed)


def _last_user_text(request: Mapping[str, Any]) -> str:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def describe_image(url: str) -> str:
    """A deterministic caption of the image at `url` (a function of the URL alone)."""
    seed = sha256_hex(url)
    return (
        f"a {_pick(_ADJECTIVES, seed, 'look')} {_pick(_NOUNS, seed, 'subject')} "
        f"({_hash_int(seed, 'w') % 3000 + 200}x{_hash_int(seed, 'h') % 3000 + 200})"
    )


def _plain_text(request: Mapping[str, Any], seed: str) -> str:
    snippet = " ".join(_last_user_text(request).split())[:80]
    confidence = 1 + _hash_int(seed, "confidence") % 10
    step = _pick(_NEXT_STEPS, seed, "step")
    images = image_urls(request)
    if images:
        seen = "; ".join(f"image {i + 1} shows {describe_image(u)}" for i, u in enumerate(images))
        return f'Summary ({seed[:6]}): For "{snippet}": {seen}. Confidence is {confidence}/10.'
    return (
        f'Summary ({seed[:6]}): The request about "{snippet}" was reviewed. '
        f"Key point: {_phrase(seed, 'point')}. "
        f"Recommended next step: {step}. Confidence is {confidence}/10."
    )


# ------------------------------------------------------------ schema-driven values


def _hash_int(seed: str, path: str) -> int:
    return int(sha256_hex(f"{seed}|{path}")[:12], 16)


def _pick(options: tuple[Any, ...] | list[Any], seed: str, path: str) -> Any:
    return options[_hash_int(seed, path) % len(options)]


def _phrase(seed: str, path: str) -> str:
    digest = sha256_hex(f"{seed}|{path}|phrase")
    adjective = _ADJECTIVES[int(digest[:4], 16) % len(_ADJECTIVES)]
    noun = _NOUNS[int(digest[4:8], 16) % len(_NOUNS)]
    return f"{adjective.capitalize()} {noun} {digest[8:12]}"


def schema_value(schema: Mapping[str, Any], seed: str) -> Any:
    """A value valid against `schema` (a JSON Schema subset), derived from `seed`.

    Each property's value depends only on the seed and its path (e.g. `lead.score`), so
    adding a property does not change the others.
    """
    return _value(schema, seed, "", root=schema, depth=0)


def _resolve_ref(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for token in ref.lstrip("#").strip("/").split("/"):
        if not token:
            continue
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or token not in node:
            return {}
        node = node[token]
    return node if isinstance(node, Mapping) else {}


def _normalise(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow $ref, pick a non-null anyOf/oneOf branch, and merge allOf."""
    for _ in range(_MAX_DEPTH):
        if "$ref" in schema:
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**_resolve_ref(str(schema["$ref"]), root), **extra}
            continue
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                non_null = [
                    o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")
                ]
                chosen = (non_null or options)[0]
                rest = {k: v for k, v in schema.items() if k != key}
                schema = {**rest, **chosen}
                break
        else:
            all_of = schema.get("allOf")
            if isinstance(all_of, list) and all_of:
                merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
                for part in all_of:
                    if isinstance(part, Mapping):
                        part = _normalise(part, root)
                        props = {**merged.get("properties", {}), **part.get("properties", {})}
                        merged = {**merged, **part}
                        if props:
                            merged["properties"] = props
                schema = merged
                continue
            return schema
    return schema


def _schema_type(schema: Mapping[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        non_null = [t for t in declared if t != "null"]
        declared = non_null[0] if non_null else "null"
    if isinstance(declared, str):
        return declared
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _value(schema: Any, seed: str, path: str, *, root: Mapping[str, Any], depth: int) -> Any:
    if not isinstance(schema, Mapping):
        return _phrase(seed, path)
    schema = _normalise(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return _pick(enum, seed, path)
    kind = _schema_type(schema)
    if kind == "object":
        if depth >= _MAX_DEPTH:
            return {}
        properties = schema.get("properties") or {}
        return {
            name: _value(sub, seed, f"{path}.{name}" if path else name, root=root, depth=depth + 1)
            for name, sub in properties.items()
        }
    if kind == "array":
        return _array(schema, seed, path, root=root, depth=depth)
    if kind == "integer":
        return _integer(schema, seed, path)
    if kind == "number":
        return _number(schema, seed, path)
    if kind == "boolean":
        return _hash_int(seed, path) % 2 == 1
    if kind == "null":
        return None
    return _string(schema, seed, path)


def _array(
    schema: Mapping[str, Any], seed: str, path: str, *, root: Mapping[str, Any], depth: int
) -> list[Any]:
    if depth >= _MAX_DEPTH:
        return []
    lo = max(1, int(schema.get("minItems", 1)))
    hi = min(3, int(schema["maxItems"])) if "maxItems" in schema else 3
    hi = max(hi, lo)
    if schema.get("maxItems") == 0:
        return []
    count = lo + _hash_int(seed, f"{path}#count") % (hi - lo + 1)
    items = schema.get("items", {})
    result: list[Any] = []
    for index in range(count):
        item = _value(items, seed, f"{path}[{index}]", root=root, depth=depth + 1)
        if schema.get("uniqueItems") and item in result and len(result) >= lo:
            continue
        result.append(item)
    return result


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None, bool, bool]:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    lo_excl = hi_excl = False
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    # Draft-4 spelling: a boolean flag that makes minimum/maximum exclusive.
    if ex_lo is True:
        lo_excl = lo is not None
    if ex_hi is True:
        hi_excl = hi is not None
    if isinstance(ex_lo, int | float) and not isinstance(ex_lo, bool):
        if lo is None or ex_lo >= lo:
            lo, lo_excl = ex_lo, True
    if isinstance(ex_hi, int | float) and not isinstance(ex_hi, bool):
        if hi is None or ex_hi <= hi:
            hi, hi_excl = ex_hi, True
    return lo, hi, lo_excl, hi_excl


def _integer(schema: Mapping[str, Any], seed: str, path: str) -> int:
    lo_raw, hi_raw, lo_excl, hi_excl = _bounds(schema)
    lo = (
        None
        if lo_raw is None
        else _ceil_int(lo_raw) + (1 if lo_excl and lo_raw == int(lo_raw) else 0)
    )
    hi = (
        None
        if hi_raw is None
        else _floor_int(hi_raw) - (1 if hi_excl and hi_raw == int(hi_raw) else 0)
    )
    if lo is None and hi is None:
        lo, hi = 0, 100
    elif lo is None:
        lo = hi - 100  # type: ignore[operator]
    elif hi is None:
        hi = lo + 100
    assert lo is not None and hi is not None
    if hi < lo:
        return lo
    return lo + _hash_int(seed, path) % (hi - lo + 1)


def _ceil_int(value: float) -> int:
    return int(value) if value == int(value) or value < 0 else int(value) + 1


def _floor_int(value: float) -> int:
    return int(value) if value == int(value) or value > 0 else int(value) - 1


def _number(schema: Mapping[str, Any], seed: str, path: str) -> float:
    lo, hi, lo_excl, hi_excl = _bounds(schema)
    if lo is None and hi is None:
        lo, hi = 0.0, 100.0
    elif lo is None:
        lo = hi - 100.0  # type: ignore[operator]
    elif hi is None:
        hi = lo + 100.0
    assert lo is not None and hi is not None
    fraction = (_hash_int(seed, path) % 10_000) / 10_000
    if lo_excl or hi_excl:
        fraction = 0.05 + 0.9 * fraction  # stay strictly inside exclusive bounds
    value = round(lo + fraction * (hi - lo), 2)
    # Rounding must never push the value outside the declared range.
    if value < lo or (lo_excl and value <= lo) or value > hi or (hi_excl and value >= hi):
        value = lo + fraction * (hi - lo)
    return float(value)


def _string(schema: Mapping[str, Any], seed: str, path: str) -> str:
    digest = sha256_hex(f"{seed}|{path}|string")
    fmt = schema.get("format")
    if fmt == "email":
        text = f"{_pick(_NOUNS, seed, path)}.{digest[:6]}@example.com"
    elif fmt in ("uri", "url"):
        text = f"https://example.com/{_pick(_NOUNS, seed, path)}-{digest[:6]}"
    elif fmt == "date":
        text = f"2024-{1 + int(digest[:2], 16) % 12:02d}-{1 + int(digest[2:4], 16) % 28:02d}"
    elif fmt == "date-time":
        day = f"2024-{1 + int(digest[:2], 16) % 12:02d}-{1 + int(digest[2:4], 16) % 28:02d}"
        text = f"{day}T{int(digest[4:6], 16) % 24:02d}:{int(digest[6:8], 16) % 60:02d}:00Z"
    elif fmt == "uuid":
        text = f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"
    else:
        text = _phrase(seed, path)
    min_length = int(schema.get("minLength", 0))
    if len(text) < min_length:
        text = (text + " " + digest * (1 + min_length // 64))[:min_length]
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text


# ------------------------------------------------------------------ lookups, Slack


def _domain_hash(domain: str) -> str:
    return sha256_hex(domain)


def company(domain: str) -> dict[str, Any]:
    """Clearbit-style company record for `domain`."""
    digest = _domain_hash(domain)
    return {
        "name": domain.split(".")[0].title(),
        "domain": domain,
        "metrics": {
            "employees": 10 + int(digest[:8], 16) % 5000,
            "estimatedAnnualRevenue": REVENUE_BANDS[int(digest[8:16], 16) % len(REVENUE_BANDS)],
        },
        "category": {"industry": INDUSTRIES[int(digest[16:24], 16) % len(INDUSTRIES)]},
    }


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "member"


def person(email: str) -> dict[str, Any]:
    """LinkedIn-style person record for `email`."""
    digest = sha256_hex(email)
    local, _, domain = email.partition("@")
    title = _TITLES[int(digest[6:14], 16) % len(_TITLES)]
    employer = domain.split(".")[0].title() if domain else "Independent"
    return {
        "email": email,
        "profile_url": f"https://www.linkedin.com/in/{slugify(local)}-{digest[:6]}",
        "headline": f"{title} at {employer}",
    }


def slack_ts(ts_counter: int) -> str:
    return f"{SLACK_TS_BASE + ts_counter}.000100"


def slack_post(channel: str, text: str, ts_counter: int) -> dict[str, Any]:
    """Slack chat.postMessage success body; `ts_counter` is the 1-based post number."""
    return {
        "ok": True,
        "channel": channel,
        "ts": slack_ts(ts_counter),
        "message": {"text": text, "type": "message"},
    }


# ------------------------------------------------------------------- public data sources
# Five small "public APIs" for the multi-API aggregation template: GET /v1/sources/<name>
# with one query parameter each. The answer is a function of the name and that parameter.

WEATHER = ("sunny", "cloudy", "light rain", "windy", "snow", "fog")
SOURCE_PARAMS: dict[str, str] = {
    "weather": "city",
    "news": "topic",
    "stocks": "symbol",
    "rates": "base",
    "holidays": "country",
}
_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF")


def source(name: str, value: str) -> dict[str, Any]:
    """The answer of source `name` (a key of SOURCE_PARAMS) for its parameter's `value`."""
    seed = f"{name}|{value}"
    if name == "weather":
        return {
            "city": value,
            "temperature_c": _hash_int(seed, "t") % 41 - 5,
            "conditions": _pick(WEATHER, seed, "c"),
            "wind_kph": _hash_int(seed, "w") % 60,
        }
    if name == "news":
        return {"topic": value, "headlines": [_phrase(seed, f"h{i}") for i in range(3)]}
    if name == "stocks":
        cents = 1000 + _hash_int(seed, "p") % 99000
        change = (_hash_int(seed, "d") % 1001 - 500) / 100
        return {"symbol": value.upper(), "price": cents / 100, "change_pct": change}
    if name == "rates":
        rates = {
            code: round(0.5 + (_hash_int(seed, code) % 15000) / 10000, 4)
            for code in _CURRENCIES
            if code != value.upper()
        }
        return {"base": value.upper(), "rates": rates}
    month, day = 1 + _hash_int(seed, "m") % 12, 1 + _hash_int(seed, "d") % 28
    return {
        "country": value.upper(),
        "next_holiday": {"name": _phrase(seed, "n"), "date": f"2027-{month:02d}-{day:02d}"},
    }


# ------------------------------------------------------------------------ web pages
# Pages for the web-page summariser template: GET /pages/<slug> answers an HTML article that
# is a function of the slug alone.

_TOPICS = ("remote work", "battery storage", "urban farming", "open-source funding", "rail travel")


def page_title(slug: str) -> str:
    return f"{_phrase(slug, 'title')}: notes on {_pick(_TOPICS, slug, 'topic')}"


def page(slug: str) -> str:
    """The HTML of page `slug`: a title, a heading and three paragraphs."""
    title = page_title(slug)
    paragraphs = "".join(
        f"<p>{_phrase(slug, f'p{i}a')} meets {_phrase(slug, f'p{i}b').lower()}; "
        f"{_hash_int(slug, f'n{i}') % 90 + 10} % of readers agree.</p>"
        for i in range(3)
    )
    return (
        f"<!doctype html><html><head><title>{title}</title></head>"
        f"<body><article><h1>{title}</h1>{paragraphs}</article></body></html>"
    )
