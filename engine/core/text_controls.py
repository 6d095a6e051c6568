"""Characters that change how the text around them is shown without being seen themselves:
Unicode's bidirectional embeddings, overrides and isolates (the "Trojan Source" set,
U+202A–U+202E and U+2066–U+2069). A value carrying one can make a name or a report line read
otherwise than it is: `‹img›\\u202eevil` shows as `‹img›live`. Values put into Slack text lose
them; names refuse them."""

from __future__ import annotations

import re

BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def without_bidi_controls(text: str) -> str:
    return BIDI_CONTROLS.sub("", text)


def bidi_control_in(text: str) -> str | None:
    """The first bidi control in `text` as `U+202E at 12` (0-based), or None."""
    found = BIDI_CONTROLS.search(text)
    if found is None:
        return None
    return f"U+{ord(found.group()):04X} at {found.start()}"
