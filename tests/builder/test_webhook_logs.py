"""A webhook's token is a bearer credential: no log record carries it (defect 10a). Real
requests through the test client that Django logs as refused (django.request), and our own
loggers through the configured console handler; klyntos/log_filters.py shortens the path."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from django.test import Client

from engine import secrets_registry
from klyntos.log_filters import HookTokenFilter, shorten_hook_tokens

JSON = "application/json"


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    )


@pytest.mark.django_db
def test_refused_webhook_requests_are_logged_without_their_token(
    client: Client, lead_workflow: Any, caplog: pytest.LogCaptureFixture
) -> None:
    token = lead_workflow.webhook.token
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert (
            client.post(f"/hooks/{token}", data="x", content_type="text/plain").status_code == 415
        )
        assert client.post(f"/hooks/{token}", data=b"{", content_type=JSON).status_code == 400
        assert client.get(f"/hooks/{token}").status_code == 405
        assert client.post(f"/hooks/{token}x", data=b"{}", content_type=JSON).status_code == 404
    refused = [r for r in caplog.records if r.name == "django.request"]
    assert len(refused) == 4, [r.getMessage() for r in refused]
    logged = everything_logged(caplog)
    assert token not in logged and token[4:12] not in logged
    assert f"/hooks/{token[:4]}…" in logged  # enough to tell hooks apart


@pytest.mark.django_db
def test_too_many_requests_is_logged_without_the_token(
    client: Client, lead_workflow: Any, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    settings.KLYNTOS_RUNS_PER_MINUTE = 1
    token = lead_workflow.webhook.token
    with caplog.at_level(logging.WARNING, logger="django.request"):
        for _ in range(2):
            response = client.post(f"/hooks/{token}", data=b'{"leads": []}', content_type=JSON)
    assert response.status_code == 429, response.content
    logged = everything_logged(caplog)
    assert "Too Many Requests: /hooks/" in logged and token not in logged


def test_our_own_loggers_and_the_access_logs_write_no_token() -> None:
    """Every record reaches the console handler (LOGGING's root handler): what it writes."""
    [console] = [h for h in logging.getLogger().handlers if _filters_tokens(h)]
    out = io.StringIO()
    previous = console.setStream(out)  # type: ignore[attr-defined]
    token = "mweFpU5AGfSecretTokenValue123"
    # With a secret registered the redaction filter writes the exception text anew.
    secrets_registry.register(["a-registered-secret-77"])
    try:
        logging.getLogger("builder.webhooks").warning("refused %s", f"/hooks/{token}")
        logging.getLogger("engine.runner").warning(f"POST /hooks/{token}?wait=30 failed")
        # daphne's runserver passes its arguments as a mapping.
        logging.getLogger("django.channels.server").warning(
            "HTTP %(method)s %(path)s %(status)s",
            {"method": "POST", "path": f"/hooks/{token}", "status": 429},
        )
        try:
            raise ValueError(f"bad /hooks/{token}")
        except ValueError:
            logging.getLogger("builder").exception("failed")
    finally:
        console.setStream(previous)  # type: ignore[attr-defined]
    written = out.getvalue()
    assert token not in written and token[4:] not in written
    assert written.count("/hooks/mweF…") == 4 and "HTTP POST /hooks/mweF… 429" in written


def _filters_tokens(handler: logging.Handler) -> bool:
    return any(isinstance(f, HookTokenFilter) for f in handler.filters)


def test_a_token_is_cut_wherever_the_path_ends() -> None:
    assert shorten_hook_tokens("x /hooks/abcdefgh y") == "x /hooks/abcd… y"
    assert shorten_hook_tokens("'/hooks/abcdefgh'") == "'/hooks/abcd…'"
    assert shorten_hook_tokens("/hooks/abcdefgh?wait=5") == "/hooks/abcd…?wait=5"
    assert shorten_hook_tokens("/hooks/abc") == "/hooks/abc"
    assert shorten_hook_tokens(shorten_hook_tokens("/hooks/abcdefgh")) == "/hooks/abcd…"
    assert shorten_hook_tokens("no hook here") == "no hook here"
