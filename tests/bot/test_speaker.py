"""What the speaker says is stored ahead of background work (the customer waits for it), and
settled once delivered, by the step's save or on its way out."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bot.cluster import LocalFanout
from bot.config import Config
from bot.messages import ConversationState, Kind, OutboundReply, Role, StoredMessage
from bot.metrics import Metrics
from bot.speaker import Speaker
from bot.store import Conversation, ConversationEvent, WebhookDelivery
from bot.store.sqlite import SqliteStore
from bot.store.worker import MAX_GROUP
from tests.harness import Kefu, wait_for

BACKGROUND = 3 * MAX_GROUP  # three transactions' worth of events, queued before the reply


class CountingChannel:
    """Counts, as each message is handed to it, the events already on disk."""

    name = "test"

    def __init__(self, path: Path) -> None:
        self._path = path
        self.events_on_disk: list[int] = []

    async def send(self, conversation: Conversation, message: StoredMessage) -> None:
        with sqlite3.connect(self._path) as db:
            self.events_on_disk.append(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


async def test_a_reply_is_not_stored_behind_background_work_queued_before_it(
        tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = await SqliteStore.open(path)
    channel = CountingChannel(path)
    speaker = Speaker(store, {"test": channel}, time.time, LocalFanout(), Metrics())
    now = time.time()
    conversation = Conversation("c1", "test", "u1", ConversationState.AGENT, "zh", now, now)
    await store.save_conversation(conversation)
    running, release = threading.Event(), threading.Event()

    def hold() -> None:  # the SQL thread is busy while the background work queues up
        running.set()
        release.wait(10)

    held = store._worker.submit(hold, ())
    await asyncio.to_thread(running.wait, 10)
    background = [asyncio.ensure_future(store.record_event(
        ConversationEvent("c1", now + i, "reply_breach"))) for i in range(BACKGROUND)]
    await asyncio.sleep(0)
    reply = asyncio.ensure_future(speaker.say(conversation, OutboundReply(
        "您好，我是客服小王，马上为您查询。", Kind.TEXT, role=Role.AGENT)))  # from a desk job
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(held, reply, *background)
    (on_disk,) = channel.events_on_disk
    assert on_disk <= MAX_GROUP, f"the reply waited for {on_disk} background writes"
    await store.close()


async def test_replies_of_a_step_are_settled_by_its_save_or_on_the_way_out_if_it_fails(
        tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = await SqliteStore.open(path)
    speaker = Speaker(store, {"test": CountingChannel(path)}, time.time, LocalFanout(),
                      Metrics())
    now = time.time()
    conversation = Conversation("c1", "test", "u1", ConversationState.BOT, "zh", now, now)
    await store.save_conversation(conversation)

    async def unsettled() -> list[int]:
        return [m.seq for m in await store.unsettled(before=time.time() + 1)]

    async with speaker.settling_with_the_save() as delivered:
        said = await speaker.say(conversation, OutboundReply("签收后 7 天内可以无理由退货。",
                                                             Kind.ANSWER))
    assert await unsettled() == [said.message.seq]  # delivered, left for the save
    await store.save_conversation(conversation, settled=await speaker.settled_here(
        conversation.id, delivered))
    assert await unsettled() == []

    try:
        async with speaker.settling_with_the_save():
            await speaker.say(conversation, OutboundReply("您好", Kind.SMALL_TALK))
            raise RuntimeError("the step fails after the reply went out")
    except RuntimeError:
        pass
    assert await unsettled() == [], "recovery would send the delivered reply again"
    await store.close()


async def test_a_chat_an_agent_takes_at_once_leaves_nothing_for_recovery_to_send_again(
        make_config: Callable[..., Config]) -> None:
    kefu = await Kefu(make_config()).start()  # the desk assigns the chat by itself
    try:
        await kefu.add_agent("duty", online=True)
        _, conversation_id = await kefu.queued_customer()  # "转人工"

        async def joined() -> bool:
            return any(m.kind is Kind.NOTICE
                       for m in await kefu.store.messages(conversation_id))

        await wait_for(joined)
        await kefu.router.idle()
        left = await kefu.store.unsettled(before=math.inf)
        assert left == [], [(m.seq, m.kind.value, m.text) for m in left]
        (notice,) = [m for m in await kefu.store.messages(conversation_id)
                     if m.kind is Kind.NOTICE]
        assert "reply_to" not in notice.meta  # the desk said it, not in answer to 转人工
    finally:
        await kefu.stop()


async def test_a_save_failing_after_the_answer_went_out_leaves_only_the_question(
        kefu: Kefu, monkeypatch: pytest.MonkeyPatch) -> None:
    visitor = await kefu.visitor()
    await visitor.open()
    save = kefu.store.save_conversation
    failed: list[int] = []

    async def save_failing_once(conversation: Conversation, settled: Sequence[int] = (),
                                deliveries: Sequence[WebhookDelivery] = ()) -> None:
        if settled and not failed:
            failed.append(1)
            raise sqlite3.OperationalError("database is locked")
        await save(conversation, settled, deliveries)

    monkeypatch.setattr(kefu.store, "save_conversation", save_failing_once)
    assert [m["kind"] for m in await visitor.say("退货怎么办")] == ["answer"]
    left = await kefu.store.unsettled(before=math.inf)
    # the question is recovery's to finish; the answer it got must not be sent again
    assert [m.role for m in left] == [Role.CUSTOMER]
