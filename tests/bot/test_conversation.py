"""The conversation engine end to end: a real server, real WebSocket clients."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Config
from bot.messages import ConversationState
from knowledge_base.matcher import Matcher
from tests.harness import Kefu


async def test_first_message_is_greeted_first_then_answered(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    replies = await visitor.say("退货怎么办")
    assert [r["kind"] for r in replies] == ["greeting", "answer"]
    assert "测试店" in replies[0]["text"]
    assert replies[1]["text"] == "签收后 7 天内可以无理由退货。"
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    assert conversation.greeting_latency_ms is not None
    assert 0 <= conversation.greeting_latency_ms < 5000
    assert conversation.greeting_breach is None


async def test_opening_the_chat_greets_once(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    assert [r["kind"] for r in await visitor.open()] == ["greeting"]
    assert [r["kind"] for r in await visitor.say("退货怎么办")] == ["answer"]
    assert await visitor.open() == []  # opening again in the same conversation
    assert [r["kind"] for r in await visitor.say("什么时候退款")] == ["answer"]


async def test_greeting_language_follows_the_customer(kefu: Kefu) -> None:
    english = await kefu.visitor()
    replies = await english.say("when are you open")
    assert replies[0]["kind"] == "greeting"
    assert "Welcome" in replies[0]["text"]
    assert replies[1]["text"].startswith("We work Monday to Sunday 00:00-23:59")
    hinted = await kefu.visitor()
    assert "Welcome" in (await hinted.open(lang="en"))[0]["text"]


async def test_slow_matching_does_not_delay_another_customers_greeting(
    kefu: Kefu, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Matcher.match

    def slow_match(self: Matcher, *args: Any, **kwargs: Any) -> object:
        time.sleep(1.5)  # a knowledge base far larger than this one
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Matcher, "match", slow_match)
    busy = await kefu.visitor()
    await busy.open()
    await busy.send({"type": "message", "text": "退货怎么办", "client_msg_id": "slow-1"})
    await busy.receive_until("ack")
    newcomer = await kefu.visitor()
    await newcomer.send({"type": "open"})
    greeting = await newcomer.receive_until("message")
    assert greeting[-1]["kind"] == "greeting"
    # The slow answer is still being worked out while the newcomer has been greeted.
    assert not [f for f in busy.frames if f.get("kind") == "answer"]
    await busy.settle()
    assert busy.frames[-1]["kind"] == "answer"


async def test_late_greeting_is_recorded_as_a_breach_with_its_cause(
    make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    kefu = await Kefu(make_config(greeting={"breach_seconds": 1e-9})).start()
    try:
        visitor = await kefu.visitor()
        with caplog.at_level(logging.WARNING, logger="bot.router"):
            await visitor.open()
        conversation = await kefu.store.latest_conversation("webchat", visitor.id)
        assert conversation is not None and conversation.greeting_breach is not None
        assert " s" in conversation.greeting_breach  # e.g. "loading the conversation...: 0.00 s"
        assert any("greeting breach" in r.message and conversation.id in r.message
                   for r in caplog.records)
    finally:
        await kefu.stop()


async def test_unsure_match_asks_which_question_was_meant(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    await visitor.open()
    (clarify,) = await visitor.say("退")  # return, or refund?
    assert clarify["kind"] == "clarify"
    options = clarify["quick_replies"]
    assert any(q in options for q in ("可以退货吗", "退货怎么办", "退货政策是什么"))
    assert any(q in options for q in ("退款多久到账", "什么时候退款"))
    assert clarify["quick_replies"][-1] == "人工客服"
    (answer,) = await visitor.say(clarify["quick_replies"][0])
    assert answer["kind"] == "answer"


async def test_never_guesses_and_hands_off_after_two_misses(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    await visitor.open()
    (first,) = await visitor.say("今天天气怎么样")
    assert first["kind"] == "fallback"
    assert first["quick_replies"] == ["人工客服"]
    (second,) = await visitor.say("帮我写一首诗")
    assert second["kind"] == "handoff"
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    assert conversation.state is ConversationState.QUEUED
    assert conversation.handoff_reason == "misses"
    assert visitor.states[-1] == {"type": "state", "conversation_id": conversation.id,
                                  "state": "queued", "position": 1}
    unanswered = [u.text for u in await kefu.store.unanswered()]
    assert unanswered == ["今天天气怎么样", "帮我写一首诗"]


async def test_an_answer_resets_the_miss_count(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    await visitor.open()
    assert (await visitor.say("今天天气怎么样"))[0]["kind"] == "fallback"
    assert (await visitor.say("退货怎么办"))[0]["kind"] == "answer"
    assert (await visitor.say("帮我写一首诗"))[0]["kind"] == "fallback"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("转人工", "request"), ("我要人工客服", "request"), ("客服", "request"),
     ("I want to talk to a human", "request"), ("我要投诉你们的快递", "complaint"),
     ("I have a complaint", "complaint")],
)
async def test_asking_for_a_person_or_complaining_hands_off(
    kefu: Kefu, text: str, reason: str
) -> None:
    visitor = await kefu.visitor()
    replies = await visitor.say(text)
    assert [r["kind"] for r in replies] == ["greeting", "handoff"]
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    assert conversation.state is ConversationState.QUEUED
    assert conversation.handoff_reason == reason


async def test_a_question_that_mentions_customer_service_is_still_answered(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    replies = await visitor.say("客服电话是多少")
    assert replies[-1]["text"] == "客服热线 400-800-1234。"


async def test_entry_marked_handoff_answers_then_queues(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    replies = await visitor.say("包裹丢了怎么办")
    assert [r["kind"] for r in replies] == ["greeting", "answer"]
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None and conversation.state is ConversationState.QUEUED
    assert conversation.handoff_reason == "entry parcel-lost"


async def test_queued_customer_is_told_their_position_not_ignored(kefu: Kefu) -> None:
    first, second = await kefu.visitor(), await kefu.visitor()
    await first.say("转人工")
    await second.say("转人工")
    (holding,) = await second.say("还要等多久")
    assert holding["kind"] == "holding"
    assert "前面还有 1 位" in holding["text"]
    assert second.states[-1]["position"] == 2
    assert await second.say("在吗") == []  # reminders are spaced, the position still comes
    assert second.states[-1]["position"] == 2


async def test_messages_of_one_conversation_are_answered_in_order(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    await visitor.open()
    questions = ["退货怎么办", "什么时候退款", "客服电话是多少", "退货政策是什么"]
    for i, text in enumerate(questions):
        await visitor.send({"type": "message", "text": text, "client_msg_id": f"q{i}"})
    for _ in questions:
        await visitor.receive_until("ack")
    await visitor.settle()
    answers = [f["text"] for f in visitor.frames if f.get("kind") == "answer"]
    assert answers == ["签收后 7 天内可以无理由退货。", "退款 1-3 个工作日到账。",
                       "客服热线 400-800-1234。", "签收后 7 天内可以无理由退货。"]


async def test_customer_back_after_idle_timeout_starts_a_new_greeted_conversation(
    kefu: Kefu,
) -> None:
    visitor = await kefu.visitor()
    await visitor.say("退货怎么办")
    old = await kefu.store.latest_conversation("webchat", visitor.id)
    assert old is not None
    await kefu.age_out(old.id)
    replies = await visitor.say("什么时候退款")
    assert [r["kind"] for r in replies] == ["greeting", "answer"]
    new = await kefu.store.latest_conversation("webchat", visitor.id)
    assert new is not None and new.id != old.id
    closed = await kefu.store.get_conversation(old.id)
    assert closed is not None and closed.state is ConversationState.CLOSED


async def test_rating_is_stored_and_thanked(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    await visitor.say("退货怎么办")
    await visitor.send({"type": "rating", "score": 5})
    (thanks,) = await visitor.receive_until("message")
    assert thanks["kind"] == "rating_thanks"
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None and conversation.rating == 5


async def test_many_customers_at_once_each_get_greeting_and_answer(kefu: Kefu) -> None:
    visitors = [await kefu.visitor() for _ in range(20)]
    results = await asyncio.gather(*(v.say("退货怎么办") for v in visitors))
    for replies in results:
        assert [r["kind"] for r in replies] == ["greeting", "answer"]


async def test_a_failure_inside_kefu_still_answers_the_customer(
    kefu: Kefu, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_match(self: Matcher, *args: Any, **kwargs: Any) -> object:
        raise ValueError("index corrupted")

    monkeypatch.setattr(Matcher, "match", broken_match)
    visitor = await kefu.visitor()
    await visitor.open()
    with caplog.at_level(logging.ERROR):
        (reply,) = await visitor.say("退货怎么办")
    assert reply["kind"] == "fallback"
    assert "您的消息已保存" in reply["text"]
    assert "index corrupted" in caplog.text and visitor.id in caplog.text
    monkeypatch.undo()
    assert (await visitor.say("退货怎么办"))[0]["kind"] == "answer"  # the lane lives on


async def test_opening_the_chat_after_the_idle_timeout_greets_a_new_conversation(
        kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    assert [m["kind"] for m in await visitor.open()] == ["greeting"]
    await visitor.say("退货怎么办")
    old = await kefu.store.latest_conversation("webchat", visitor.id)
    assert old is not None
    await kefu.age_out(old.id)
    assert [m["kind"] for m in await visitor.open()] == ["greeting"]
    new = await kefu.store.latest_conversation("webchat", visitor.id)
    assert new is not None and new.id != old.id and new.greeting_latency_ms is not None
    closed = await kefu.store.get_conversation(old.id)
    assert closed is not None and closed.state is ConversationState.CLOSED
    assert await kefu.store.unsettled(before=math.inf) == []  # nothing for recovery to resend
    assert await visitor.open() == []  # the new one goes on: no second greeting
