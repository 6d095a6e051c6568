"""The result cache's rows: per owner, expiring, bounded in size (engine/result_cache.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from engine.models import CachedResult
from engine.result_cache import DbResultCache

pytestmark = pytest.mark.django_db(transaction=True)

USAGE = [{"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5}]


def test_entries_are_the_owners_own_and_expire(owner: Any, django_user_model: Any) -> None:
    other = django_user_model.objects.create_user("other", password="pw-other-123")
    mine, theirs = DbResultCache(owner.pk), DbResultCache(other.pk)
    asyncio.run(mine.put("k" * 64, "agent", {"content": "hi"}, USAGE, 60))
    found = asyncio.run(mine.get("k" * 64))
    assert found is not None and found.output == {"content": "hi"} and found.usage == USAGE
    assert asyncio.run(theirs.get("k" * 64)) is None  # another owner never sees it
    # Written again: one row, the new output.
    asyncio.run(mine.put("k" * 64, "agent", {"content": "again"}, USAGE, 60))
    assert CachedResult.objects.filter(owner=owner).count() == 1
    assert asyncio.run(mine.get("k" * 64)).output == {"content": "again"}  # type: ignore[union-attr]
    CachedResult.objects.update(expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert asyncio.run(mine.get("k" * 64)) is None
    # The next run that writes deletes its owner's expired rows.
    later = DbResultCache(owner.pk)
    asyncio.run(later.put("j" * 64, "http", {"status": 200}, [], 60))
    assert list(CachedResult.objects.values_list("key", flat=True)) == ["j" * 64]


def test_the_ttl_and_size_are_held_to_the_settings(owner: Any, settings: Any) -> None:
    settings.KLYNTOS_RESULT_CACHE_MAX_TTL = 100
    settings.KLYNTOS_RESULT_CACHE_MAX_BYTES = 50
    cache = DbResultCache(owner.pk)
    asyncio.run(cache.put("a" * 64, "agent", {"content": "x" * 100}, [], 60))
    assert not CachedResult.objects.exists()  # too large to keep
    asyncio.run(cache.put("b" * 64, "agent", {"content": "x"}, [], 10**6))
    entry = CachedResult.objects.get()
    assert (entry.expires_at - entry.created_at).total_seconds() < 101
