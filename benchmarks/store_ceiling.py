"""The embedded store alone: how many questions a second it can take, kefu's ceiling.

Each question costs the router four store operations (read the customer's conversation,
store the question, store the answer, save the conversation with the question and the
delivered answer settled). Here CUSTOMERS customers ask QUESTIONS
questions each, one after another, with nothing else: no sockets, no matching, no JSON.
In one process kefu cannot answer faster than this, whatever the rest costs.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from bot.messages import ConversationState, Kind, Role
from bot.store import Conversation, NewMessage
from bot.store.sqlite import SqliteStore

CUSTOMERS = 300
QUESTIONS = 3


async def _ceiling(customers: int, questions: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = await SqliteStore.open(Path(tmp) / "ceiling.sqlite3")
        try:
            now = time.time()
            everyone = [Conversation(id=uuid.uuid4().hex, channel="webchat", user_id=f"v{i}",
                                     state=ConversationState.BOT, lang="zh", created_at=now,
                                     last_activity_at=now) for i in range(customers)]
            for conversation in everyone:
                await store.save_conversation(conversation)

            async def asks(customer: Conversation) -> None:
                for _ in range(questions):
                    found = await store.latest_conversation(customer.channel, customer.user_id)
                    assert found is not None
                    question = await store.append_message(found, NewMessage(
                        role=Role.CUSTOMER, kind=Kind.TEXT, text="退货怎么办", ts=time.time(),
                        platform_msg_id=uuid.uuid4().hex))
                    answer = await store.append_message(found, NewMessage(
                        role=Role.BOT, kind=Kind.TEXT, text="签收后 7 天内可以无理由退货。",
                        ts=time.time()))
                    assert question is not None and answer is not None
                    await store.save_conversation(replace(found, last_activity_at=time.time()),
                                                  settled=(question.seq, answer.seq))

            started = time.perf_counter()
            await asyncio.gather(*(asks(c) for c in everyone))
            return customers * questions / (time.perf_counter() - started)
        finally:
            await store.close()


def questions_per_second(customers: int = CUSTOMERS, questions: int = QUESTIONS) -> float:
    return asyncio.run(_ceiling(customers, questions))
