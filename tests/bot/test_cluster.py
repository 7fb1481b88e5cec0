"""Leases between processes, on the real Redis: waited for within bounds, fenced when lost."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.cluster import LeaseLost, LeaseTiming, LeaseUnavailable, RedisLeases
from bot.messages import ConversationState, Kind, Role
from bot.store import Conversation, NewMessage
from tests.redis_support import redis_store

TIMING = LeaseTiming(seconds=1.0, first_poll_seconds=0.02, max_poll_seconds=0.2,
                     wait_seconds=1.5)


def a_conversation() -> Conversation:
    now = time.time()
    return Conversation(id="c-lease", channel="webchat", user_id="u1",
                        state=ConversationState.BOT, lang="zh", created_at=now,
                        last_activity_at=now)


def answer(text: str) -> NewMessage:
    return NewMessage(role=Role.BOT, kind=Kind.ANSWER, text=text, ts=time.time())


async def test_work_whose_lease_another_process_took_cannot_write() -> None:
    async with redis_store() as store:
        leases = RedisLeases(store.client, store.prefix, TIMING)
        conversation = a_conversation()
        async with leases.hold("lane:webchat:u1"):
            assert await store.append_message(conversation, answer("第一")) is not None
            # Redis was unreachable past the lease's life; another process took it.
            await store.client.set(f"{store.prefix}lease:lane:webchat:u1", "someone-else")
            with pytest.raises(LeaseLost):
                await store.append_message(conversation, answer("第二"))
            # ...or took it, answered and gave it up: nobody holds it, still not this one.
            await store.client.delete(f"{store.prefix}lease:lane:webchat:u1")
            with pytest.raises(LeaseLost):
                await store.append_message(conversation, answer("第三"))
        assert [m.text for m in await store.messages(conversation.id)] == ["第一"]


async def test_a_lease_held_elsewhere_for_too_long_is_refused_in_time() -> None:
    async with redis_store() as store:
        mine = RedisLeases(store.client, store.prefix, TIMING)
        theirs = RedisLeases(store.client, store.prefix, TIMING)
        async with theirs.hold("lane:webchat:u2"):
            started = time.monotonic()
            with pytest.raises(LeaseUnavailable):
                async with mine.hold("lane:webchat:u2"):
                    pytest.fail("two holders at once")
            assert time.monotonic() - started < TIMING.wait_seconds + 0.5
        async with asyncio.timeout(2):  # given up: free for the next
            async with mine.hold("lane:webchat:u2"):
                pass
