"""`python -m benchmarks.privacy_cost [--conversations 2000]`: what privacy costs.

- masking: one chat message through `mask_text`, with and without personal data in it;
  one log line through a handler with and without the MaskingFilter;
- the retention purge: CONVERSATIONS old closed conversations (six messages each)
  anonymised, on SQLite and on Redis (at 127.0.0.1:6379, skipped if it is not there);
- erasure: one customer with ERASED_CHATS conversations among all the others.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.cluster import LocalLeases
from bot.config import Config, CrmConfig, PrivacyConfig, WebhooksConfig
from bot.masking import MaskingFilter, mask_text
from bot.messages import ConversationState, Kind, Role
from bot.store import Conversation, Customer, Identity, NewMessage, Store
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore
from handoff.customers import CustomerBook
from handoff.privacy import Privacy
from handoff.retention import Retention
from handoff.webhooks import Webhooks

REDIS_URL = "redis://127.0.0.1:6379/0"
ERASED_CHATS = 20
DAY = 86400.0
PLAIN = "你好，我上周买的衣服还没有收到，能帮我查一下物流吗？"
PERSONAL = "我叫王小明，电话 138-1234-5678，邮箱 wang@example.com，订单 2026112512345679"


def per_call_us(work: Callable[[], object], rounds: int = 20_000) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        work()
    return (time.perf_counter() - start) / rounds * 1e6


def log_line_us(masked: bool) -> float:
    logger = logging.Logger("bench")
    handler = logging.StreamHandler(io.StringIO())
    if masked:
        handler.addFilter(MaskingFilter())
    logger.addHandler(handler)
    return per_call_us(lambda: logger.warning("customer said %s", PERSONAL))


async def seed(store: Store, conversations: int) -> None:
    old = time.time() - 400 * DAY
    for i in range(conversations):
        user = f"v{i}" if i >= ERASED_CHATS else "v-erased"
        chat = Conversation(id=uuid.uuid4().hex, channel="webchat", user_id=user,
                            state=ConversationState.CLOSED, lang="zh", created_at=old + i,
                            last_activity_at=old + i, closed_at=old + i)
        await store.save_conversation(chat)
        for n in range(6):
            await store.append_message(chat, NewMessage(
                Role.CUSTOMER if n % 2 == 0 else Role.BOT, Kind.TEXT, PERSONAL, old + i + n))
        if i <= ERASED_CHATS:
            customer_id = "C-erased" if i < ERASED_CHATS else f"C{i}"
            await store.save_customer(Customer(customer_id, old, old, name="王小明",
                                               phones=("13812345678",)))
            await store.save_identity(Identity("webchat", user, customer_id))


async def timed(work: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def store_figures(name: str, open_store: Callable[[], Awaitable[Store]],
                        conversations: int) -> str:
    config = Config()
    store = await open_store()
    try:
        await seed(store, conversations)
        privacy = Privacy(PrivacyConfig(), store, CustomerBook(CrmConfig(), store),
                          Webhooks(WebhooksConfig(), store, LocalLeases()))
        erase = await timed(lambda: privacy.erase("C-erased", "bench", "local"))
        purge = await timed(lambda: Retention(config, store, LocalLeases()).purge())
    finally:
        await store.close()
    return (f"| {name} | {conversations} | {erase * 1000:.0f} ms | {purge:.1f} s "
            f"({(conversations - ERASED_CHATS) / purge:.0f} conversations/s) |")


async def main(conversations: int) -> None:
    plain = per_call_us(lambda: mask_text(PLAIN))
    print(f"mask_text, a message without personal data: {plain:.1f} µs")
    print(f"mask_text, a message with a name, phone, email and order number: "
          f"{per_call_us(lambda: mask_text(PERSONAL)):.1f} µs")
    print(f"a log line: {log_line_us(False):.1f} µs unmasked, {log_line_us(True):.1f} µs masked")
    print("| store | conversations | erase one customer (20 conversations) | purge the rest |")
    print("| --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        print(await store_figures("SQLite", lambda: SqliteStore.open(
            Path(tmp) / "bench.sqlite3"), conversations))
    prefix = f"kefu-bench-{uuid.uuid4().hex[:8]}:"
    try:
        print(await store_figures("Redis", lambda: RedisStore.open(REDIS_URL, prefix=prefix),
                                  conversations))
    except (RedisError, OSError) as exc:
        print(f"Redis: skipped ({exc})")
    finally:
        await _forget(prefix)


async def _forget(prefix: str) -> None:
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    except (RedisError, OSError):
        pass  # no Redis: nothing was written
    finally:
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=2000)
    asyncio.run(main(parser.parse_args().conversations))
