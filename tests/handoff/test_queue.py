"""The queue: fair order with complaints first, automatic assignment, abandonment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Config
from bot.messages import ConversationState
from bot.store import AgentRole
from tests.harness import Kefu, wait_for
from tests.redis_support import REDIS_URL, forget, require_redis, unique_prefix


async def test_first_come_first_served_but_complaints_go_first(kefu: Kefu) -> None:
    first, first_id = await kefu.queued_customer()
    second, second_id = await kefu.queued_customer()
    angry, angry_id = await kefu.queued_customer("我要投诉，快递员态度太差")
    assert [await kefu.store.queue_position(c) for c in (angry_id, first_id, second_id)] == [
        1, 2, 3]
    assert angry.states[-1]["position"] == 1
    alice = await kefu.agent("duty")
    assert [c["id"] for c in await alice.get("/queue")] == [angry_id, first_id, second_id]

    await alice.act(angry_id, "take")
    await first.state_becomes(position=1)  # the queue moved up
    await second.state_becomes(position=2)


async def test_chats_go_to_the_least_busy_online_agent_under_their_limit(
    make_config: Callable[..., Config],
) -> None:
    kefu = await Kefu(make_config(desk={"tick_seconds": 0.05})).start()
    try:
        busy = await kefu.add_agent("busy", online=True, max_chats=1)
        await kefu.add_agent("away")  # not online: gets nothing
        _, first = await kefu.queued_customer()
        await wait_for(lambda: _held_by(kefu, first, busy.id))
        free = await kefu.add_agent("free", online=True, max_chats=2)
        _, second = await kefu.queued_customer()
        _, third = await kefu.queued_customer()
        await wait_for(lambda: _held_by(kefu, second, free.id))
        await wait_for(lambda: _held_by(kefu, third, free.id))
        _, fourth = await kefu.queued_customer()  # everyone is at their limit: it waits
        waiting = await kefu.store.get_conversation(fourth)
        assert waiting is not None and waiting.state is ConversationState.QUEUED
        agent = await kefu.agent("busy")
        await agent.act(first, "close")  # a slot frees up: the next in line gets it
        await wait_for(lambda: _held_by(kefu, fourth, busy.id))
    finally:
        await kefu.stop()


async def _held_by(kefu: Kefu, conversation_id: str, agent_id: str) -> bool:
    conversation = await kefu.store.get_conversation(conversation_id)
    return (conversation is not None and conversation.state is ConversationState.AGENT
            and conversation.agent_id == agent_id)


async def test_an_agent_at_their_limit_cannot_take_more(kefu: Kefu) -> None:
    await kefu.add_agent("solo", max_chats=1)
    solo = await kefu.agent("solo")
    _, first = await kefu.queued_customer()
    _, second = await kefu.queued_customer()
    await solo.act(first, "take")
    refused = await solo.act(second, "take", status=409)
    assert refused["error"] == "at_limit"
    assert (await solo.act(first, "take", status=409))["error"] == "not_available"


async def test_a_customer_who_leaves_the_queue_is_recorded_as_abandoned(
    make_config: Callable[..., Config],
) -> None:
    kefu = await Kefu(make_config(desk={"tick_seconds": 0.05, "abandon_after_seconds": 0.2,
                                        "auto_assign": False})).start()
    try:
        await kefu.add_agent("duty", online=True)
        leaver, leaver_id = await kefu.queued_customer()
        stayer, stayer_id = await kefu.queued_customer()
        assert stayer.states[-1]["position"] == 2
        await leaver.disconnect()

        async def abandoned() -> bool:
            c = await kefu.store.get_conversation(leaver_id)
            return c is not None and c.state is ConversationState.CLOSED

        await wait_for(abandoned)
        closed = await kefu.store.get_conversation(leaver_id)
        assert closed is not None and closed.close_reason == "abandoned"
        (event,) = [e for e in await kefu.store.events(leaver_id) if e.type == "abandoned"]
        assert event.detail["waited_seconds"] >= 0.2
        await stayer.state_becomes(position=1)
        still = await kefu.store.get_conversation(stayer_id)
        assert still is not None and still.state is ConversationState.QUEUED
    finally:
        await kefu.stop()


async def test_transfer_to_a_colleague(kefu: Kefu) -> None:
    await kefu.add_agent("alice")
    await kefu.add_agent("bob", online=True)
    customer, conversation_id = await kefu.queued_customer()
    alice, bob = await kefu.agent("alice"), await kefu.agent("bob")
    await alice.act(conversation_id, "take")
    offline = await alice.act(conversation_id, "transfer", to="alice", status=409)
    assert offline["error"] == "same_agent"
    await alice.act(conversation_id, "transfer", to="bob")
    await customer.settle()
    assert "bob" in customer.frames[-1]["text"]
    assert [c["id"] for c in await bob.get("/chats")] == [conversation_id]
    assert await alice.get("/chats") == []
    refused = await alice.act(conversation_id, "reply", text="还在吗", status=403)
    assert refused["error"] == "not_yours"
    await bob.act(conversation_id, "reply", text="您好，我是 bob，接着为您处理。")
    (event,) = [e for e in await kefu.store.events(conversation_id) if e.type == "transferred"]
    assert event.detail["to"] != event.detail["from_agent"]


async def test_hand_back_to_the_bot(kefu: Kefu) -> None:
    customer, conversation_id = await kefu.queued_customer()
    duty = await kefu.agent("duty")
    await duty.act(conversation_id, "take")
    await duty.act(conversation_id, "handback")
    await customer.settle()
    assert customer.states[-1]["state"] == "bot"
    assert "智能客服" in customer.frames[-1]["text"]
    (answer,) = await customer.say("退货怎么办")
    assert answer["kind"] == "answer"


async def test_vague_or_curt_replies_are_held_back_until_confirmed(kefu: Kefu) -> None:
    customer, conversation_id = await kefu.queued_customer()
    duty = await kefu.agent("duty")
    await duty.act(conversation_id, "take")
    for text in ("这个我也不清楚", "嗯", "OK!", "差不多吧"):
        refused = await duty.act(conversation_id, "reply", text=text, status=422)
        assert refused["error"] == "vague_reply" and refused["phrases"]
    await duty.act(conversation_id, "reply", text="嗯，我帮您查一下物流，两分钟内回复您。")
    await duty.act(conversation_id, "reply", text="不清楚", confirm=True)
    await customer.settle()
    sent = [f["text"] for f in customer.frames if f.get("role") == "agent"]
    assert sent == ["嗯，我帮您查一下物流，两分钟内回复您。", "不清楚"]


async def test_bad_agent_requests_get_clear_errors(kefu: Kefu) -> None:
    _, conversation_id = await kefu.queued_customer()
    duty = await kefu.agent("duty")
    assert (await duty.act("nope", "take", status=404))["error"] == "not_found"
    assert (await duty.act(conversation_id, "reply", text="hi", status=409))["error"] == "not_held"
    await duty.act(conversation_id, "take")
    assert (await duty.act(conversation_id, "reply", text="  ", status=400))["error"] == \
        "empty_text"
    assert (await duty.act(conversation_id, "reply", text="x" * 5000, status=400))["error"] == \
        "text_too_long"
    assert (await duty.act(conversation_id, "reply", status=400))["error"] == "bad_request"
    assert (await duty.act(conversation_id, "read", seq="x", status=400))["error"] == \
        "bad_request"
    assert (await duty.act(conversation_id, "transfer", to="ghost", status=404))["error"] == \
        "not_found"
    response = await duty.client.post(f"/agent/api/conversations/{conversation_id}/reply",
                                      data=b"{not json", headers=duty.headers)
    assert response.status == 400 and (await response.json())["error"] == "bad_json"


async def test_the_next_in_line_hears_so_and_the_wait_comes_from_the_desks_pace(
        kefu: Kefu) -> None:
    duty = await kefu.agent("duty")
    for _ in range(3):  # the desk has taken three customers lately
        _, served = await kefu.queued_customer()
        await duty.act(served, "take")
    first, second = await kefu.visitor(), await kefu.visitor()
    await first.say("转人工")
    await second.say("转人工")
    (next_in_line,) = await first.say("还要等多久")
    assert "您是下一位" in next_in_line["text"] and "0 位" not in next_in_line["text"]
    (behind,) = await second.say("还要等多久")
    assert "前面还有 1 位" in behind["text"]
    assert "预计还需等待约" in behind["text"] and "分钟" in behind["text"]
    assert await second.say("在吗") == []  # not again sooner than the interval


@pytest.mark.parametrize("engine", ["sqlite", "redis"])
async def test_a_disabled_or_removed_agents_open_chats_go_back_to_the_queue(
        make_config: Callable[..., Config], engine: str) -> None:
    store: dict[str, Any] = {}
    if engine == "redis":
        await require_redis()
        store = {"type": "redis", "url": REDIS_URL, "prefix": unique_prefix()}
    kefu = await Kefu(make_config(store=store, desk={"auto_assign": False,
                                                     "tick_seconds": 0.05})).start()
    try:
        await kefu.add_agent("boss", role=AgentRole.SUPERVISOR)
        await kefu.add_agent("duty", online=True)  # someone is on duty: they stay queued
        leaving = await kefu.add_agent("leaving", online=True)
        gone = await kefu.add_agent("gone", online=True)
        first, first_id = await kefu.queued_customer()
        _, second_id = await kefu.queued_customer()
        _, third_id = await kefu.queued_customer()
        await kefu.desk.take(leaving, first_id)
        await kefu.desk.take(leaving, second_id)
        await kefu.desk.take(gone, third_id)

        boss = await kefu.agent("boss")
        await boss.post(f"/agents/{leaving.id}/disable")
        for cid in (first_id, second_id):
            conversation = await kefu.store.get_conversation(cid)
            assert conversation is not None
            assert (conversation.state, conversation.agent_id) == (ConversationState.QUEUED,
                                                                   None)
        assert [c["id"] for c in await boss.get("/queue")] == [first_id, second_id]
        await first.state_becomes(state="queued", position=1)
        while not any("转接其他客服" in f.get("text", "") for f in first.frames
                      if f["type"] == "message"):
            await first.receive()  # told, not left wondering
        events = [e for e in await kefu.store.events(first_id) if e.type == "requeued"]
        assert [(e.agent_id, e.detail["why"]) for e in events] == [(leaving.id, "disabled")]

        await kefu.store.delete_agent(gone.id)  # `kefu agent remove gone`, another process
        await wait_for(lambda: _queued(kefu, third_id))
        assert [c["id"] for c in await boss.get("/queue")] == [first_id, second_id, third_id]
    finally:
        await kefu.stop()
        if store:
            await forget(store["prefix"])


async def _queued(kefu: Kefu, conversation_id: str) -> bool:
    conversation = await kefu.store.get_conversation(conversation_id)
    return conversation is not None and conversation.state is ConversationState.QUEUED
