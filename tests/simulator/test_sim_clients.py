"""The real provider clients (openai, slack_sdk, httpx) against the running simulator."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from simulator import answers
from simulator.testing import RunningSimulator

AUTH = {"Authorization": "Bearer test-key"}
MESSAGES = [
    {"role": "system", "content": "You qualify sales leads."},
    {"role": "user", "content": "Jane Doe, VP Sales at Acme (acme.com), asked for pricing."},
]


def openai_client(sim: RunningSimulator, **kwargs: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="x", max_retries=0, **kwargs)


async def test_openai_json_schema_matches_pure_function(
    sim: RunningSimulator, lead_schema: dict
) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "lead", "schema": lead_schema, "strict": True},
    }
    async with openai_client(sim) as client:
        first = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, response_format=response_format
        )
        second = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, response_format=response_format
        )
    content = first.choices[0].message.content
    assert content is not None
    lead = json.loads(content)
    jsonschema.validate(lead, lead_schema)
    assert 1 <= lead["qualification_score"] <= 10

    expected = answers.chat_completion(
        {"model": "gpt-4o-mini", "messages": MESSAGES, "response_format": response_format}
    )
    assert first.model_dump(exclude_none=True) == second.model_dump(exclude_none=True)
    assert first.id == expected["id"]
    assert first.created == answers.CREATED
    assert content == expected["choices"][0]["message"]["content"]
    assert first.usage is not None
    assert (
        first.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
        == (expected["usage"])
    )

    stats = sim.control.stats()
    assert stats["requests"]["openai"] == 2
    seen = stats["received"][0]
    assert seen["endpoint"] == "openai" and seen["path"] == "/v1/chat/completions"
    assert seen["authorization"] == "Bearer x"
    assert seen["prompt"] == "\n".join(m["content"] for m in MESSAGES)
    assert seen["status"] == 200 and seen["finished"] >= seen["started"]
    # The recorded body recomputes the very same answer.
    assert answers.chat_completion(seen["json"])["choices"][0]["message"]["content"] == content


async def test_openai_plain_text_and_unprefixed_route(sim: RunningSimulator) -> None:
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="x", max_retries=0) as client:
        result = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    content = result.choices[0].message.content or ""
    seed = answers.chat_seed({"model": "gpt-4o-mini", "messages": MESSAGES})
    assert content.startswith(f"Summary ({seed[:6]}):")
    assert MESSAGES[1]["content"][:80] in content
    assert sim.control.stats()["received"][0]["path"] == "/chat/completions"


async def test_openai_rejects_missing_key_and_bad_json(sim: RunningSimulator) -> None:
    # The client refuses an empty key, so send a non-Bearer Authorization instead.
    async with openai_client(
        sim, default_headers={"Authorization": "Basic Zm9vOmJhcg=="}
    ) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"

    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        no_auth = await http.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
        bad_json = await http.post("/v1/chat/completions", content=b"{not json", headers=AUTH)
        no_messages = await http.post("/v1/chat/completions", json={"model": "m"}, headers=AUTH)
    assert no_auth.status_code == 401
    assert no_auth.json()["error"]["type"] == "invalid_request_error"
    assert no_auth.json()["error"]["code"] == "invalid_api_key"
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["type"] == "invalid_request_error"
    assert no_messages.status_code == 400
    assert [r["status"] for r in sim.control.stats()["received"]] == [401, 401, 400, 400]


async def test_slack_sdk_post_message(sim: RunningSimulator) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=sim.base_url + "/api/")
    first = await client.chat_postMessage(channel="#sales-leads", text="New lead: Acme (score 9)")
    second = await client.chat_postMessage(channel="#sales-leads", text="New lead: Globex")
    assert first.data == answers.slack_post("#sales-leads", "New lead: Acme (score 9)", 1)
    assert second.data == answers.slack_post("#sales-leads", "New lead: Globex", 2)

    received = sim.control.stats()["received"]
    assert [r["text"] for r in received] == ["New lead: Acme (score 9)", "New lead: Globex"]
    assert received[0]["authorization"] == "Bearer xoxb-test"
    assert received[0]["json"]["channel"] == "#sales-leads"


async def test_slack_form_body_and_errors(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        form = await http.post(
            "/api/chat.postMessage", data={"token": "xoxb-form", "channel": "C1", "text": "hi"}
        )
        not_authed = await http.post("/api/chat.postMessage", json={"channel": "C1", "text": "x"})
        no_channel = await http.post("/api/chat.postMessage", json={"text": "x"}, headers=AUTH)
    assert form.status_code == 200
    assert form.json() == answers.slack_post("C1", "hi", 1)
    assert not_authed.status_code == 200
    assert not_authed.json() == {"ok": False, "error": "not_authed"}
    assert no_channel.json() == {"ok": False, "error": "channel_not_found"}
    assert sim.control.stats()["received"][0]["json"] == {
        "token": "xoxb-form",
        "channel": "C1",
        "text": "hi",
    }

    with pytest.raises(SlackApiError) as caught:
        await AsyncWebClient(token="xoxb-test", base_url=sim.base_url + "/api/").chat_postMessage(
            channel="", text="nowhere"
        )
    assert caught.value.response["error"] == "channel_not_found"


async def test_slack_refuses_text_over_its_limit_like_slack(sim: RunningSimulator) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=sim.base_url + "/api/")
    fits = await client.chat_postMessage(channel="C1", text="é" * 40_000)
    assert fits["ok"] and fits["message"]["text"] == "é" * 40_000
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="x" * 40_001)
    assert caught.value.response["error"] == "msg_too_long"
    assert sim.control.stats()["requests"]["slack"] == 2


async def test_lookups_match_pure_functions(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url, headers=AUTH) as http:
        company = await http.get("/v2/companies/find", params={"domain": "acme.com"})
        again = await http.get("/v2/companies/find", params={"domain": "acme.com"})
        person = await http.get("/v2/people", params={"email": "jane@acme.com"})
    assert company.status_code == 200
    assert company.json() == answers.company("acme.com") == again.json()
    assert person.json() == answers.person("jane@acme.com")
    stats = sim.control.stats()
    assert stats["requests"] == {
        "openai": 0,
        "clearbit": 2,
        "linkedin": 1,
        "slack": 0,
        "sources": 0,
    }
    assert stats["received"][2]["query"] == {"email": "jane@acme.com"}
    assert stats["received"][2]["json"] is None


async def test_lookups_require_auth_and_parameters(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        no_auth_company = await http.get("/v2/companies/find", params={"domain": "acme.com"})
        no_auth_person = await http.get("/v2/people", params={"email": "jane@acme.com"})
        no_domain = await http.get("/v2/companies/find", headers=AUTH)
        no_email = await http.get("/v2/people", params={"email": ""}, headers=AUTH)
    assert no_auth_company.status_code == 401
    assert no_auth_person.status_code == 401
    assert no_domain.status_code == 422
    assert "domain" in no_domain.json()["error"]["message"]
    assert no_email.status_code == 422


async def test_control_calls_are_not_counted(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        assert (await http.get("/_sim/health")).json()["ok"] is True
        await http.get("/_sim/stats")
        await http.post("/_sim/config", json={})
    stats = sim.control.stats()
    assert sum(stats["requests"].values()) == 0
    assert stats["received"] == []
