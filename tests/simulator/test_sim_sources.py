"""The five public data sources (`GET /v1/sources/<name>`): deterministic answers, the
per-endpoint latency, refusals."""

from __future__ import annotations

import httpx

from simulator import answers
from simulator.testing import RunningSimulator


def test_each_source_answers_a_function_of_its_parameter() -> None:
    for name in answers.SOURCE_PARAMS:
        first, again = answers.source(name, "Lisbon"), answers.source(name, "Lisbon")
        assert first == again, name
        assert answers.source(name, "Oslo") != first, name
    weather = answers.source("weather", "Lisbon")
    assert weather["city"] == "Lisbon" and -5 <= weather["temperature_c"] <= 35
    assert len(answers.source("news", "ai")["headlines"]) == 3
    assert "EUR" not in answers.source("rates", "eur")["rates"]


async def test_the_route_serves_the_pure_answer_with_the_configured_latency(
    sim: RunningSimulator,
) -> None:
    sim.control.configure(latency_ms={"sources": 200})
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        answer = await client.get("/v1/sources/stocks", params={"symbol": "acme"})
        assert answer.status_code == 200
        assert answer.json() == answers.source("stocks", "acme")
        missing = await client.get("/v1/sources/weather")
        assert missing.status_code == 422
        assert "city" in missing.json()["error"]["message"]
        unknown = await client.get("/v1/sources/lottery", params={"q": "1"})
        assert unknown.status_code == 404
    stats = sim.control.stats()
    assert stats["requests"]["sources"] == 3
    served = stats["received"][0]
    assert (served["endpoint"], served["latency_ms"]) == ("sources", 200)


async def test_failures_can_target_one_source(sim: RunningSimulator) -> None:
    sim.control.configure(
        failures=[{"endpoint": "sources", "match": {"source": "news"}, "status": 503}]
    )
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        assert (await client.get("/v1/sources/news", params={"topic": "x"})).status_code == 503
        ok = await client.get("/v1/sources/rates", params={"base": "usd"})
        assert ok.status_code == 200


async def test_pages_are_html_of_their_slug_counted_as_sources(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        first = await client.get("/pages/solar-roofs")
        again = await client.get("/pages/solar-roofs")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    assert first.text == again.text == answers.page("solar-roofs")
    assert f"<title>{answers.page_title('solar-roofs')}</title>" in first.text
    assert sim.control.stats()["requests"]["sources"] == 2
