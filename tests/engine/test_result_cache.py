"""The result cache's rows: per owner, expiring, bounded in size (engine/result_cache.py), and
what a miss costs the database: lookups asked together are one query, writes are off the
step's path and batched into one statement."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from engine.models import CachedResult
from engine.result_cache import DbResultCache

pytestmark = pytest.mark.django_db(transaction=True)

USAGE = [{"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5}]


def keep(cache: DbResultCache, *puts: tuple[Any, ...]) -> None:
    """`puts` kept and written (as a run's end writes them), the cache's thread closed."""

    async def main() -> None:
        for put in puts:
            await cache.put(*put)
        await cache.aclose()

    asyncio.run(main())


def look(cache: DbResultCache, key: str) -> Any:
    async def main() -> Any:
        try:
            return await cache.get(key)
        finally:
            await cache.aclose()

    return asyncio.run(main())


def test_entries_are_the_owners_own_and_expire(owner: Any, django_user_model: Any) -> None:
    other = django_user_model.objects.create_user("other", password="pw-other-123")
    mine, theirs = DbResultCache(owner.pk), DbResultCache(other.pk)
    keep(mine, ("k" * 64, "agent", {"content": "hi"}, USAGE, 60))
    found = look(mine, "k" * 64)
    assert found is not None and found.output == {"content": "hi"} and found.usage == USAGE
    assert look(theirs, "k" * 64) is None  # another owner never sees it
    # Written again: one row, the new output.
    keep(mine, ("k" * 64, "agent", {"content": "again"}, USAGE, 60))
    assert CachedResult.objects.filter(owner=owner).count() == 1
    assert look(mine, "k" * 64).output == {"content": "again"}
    CachedResult.objects.update(expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert look(mine, "k" * 64) is None
    # The next run that writes deletes its owner's expired rows.
    later = DbResultCache(owner.pk)
    keep(later, ("j" * 64, "http", {"status": 200}, [], 60))
    assert list(CachedResult.objects.values_list("key", flat=True)) == ["j" * 64]


def test_the_ttl_and_size_are_held_to_the_settings(owner: Any, settings: Any) -> None:
    settings.KLYNTOS_RESULT_CACHE_MAX_TTL = 100
    settings.KLYNTOS_RESULT_CACHE_MAX_BYTES = 50
    cache = DbResultCache(owner.pk)
    keep(cache, ("a" * 64, "agent", {"content": "x" * 100}, [], 60))
    assert not CachedResult.objects.exists()  # too large to keep
    keep(cache, ("b" * 64, "agent", {"content": "x"}, [], 10**6))
    entry = CachedResult.objects.get()
    assert (entry.expires_at - entry.created_at).total_seconds() < 101


def counting(cache: DbResultCache, lookups: list[int], statements: list[str]) -> None:
    """Each lookup query the cache sends (the number of keys it names) appended to `lookups`,
    and every SQL statement its writes send to `statements`."""
    fetch, upsert = cache._fetch, cache._upsert

    async def fetched(lane: int, keys: list[str]) -> Any:
        lookups.append(len(keys))
        return await fetch(lane, keys)

    def upserted(*args: Any) -> Any:
        with CaptureQueriesContext(connections["default"]) as captured:
            result = upsert(*args)
        statements.extend(q["sql"] for q in captured.captured_queries)
        return result

    cache._fetch = fetched  # type: ignore[method-assign]
    cache._upsert = upserted  # type: ignore[method-assign]


def kinds(statements: list[str]) -> list[str]:
    """Each statement's verb, less the transaction's bounds (SQLite's BEGIN and COMMIT are
    statements, PostgreSQL's are not: psycopg opens its transactions itself)."""
    verbs = [s.lstrip().split()[0].upper() for s in statements]
    assert verbs.count("BEGIN") <= 1 and "SAVEPOINT" not in verbs  # at most one transaction
    return [v for v in verbs if v not in {"BEGIN", "COMMIT", "RELEASE"}]


def test_a_miss_costs_one_shared_lookup_and_no_write_on_the_steps_path(owner: Any) -> None:
    """The regression behind an all-miss run taking twice the time of no cache on SQLite:
    a statement (and a connection) per lookup and per write, the write awaited by its step.
    Here 50 items' lookups are one query, their 50 outputs one upsert sent after `put`
    returned, and lookups of outputs not written yet need no query at all."""
    cache = DbResultCache(owner.pk)
    lookups: list[int] = []
    statements: list[str] = []
    counting(cache, lookups, statements)
    keys = [f"{n:064d}" for n in range(50)]

    async def main() -> None:
        found = await asyncio.gather(*(cache.get(key) for key in keys))
        assert found == [None] * 50
        assert lookups == [50]  # one query for the 50 of them
        for n, key in enumerate(keys):
            await cache.put(key, "agent", {"n": n}, USAGE, 60)
        assert statements == []  # nothing written yet: the steps went on at once
        again = await asyncio.gather(*(cache.get(key) for key in keys))
        assert [hit.output for hit in again] == [{"n": n} for n in range(50)]
        assert lookups == [50]  # answered from what this run kept, without a query
        await cache.flush()

    try:
        asyncio.run(main())
    finally:
        asyncio.run(cache.aclose())
    # The first write deletes the owner's expired rows, then one upsert for all 50, in one
    # transaction.
    assert kinds(statements) == ["DELETE", "INSERT"]
    assert CachedResult.objects.filter(owner=owner).count() == 50

    later = DbResultCache(owner.pk)
    lookups.clear()
    counting(later, lookups, statements)

    async def hits() -> list[Any]:
        try:
            return await asyncio.gather(*(later.get(key) for key in keys))
        finally:
            await later.aclose()

    assert [hit.output for hit in asyncio.run(hits())] == [{"n": n} for n in range(50)]
    assert lookups == [50]  # 50 hits, one query


def test_a_failing_database_is_a_miss_and_an_output_not_kept(
    owner: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DbResultCache(owner.pk)

    def broken(*args: Any) -> Any:
        from django.db import DatabaseError

        raise DatabaseError("down")

    cache._select = broken  # type: ignore[method-assign]
    cache._lookup = broken  # type: ignore[method-assign]
    cache._upsert = broken  # type: ignore[method-assign]
    assert look(cache, "k" * 64) is None
    keep(cache, ("k" * 64, "agent", {"content": "hi"}, USAGE, 60))
    assert not CachedResult.objects.exists()
    assert "read failed" in caplog.text and "write failed" in caplog.text
