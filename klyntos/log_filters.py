"""Logging filters that keep credentials out of log records.

A webhook's token is its bearer credential: whoever knows `/hooks/<token>` starts the
workflow. Django logs every refused request with its path (`Too Many Requests:
/hooks/…`, django.request), a server's access log every request, so `HookTokenFilter`
shortens the token in every `/hooks/<token>` a record carries, in its message and in its
arguments (a tuple or a mapping, as daphne's runserver passes), to its first characters
and an ellipsis: enough to tell hooks apart in a log, never enough to call one.

It is installed (klyntos/settings.py, LOGGING) on the console handler, which every record
reaches, and on the loggers that write request paths, so that any other handler attached
to them (a test's capture, an error reporter) reads the shortened path as well.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

# Characters of a token kept in a log: a hint to which hook, not a credential.
KEPT = 4
# What a token can be made of in a logged path: anything up to the path's or line's end.
_PATH_CHAR = r"[^/?#\s'\"<>\\]"
HOOK_PATH = re.compile(rf"(/hooks/)({_PATH_CHAR}{{1,{KEPT}}}){_PATH_CHAR}*")
MARK = "/hooks/"


def shorten_hook_tokens(text: str) -> str:
    """`text` with each `/hooks/<token>` cut to `/hooks/<first KEPT characters>…`."""
    if MARK not in text:
        return text
    return HOOK_PATH.sub(_shortened, text)


def _shortened(match: re.Match[str]) -> str:
    whole, kept = match.group(0), match.group(2)
    return whole if len(whole) == len(MARK) + len(kept) else f"{MARK}{kept}…"


def _clean(arg: Any) -> Any:
    if isinstance(arg, str):
        return shorten_hook_tokens(arg)
    if isinstance(arg, int | float | bool) or arg is None:
        return arg  # a number formatted by %d keeps its type
    text = str(arg)  # an object whose text holds a path (a request)
    return shorten_hook_tokens(text) if MARK in text else arg


class HookTokenFilter(logging.Filter):
    """Shortens webhook tokens in a record's message, arguments and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = shorten_hook_tokens(record.msg)
        elif MARK in str(record.msg):
            record.msg = shorten_hook_tokens(str(record.msg))
        args = record.args
        if isinstance(args, Mapping):
            record.args = {key: _clean(value) for key, value in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(_clean(arg) for arg in args)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # Formatted now (as a formatter would) so that a path in it is shortened too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = shorten_hook_tokens(record.exc_text)
        return True
