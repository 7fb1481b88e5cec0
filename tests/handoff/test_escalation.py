"""A whole escalation, over real sockets: customer, bot, queue, agent, 1-minute rule, rating."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.config import Config
from bot.messages import ConversationState
from tests.harness import Kefu

# Timers shrunk so the rules fire within a test; everything else as shipped.
FAST = {"agent_reply_seconds": 0.4, "tick_seconds": 0.05, "auto_assign": False}


@pytest.fixture
async def desk(make_config: Callable[..., Config]) -> AsyncIterator[Kefu]:
    running = await Kefu(make_config(desk=FAST, conversation={
        "queued_reminder_seconds": 0.3})).start()
    await running.add_agent("bob", online=True)  # on duty, so a handoff queues
    await running.add_agent("alice")
    yield running
    await running.stop()


async def test_customer_is_queued_served_held_and_asked_for_a_rating(desk: Kefu) -> None:
    customer = await desk.visitor()
    await customer.open()
    assert [r["kind"] for r in await customer.say("今天天气怎么样")] == ["fallback"]
    (handoff,) = await customer.say("帮我写一首诗")
    assert handoff["kind"] == "handoff"
    conversation = await desk.store.latest_conversation("webchat", customer.id)
    assert conversation is not None and conversation.state is ConversationState.QUEUED
    assert customer.states[-1]["position"] == 1

    # Waiting customers hear their position and an apology at the configured interval.
    holding = await customer.receive_until("message")
    assert holding[-1]["kind"] == "holding"
    assert "您是下一位" in holding[-1]["text"] and "抱歉" in holding[-1]["text"]
    assert "0 位" not in holding[-1]["text"]

    alice = await desk.agent("alice")
    await alice.post("/presence", {"presence": "online"})
    queue = await alice.get("/queue")
    assert [(c["id"], c["position"], c["handoff_reason"]) for c in queue] == [
        (conversation.id, 1, "misses")]
    await alice.act(conversation.id, "take")
    await customer.settle()
    assert customer.states[-1]["state"] == "agent"
    joined = [f for f in customer.frames if f.get("kind") == "notice"]
    assert "alice" in joined[-1]["text"]

    # The full transcript: greeting, both misses with the bot's scores and reasons.
    detail = await alice.get(f"/conversations/{conversation.id}")
    said = [(m["role"], m["kind"], m["text"]) for m in detail["messages"]]
    assert said[0][:2] == ("bot", "greeting")
    assert ("customer", "text", "今天天气怎么样") in said
    assert ("customer", "text", "帮我写一首诗") in said
    fallback = next(m for m in detail["messages"] if m["kind"] == "fallback")
    assert fallback["meta"]["decision"] == "decline" and "below" in fallback["meta"]["why"]
    assert detail["conversation"]["handoff_reason"] == "misses"
    assert [e["type"] for e in detail["events"]] == ["queued", "assigned"]

    await alice.act(conversation.id, "reply", text="您好，我是 alice，这就帮您看看优惠。")
    await customer.settle()
    reply = customer.frames[-1]
    assert (reply["role"], reply["name"], reply["text"]) == (
        "agent", "alice", "您好，我是 alice，这就帮您看看优惠。")

    # The customer writes; alice says nothing: the bot holds within the rule.
    await customer.say("好的，谢谢")
    held = await customer.receive_until("message")
    assert (held[-1]["role"], held[-1]["kind"]) == ("bot", "holding")
    assert held[-1]["text"] == "正在为您查询，请稍候。"
    breaches = [e for e in await desk.store.events(conversation.id) if e.type == "reply_breach"]
    assert len(breaches) == 1 and breaches[0].agent_id is not None
    assert breaches[0].detail["waited_seconds"] >= FAST["agent_reply_seconds"]
    (chat,) = await alice.get("/chats")
    assert chat["flagged"] is True and chat["unread"] == 1

    await alice.act(conversation.id, "reply", text="已为您申请了 10 元优惠券，请查收。")
    (chat,) = await alice.get("/chats")
    assert chat["flagged"] is False and chat["unread"] == 0

    await alice.act(conversation.id, "close")
    await customer.settle()
    request = [f for f in customer.frames if f.get("kind") == "rating_request"][-1]
    assert request["quick_replies"][0] == "5 非常满意"
    assert customer.states[-1]["state"] == "closed"
    (thanks,) = await customer.say(request["quick_replies"][0])
    assert thanks["kind"] == "rating_thanks"
    rated = await desk.store.get_conversation(conversation.id)
    assert rated is not None and rated.rating == 5 and rated.close_reason == "resolved"
    events = [e.type for e in await desk.store.events(conversation.id)]
    assert events == ["queued", "assigned", "first_response", "reply_breach", "closed"]


async def test_the_agent_sees_messages_live(desk: Kefu) -> None:
    customer, conversation_id = await desk.queued_customer()
    alice = await desk.agent("alice")
    await alice.act(conversation_id, "take")
    await customer.say("我的订单号是 12345")
    frame = await alice.next_event("message", conversation_id)
    while frame["message"]["role"] != "customer":
        frame = await alice.next_event("message", conversation_id)
    assert frame["message"]["text"] == "我的订单号是 12345"


async def test_typed_rating_after_close_and_a_new_question_starts_afresh(desk: Kefu) -> None:
    customer, conversation_id = await desk.queued_customer()
    alice = await desk.agent("alice")
    await alice.act(conversation_id, "take")
    await alice.act(conversation_id, "close")
    await customer.settle()
    assert [r["kind"] for r in await customer.say("4")] == ["rating_thanks"]
    replies = await customer.say("3个月前买的能退吗")  # not a rating: a new conversation
    assert replies[0]["kind"] == "greeting"
    rated = await desk.store.get_conversation(conversation_id)
    assert rated is not None and rated.rating == 4


async def test_agent_can_say_please_wait_with_one_click(desk: Kefu) -> None:
    customer, conversation_id = await desk.queued_customer()
    alice = await desk.agent("alice")
    await alice.act(conversation_id, "take")
    await alice.act(conversation_id, "hold")
    await customer.settle()
    assert (customer.frames[-1]["role"], customer.frames[-1]["kind"]) == ("agent", "holding")
    held = await desk.store.get_conversation(conversation_id)
    assert held is not None and held.awaiting_agent_since is None  # it counts as a reply


async def test_the_customer_sees_that_the_agent_is_typing(desk: Kefu) -> None:
    customer, conversation_id = await desk.queued_customer()
    alice = await desk.agent("alice")
    await alice.act(conversation_id, "take")
    await customer.settle()
    await alice.act(conversation_id, "typing")
    frame = await customer.receive()
    assert frame == {"type": "typing", "conversation_id": conversation_id}
    bob = await desk.agent("bob")
    assert (await bob.act(conversation_id, "typing", status=403))["error"] == "not_yours"
