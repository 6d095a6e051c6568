"""Image inputs at the simulator: OpenAI-style `image_url` content parts are accepted and
answered deterministically (a caption per image URL, 85 prompt tokens per image); a part
that is not an image URL is refused with OpenAI's 400."""

from __future__ import annotations

import httpx

from simulator import answers
from simulator.testing import RunningSimulator

AUTH = {"Authorization": "Bearer x"}


def request(*urls: str) -> dict[str, object]:
    parts = [{"type": "text", "text": "What is in these pictures?"}]
    parts += [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": parts}]}


async def test_image_parts_are_answered_deterministically(sim: RunningSimulator) -> None:
    body = request("https://img.example/1.jpg", "data:image/png;base64,iVBORw0KGgo=")
    async with httpx.AsyncClient(base_url=sim.base_url, headers=AUTH) as client:
        first = (await client.post("/v1/chat/completions", json=body)).json()
        again = (await client.post("/v1/chat/completions", json=body)).json()
        other = (
            await client.post("/v1/chat/completions", json=request("https://img.example/2.jpg"))
        ).json()
    assert first == again == answers.chat_completion(body)
    content = first["choices"][0]["message"]["content"]
    assert f"image 1 shows {answers.describe_image('https://img.example/1.jpg')}" in content
    assert "image 2 shows" in content
    assert other["choices"][0]["message"]["content"] != content
    assert first["usage"]["prompt_tokens"] == 5 + 2 * answers.IMAGE_TOKENS


async def test_a_part_that_is_not_an_image_url_is_refused(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url, headers=AUTH) as client:
        answer = await client.post("/v1/chat/completions", json=request("file:///etc/passwd"))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_image_url"
