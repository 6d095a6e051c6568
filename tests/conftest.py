"""Shared fixtures for the whole suite: users and authenticated API clients."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):  # noqa: F811 - pytest-django's, extended
    """The executor keeps owners' data connections open between runs: close them before
    pytest-django drops the test databases (PostgreSQL refuses while they are open)."""
    yield
    from engine.runner import executor

    executor.close_data_pools()


@pytest.fixture(autouse=True)
def runs_end_within_their_test():
    """A test that starts runs through REST or a webhook may end before they do; their store
    would go on writing rows while pytest-django empties the tables for the next test (the
    flush then fails on their locks, or they insert under a run already deleted). Wait for
    them, and cancel what is still going after a while (cancelled runs store their end)."""
    yield
    from engine.runner import executor

    if executor.drain(30):
        for future in list(executor._futures.values()):
            future.cancel()
    executor.wait_returned(15)


@pytest.fixture(autouse=True)
def providers_learn_nothing_across_tests():
    """The in-process executor's loop outlives each test, and its provider registry learns
    (AIMD limits after 5xx/429, breakers): a test that injects failures must not leave a
    provider capped or paused for the tests after it."""
    yield
    from engine.core.providers import forget_registry
    from engine.runner import executor

    if executor._loop is not None:
        forget_registry(executor._loop)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="owner", password="owner-password")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="intruder", password="intruder-password")


@pytest.fixture
def api(user) -> APIClient:
    """A DRF client authenticated as `user`."""
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def other_api(other_user) -> APIClient:
    """A DRF client authenticated as `other_user`."""
    client = APIClient()
    client.force_authenticate(other_user)
    return client
