"""The real Redis on 127.0.0.1 for tests: skipped with a clear message on a machine without
it, never under CI (`.ci/run` starts one)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.store.redis import RedisStore

REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_answering: bool | None = None


async def require_redis() -> None:
    global _answering
    if _answering is None:
        probe = aioredis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            _answering = bool(await probe.ping())
        except (RedisError, OSError):
            _answering = False
        finally:
            await probe.aclose()
    if not _answering:
        message = (f"Redis is not answering at {REDIS_URL} (start redis-server, or set "
                   "KEFU_TEST_REDIS_URL); CI runs these tests")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def unique_prefix() -> str:
    return f"kefu-test-{uuid.uuid4().hex[:12]}:"


async def forget(prefix: str) -> None:
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@asynccontextmanager
async def redis_store() -> AsyncIterator[RedisStore]:
    """A Redis store under a prefix of its own, emptied afterwards."""
    await require_redis()
    prefix = unique_prefix()
    store = await RedisStore.open(REDIS_URL, prefix=prefix)
    try:
        yield store
    finally:
        await store.close()
        await forget(prefix)
