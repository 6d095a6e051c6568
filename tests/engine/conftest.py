"""Fixtures for Django-level engine tests: a user with the template's secrets, the
simulator, and Django settings routing every provider host to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulator.testing import RunningSimulator, run_in_thread

PROVIDER_HOSTS = ("api.openai.com", "api.clearbit.com", "api.linkedin.com", "slack.com")


@pytest.fixture
def simulator(settings: Any) -> Iterator[RunningSimulator]:
    with run_in_thread(latency_ms=40) as running:
        settings.KLYNTOS_HOST_OVERRIDES = ",".join(
            f"{h}={running.base_url}" for h in PROVIDER_HOSTS
        )
        settings.OPENAI_API_KEY = "sk-test-key"
        settings.SLACK_BOT_TOKEN = "xoxb-test-token"
        yield running


@pytest.fixture
def owner(django_user_model: Any) -> Any:
    from builder.services import secret_set

    user = django_user_model.objects.create_user("owner", password="pw-owner-123")
    secret_set(owner=user, name="CLEARBIT_API_KEY", value="clearbit-secret-value")
    secret_set(owner=user, name="LINKEDIN_API_KEY", value="linkedin-secret-value")
    return user
