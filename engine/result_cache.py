"""The result cache in the database: one owner's `CachedResult` rows (engine/core/result_cache.py
says what is cached and how the key is made).

Reads and writes run on a worker thread (`sync_to_async`, not thread-sensitive), so the
executor's loop never waits on the database. A failing read is a miss and a failing write is
logged: the cache never fails a step. Expired rows are never answered; each run that uses
the cache deletes its owner's expired rows once, the first time it writes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone

from engine.core.bounded import json_size
from engine.core.result_cache import Cached
from engine.models import CachedResult

log = logging.getLogger(__name__)


class DbResultCache:
    def __init__(self, owner_id: Any) -> None:
        self.owner_id = owner_id
        self.max_ttl = float(settings.KLYNTOS_RESULT_CACHE_MAX_TTL)
        self.max_bytes = int(settings.KLYNTOS_RESULT_CACHE_MAX_BYTES)
        self._pruned = False

    async def get(self, key: str) -> Cached | None:
        try:
            found = await sync_to_async(self._get, thread_sensitive=False)(key)
        except DatabaseError:
            log.warning("result cache: read failed, calling instead", exc_info=True)
            return None
        return None if found is None else Cached(found[0], list(found[1] or []))

    async def put(
        self, key: str, block_type: str, output: Any, usage: list[dict[str, Any]], ttl: float
    ) -> None:
        if json_size(output) > self.max_bytes:
            return
        try:
            await sync_to_async(self._put, thread_sensitive=False)(
                key, block_type, output, usage, min(ttl, self.max_ttl)
            )
        except DatabaseError:
            log.warning("result cache: write failed, the output is not kept", exc_info=True)

    def _get(self, key: str) -> tuple[Any, Any] | None:
        try:
            return (
                CachedResult.objects.filter(
                    owner_id=self.owner_id, key=key, expires_at__gt=timezone.now()
                )
                .values_list("output", "usage")
                .first()
            )
        finally:
            connections.close_all()  # a pool thread keeps no connection behind

    def _put(
        self, key: str, block_type: str, output: Any, usage: list[dict[str, Any]], ttl: float
    ) -> None:
        try:
            self._write(key, block_type, output, usage, ttl)
        finally:
            connections.close_all()

    def _write(
        self, key: str, block_type: str, output: Any, usage: list[dict[str, Any]], ttl: float
    ) -> None:
        now = timezone.now()
        if not self._pruned:
            self._pruned = True
            CachedResult.objects.filter(owner_id=self.owner_id, expires_at__lte=now).delete()
        CachedResult.objects.bulk_create(
            [
                CachedResult(
                    owner_id=self.owner_id,
                    key=key,
                    block_type=block_type,
                    output=output,
                    usage=usage,
                    expires_at=now + dt.timedelta(seconds=ttl),
                )
            ],
            update_conflicts=True,
            unique_fields=["owner", "key"],
            update_fields=["block_type", "output", "usage", "created_at", "expires_at"],
        )
