"""What a crash left half-done is finished: handled once, delivered once, never looped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from bot.config import Config
from bot.errors import ChannelSendError
from bot.messages import ConversationState, Kind, Role
from bot.store import Conversation, NewMessage
from channels.webchat.channel import WebChatChannel
from knowledge_base.matcher import Matcher
from tests.harness import Kefu
from tests.redis_support import REDIS_URL, forget, require_redis, unique_prefix


@pytest.fixture
async def quick(make_config: Callable[..., Config]) -> AsyncIterator[Kefu]:
    kefu = await Kefu(make_config(conversation={"recovery_after_seconds": 0.3})).start()
    yield kefu
    await kefu.stop()


async def test_a_message_stored_but_never_handled_is_answered(quick: Kefu) -> None:
    visitor = await quick.visitor()
    await visitor.open()
    conversation = await quick.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    # As if the process died right after storing (and acknowledging) it.
    await quick.store.append_message(conversation, NewMessage(
        role=Role.CUSTOMER, kind=Kind.TEXT, text="退货怎么办", ts=time.time(),
        platform_msg_id="lost-1"))
    frames = await visitor.receive_until("message")
    while frames[-1].get("kind") != "answer":
        frames += await visitor.receive_until("message")
    assert frames[-1]["text"] == "签收后 7 天内可以无理由退货。"
    await quick.router.idle()
    assert await quick.store.unsettled(before=time.time() + 60) == []


async def test_a_reply_the_channel_could_not_take_is_delivered_later(
    quick: Kefu, monkeypatch: pytest.MonkeyPatch
) -> None:
    visitor = await quick.visitor()
    await visitor.open()
    original = WebChatChannel.send
    failures = [1]

    async def flaky(self: WebChatChannel, conversation: object, message: object) -> None:
        if failures:
            failures.pop()
            raise ChannelSendError("network blip", retryable=True)
        await original(self, conversation, message)  # type: ignore[arg-type]

    monkeypatch.setattr(WebChatChannel, "send", flaky)
    await visitor.send({"type": "message", "text": "退货怎么办", "client_msg_id": "r1"})
    frames = await visitor.receive_until("message")
    while frames[-1].get("kind") != "answer":
        frames += await visitor.receive_until("message")
    assert frames[-1]["text"] == "签收后 7 天内可以无理由退货。"  # on the second try
    answers = [m for m in await quick.store.messages(frames[-1]["conversation_id"])
               if m.kind is Kind.ANSWER]
    assert len(answers) == 1  # delivered again, not answered again


async def test_a_message_whose_handling_failed_is_not_retried_for_ever(
    quick: Kefu, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Matcher, text: str, limit: int = 3) -> object:
        raise ValueError("index corrupted")

    monkeypatch.setattr(Matcher, "match", broken)
    visitor = await quick.visitor()
    await visitor.open()
    (apology,) = await visitor.say("退货怎么办")
    assert "您的消息已保存" in apology["text"]
    await asyncio.sleep(1.0)  # several recovery sweeps
    conversation = await quick.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    said = await quick.store.messages(conversation.id)
    assert [m.kind for m in said if m.role is not Role.CUSTOMER].count(Kind.FALLBACK) == 1


@pytest.fixture(params=["sqlite", "redis"])
async def no_recovery(request: pytest.FixtureRequest, make_config: Callable[..., Config]
                      ) -> AsyncIterator[Kefu]:
    """On each store, with recovery too late to be the one that answers."""
    store: dict[str, str] = {}
    if request.param == "redis":
        await require_redis()
        store = {"type": "redis", "url": REDIS_URL, "prefix": unique_prefix()}
    kefu = await Kefu(make_config(store=store,
                                  conversation={"recovery_after_seconds": 600})).start()
    yield kefu
    await kefu.stop()
    if store:
        await forget(store["prefix"])


async def test_an_older_unhandled_message_is_answered_before_the_next_one(no_recovery: Kefu
                                                                          ) -> None:
    visitor = await no_recovery.visitor()
    await visitor.open()
    await visitor.say("你好")  # handled and settled: not answered again below
    conversation = await no_recovery.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    lost = await no_recovery.store.append_message(conversation, NewMessage(  # its process died
        role=Role.CUSTOMER, kind=Kind.TEXT, text="什么时候退款", ts=time.time(),
        platform_msg_id="lost-2"))
    answers = await visitor.say("退货怎么办")  # the living process answers both, in order
    assert [a["text"] for a in answers] == ["退款 1-3 个工作日到账。",
                                            "签收后 7 天内可以无理由退货。"]
    said = await no_recovery.store.messages(conversation.id)
    assert lost is not None and [m.meta.get("reply_to") for m in said[lost.seq:]
                                 if m.role is Role.BOT] == [lost.seq, lost.seq + 1]
    # Nothing is left for recovery to answer a second time.
    assert await no_recovery.store.unsettled(before=time.time() + 60) == []


async def test_a_customer_whose_greeting_a_crash_lost_is_greeted_by_recovery(quick: Kefu
                                                                             ) -> None:
    visitor = await quick.visitor()
    now = time.time()
    conversation = Conversation(id="crashed-before-greeting", channel="webchat",
                                user_id=visitor.id, state=ConversationState.BOT, lang="zh",
                                created_at=now, last_activity_at=now)
    # As if the process died after storing the first message, before the greeting.
    await quick.store.save_conversation(conversation)
    await quick.store.append_message(conversation, NewMessage(
        role=Role.CUSTOMER, kind=Kind.TEXT, text="退货怎么办", ts=now, platform_msg_id="first"))
    frames = await visitor.receive_until("message")
    while frames[-1].get("kind") != "answer":
        frames += await visitor.receive_until("message")
    said = [(f["kind"], f["seq"]) for f in frames if f["type"] == "message"]
    assert said == [("greeting", 2), ("answer", 3)]
    await asyncio.sleep(1.0)  # several recovery sweeps: greeted once
    kinds = [m.kind for m in await quick.store.messages(conversation.id)]
    assert kinds == [Kind.TEXT, Kind.GREETING, Kind.ANSWER]
