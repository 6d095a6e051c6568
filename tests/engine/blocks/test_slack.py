"""Slack text past Slack's 40,000 characters is cut with a visible marker, never refused,
and what is kept stays escaped; against the simulator with the real slack_sdk."""

from __future__ import annotations

import json
import re

from engine.blocks.slack import SLACK_TEXT_LIMIT, cut_to_limit, slack_escape
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block, graph, run_graph

MARKER = re.compile(r"… \(cut: (\d+) characters more\)$")


async def test_a_long_message_is_cut_with_a_marker_and_posted_once(sim: RunningSimulator) -> None:
    rows = [f"<lead {i}> & co" for i in range(4000)]  # escaped, ~76,000 characters
    text = "🎯 Leads:\n<webhook.body.rows>\nSee <https://crm.example/leads|the dashboard>"
    outcome, _ = await run_graph(
        graph(
            [block("webhook", "webhook"), block("post", "slack", channel="#sales", text=text)],
            [("webhook", "post")],
        ),
        {"rows": rows},
        sim=sim,
    )
    assert outcome.status == "succeeded", outcome.error
    [call] = [c for c in sim.control.stats()["received"] if c["endpoint"] == "slack"]
    posted = call["text"]
    full = "🎯 Leads:\n" + slack_escape(json.dumps(rows, ensure_ascii=False))
    full += "\nSee <https://crm.example/leads|the dashboard>"
    assert 39_950 <= len(posted) <= SLACK_TEXT_LIMIT
    cut = MARKER.search(posted)
    assert cut is not None
    head = posted[: cut.start()]
    assert full.startswith(head) and len(head) > 39_900
    assert int(cut.group(1)) == len(full) - len(head)
    assert "<lead" not in head  # the values stay escaped
    assert outcome.outputs["post"]["text"] == posted


def test_a_text_within_the_limit_is_unchanged() -> None:
    text = "x" * SLACK_TEXT_LIMIT
    assert cut_to_limit(text) is text


def test_the_marker_counts_what_was_left_out_and_the_whole_fits() -> None:
    text = "a" * 50_000
    out = cut_to_limit(text)
    cut = MARKER.search(out)
    assert cut is not None and len(out) == SLACK_TEXT_LIMIT
    assert int(cut.group(1)) == 50_000 - cut.start() == len(text) - len(out[: cut.start()])


def test_the_cut_never_splits_an_escape_or_the_authors_markup() -> None:
    marker_length = len("… (cut: 99999 characters more)")
    for shift in range(6):
        text = "a" * (SLACK_TEXT_LIMIT - marker_length - shift) + "&amp;" * 10_000
        head = cut_to_limit(text)[: MARKER.search(cut_to_limit(text)).start()]  # type: ignore[union-attr]
        assert re.fullmatch(r"a*(&amp;)*", head), head[-8:]
    for shift in range(30):
        text = "a" * (SLACK_TEXT_LIMIT - marker_length - shift) + "<https://x.example|link> " * 9
        text += "b" * 20_000
        head = cut_to_limit(text)[: MARKER.search(cut_to_limit(text)).start()]  # type: ignore[union-attr]
        assert head.count("<") == head.count(">"), head[-30:]


async def test_a_value_cannot_reorder_its_line_with_bidi_controls(sim: RunningSimulator) -> None:
    # "‹img›\u202eevil\u202c" would show as "‹img›live"; the author's own text is kept as is.
    name = "Bob \u202eevil\u202c \u2066x\u2069"
    outcome, _ = await run_graph(
        graph(
            [
                block("webhook", "webhook"),
                block("post", "slack", channel="#sales", text="Lead: <webhook.body.name>"),
            ],
            [("webhook", "post")],
        ),
        {"name": name},
        sim=sim,
    )
    assert outcome.status == "succeeded", outcome.error
    [call] = [c for c in sim.control.stats()["received"] if c["endpoint"] == "slack"]
    assert call["text"] == "Lead: Bob evil x"


def test_slack_escape_drops_every_bidi_control_and_escapes_markup() -> None:
    controls = "".join(chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
    assert slack_escape(f"a{controls}<b>&") == "a&lt;b&gt;&amp;"
