"""kefu as a Chatwoot API inbox's channel, against the stand-in of Chatwoot on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bot.config import load_config
from bot.errors import ConfigError
from bot.messages import ConversationState
from handoff.bridges.chatwoot.bridge import ROUTE
from tests.handoff.bridges.conftest import AFTER_RESTART, World
from tests.harness import Visitor, wait_for


async def next_said(visitor: Visitor) -> dict[str, Any]:
    """The next message kefu sends the customer."""
    while True:
        frame = await visitor.receive()
        if frame["type"] == "message" and frame["role"] != "customer":
            return frame


async def test_a_handoff_opens_a_chatwoot_conversation_with_the_whole_transcript(
        world: World) -> None:
    visitor, conversation = await world.handed_off("退货怎么办")  # answered by the bot first
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    await wait_for(lambda: any("handed this customer over" in m.content
                               for m in world.chatwoot.thread(chatwoot)))
    thread = world.chatwoot.thread(chatwoot)
    said = [(m.message_type, m.private, m.content) for m in thread]
    assert ("incoming", False, "退货怎么办") in said
    assert ("incoming", False, "转人工") in said
    bot_lines = [m for m in thread if m.content.startswith("[kefu bot]")]
    assert bot_lines and all(m.private for m in bot_lines)  # agents read them; never sent
    assert any("7 天内可以无理由退货" in m.content for m in bot_lines)
    note = next(m for m in thread if "handed this customer over" in m.content)
    assert note.private and "the customer asked for a person" in note.content
    assert "return-policy" in note.content  # the bot's best match, with its score
    contact = world.chatwoot.contacts[chatwoot.contact_id]
    assert contact["identifier"].startswith("kefu:C")
    assert contact["custom_attributes"]["kefu_webchat"] == visitor.id
    assert chatwoot.source_id == f"webchat:{visitor.id}"
    # Chatwoot webhooked every one of kefu's own posts back; none reached the customer
    await wait_for(lambda: len(world.chatwoot.delivered) >= len(thread))
    await visitor.settle()
    stored = await world.kefu.store.messages(conversation.id)
    assert not [m for m in stored if m.meta.get("via") == "chatwoot"]


async def test_an_agent_takes_and_answers_in_chatwoot_and_resolves(world: World) -> None:
    visitor, conversation = await world.handed_off()
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    await world.chatwoot.assign(chatwoot, "alice")
    joined = await next_said(visitor)
    assert "Alice" in joined["text"] and joined["kind"] == "notice"
    await world.chatwoot.note(chatwoot, "alice", "VIP, be nice")  # a private note
    await world.chatwoot.bot_says(chatwoot, "Captain thinks: refund")  # Chatwoot's own bot
    await world.chatwoot.reply(chatwoot, "alice", "您好，我来帮您处理退货。")
    reply = await next_said(visitor)
    assert reply["text"] == "您好，我来帮您处理退货。" and reply["role"] == "agent"
    held = await world.kefu.store.get_conversation(conversation.id)
    assert held is not None and held.state is ConversationState.AGENT
    assert held.agent_id == "chatwoot:Alice"

    await visitor.say("订单号 12345")  # mirrored as the contact's message
    await wait_for(lambda: any(m.content == "订单号 12345" and m.message_type == "incoming"
                               for m in world.chatwoot.thread(chatwoot)))

    copied = [m.content for m in world.chatwoot.thread(chatwoot)]
    assert copied.count("您好，我来帮您处理退货。") == 1  # Alice's reply, not copied back
    await world.chatwoot.resolve(chatwoot)
    rating = await next_said(visitor)
    assert rating["kind"] == "rating_request"
    texts = [m.text for m in await world.kefu.store.messages(conversation.id)]
    assert "VIP, be nice" not in texts and "Captain thinks: refund" not in texts
    events = [e.type for e in await world.kefu.store.events(conversation.id)]
    assert {"queued", "assigned", "first_response", "closed"} <= set(events)


async def test_a_webhook_delivered_twice_reaches_the_customer_once(world: World) -> None:
    visitor, conversation = await world.handed_off()
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    world.chatwoot.duplicate_webhooks = True
    await world.chatwoot.reply(chatwoot, "bob", "first")
    await world.chatwoot.reply(chatwoot, "bob", "second")
    assert "Bob" in (await next_said(visitor))["text"]  # he joined by answering
    assert (await next_said(visitor))["text"] == "first"
    assert (await next_said(visitor))["text"] == "second"
    assert len([m for m in world.chatwoot.delivered if m.get("content") == "second"]) == 2
    await world.chatwoot.reply(chatwoot, "bob", "third")  # after any repeat of the others
    assert (await next_said(visitor))["text"] == "third"
    texts = [m.text for m in await world.kefu.store.messages(conversation.id)]
    assert texts.count("first") == 1 and texts.count("second") == 1


async def test_a_lost_webhook_is_read_back_and_sent_once(world: World) -> None:
    """Chatwoot posts a webhook once; kefu reads the conversation back and sends the reply,
    and reading again (or after a restart) sends nothing twice."""
    visitor, conversation = await world.handed_off()
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    await wait_for(lambda: any("handed this customer over" in m.content
                               for m in world.chatwoot.thread(chatwoot)))
    world.chatwoot.webhooks_lost = True
    await world.chatwoot.assign(chatwoot, "alice")
    await world.chatwoot.reply(chatwoot, "alice", "missed by the webhook")
    await visitor.disconnect()
    kefu = await world.restart(catch_up_seconds=0.2)
    await wait_for(lambda: _texts(kefu, conversation.id, "missed by the webhook"),
                   within=AFTER_RESTART)
    await asyncio.sleep(0.6)  # read back twice more
    texts = [m.text for m in await kefu.store.messages(conversation.id)]
    assert texts.count("missed by the webhook") == 1
    held = await kefu.store.get_conversation(conversation.id)
    assert held is not None and held.agent_id == "chatwoot:Alice"


async def _texts(kefu: Any, conversation_id: str, text: str) -> bool:
    return text in [m.text for m in await kefu.store.messages(conversation_id)]


async def test_chatwoot_down_at_the_handoff_gets_the_transcript_once_back(
        world: World) -> None:
    world.chatwoot.down = True
    visitor = await world.kefu.visitor()
    await visitor.say("转人工")
    await visitor.say("还在吗")
    await asyncio.sleep(0.5)  # several failed tries
    assert not world.chatwoot.conversations
    world.chatwoot.down = False
    world.chatwoot.lost_answers = 1  # and a post gets through but its answer is lost
    conversation = await world.kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    await wait_for(lambda: world.chatwoot.conversations and any(
        "handed this customer over" in m.content
        for m in world.chatwoot.thread(world.chatwoot.conversation_of(conversation.id))))
    thread = world.chatwoot.thread(world.chatwoot.conversation_of(conversation.id))
    contents = [m.content for m in thread]
    assert contents.count("转人工") == 1 and contents.count("还在吗") == 1
    assert len(world.chatwoot.conversations) == 1 and len(world.chatwoot.contacts) == 1


async def test_a_restart_copies_nothing_twice(world: World) -> None:
    visitor, conversation = await world.handed_off()
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    await wait_for(lambda: any("handed this customer over" in m.content
                               for m in world.chatwoot.thread(chatwoot)))
    before = len(world.chatwoot.thread(chatwoot))
    await visitor.disconnect()
    kefu = await world.restart()
    returning = await kefu.visitor(visitor.id)
    await returning.say("我又来了")
    await wait_for(lambda: any(m.content == "我又来了" for m in world.chatwoot.thread(chatwoot)),
                   within=AFTER_RESTART)
    thread = world.chatwoot.thread(chatwoot)
    contents = [m.content for m in thread]
    assert len(contents) == len(set(contents))  # nothing copied twice
    assert contents[before] == "我又来了"
    assert all(m.private for m in thread[before + 1:])  # then only kefu's lines (the place)
    assert len(world.chatwoot.conversations) == 1


async def test_queue_position_while_unassigned_then_the_one_minute_rule(
        world: World) -> None:
    world.sections |= {"conversation": {"queued_reminder_seconds": 0.3},
                       "desk": {"agent_reply_seconds": 0.5}}
    kefu = await world.restart()
    await world.handed_off()
    visitor, conversation = await world.handed_off()
    # nobody in Chatwoot has it yet: the customer hears their place, one customer ahead
    while "前面还有 1 位" not in (said := await next_said(visitor))["text"]:
        assert said["kind"] in ("handoff", "holding"), said
    assert await kefu.store.queue_position(conversation.id) == 2

    await world.chatwoot.assign(world.chatwoot.conversation_of(conversation.id), "bob")
    while "Bob" not in (await next_said(visitor))["text"]:
        pass
    # Bob is silent: after agent_reply_seconds, kefu's holding message, and a breach
    holding = kefu.desk.texts.get("zh", "agent_holding")
    while (await next_said(visitor))["text"] != holding:
        pass
    await wait_for(lambda: _has_event(kefu, conversation.id, "reply_breach"))


async def _has_event(kefu: Any, conversation_id: str, type_: str) -> bool:
    return type_ in [e.type for e in await kefu.store.events(conversation_id)]


async def test_outside_the_inboxs_hours_the_customer_leaves_a_message(world: World) -> None:
    world.chatwoot.working_hours_enabled = True
    world.chatwoot.working_hours = [{"day_of_week": d, "closed_all_day": True,
                                     "open_all_day": False, "open_hour": 9, "open_minutes": 0,
                                     "close_hour": 18, "close_minutes": 0} for d in range(7)]
    visitor = await world.kefu.visitor()
    said = await visitor.say("转人工")
    assert any(m["kind"] == "offline" for m in said)
    conversation = await world.kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None and conversation.offline_step == "question"
    events = [e.type for e in await world.kefu.store.events(conversation.id)]
    assert "offline_offered" in events
    await asyncio.sleep(0.3)
    assert not world.chatwoot.conversations


async def test_kefu_ending_the_chat_resolves_it_in_chatwoot(world: World) -> None:
    """A web customer who leaves the queue is recorded as abandoned, and Chatwoot's
    agents no longer see them waiting."""
    world.sections |= {"desk": {"abandon_after_seconds": 0.3}}
    await world.restart()
    visitor, conversation = await world.handed_off()
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    await visitor.disconnect()
    await wait_for(lambda: chatwoot.status == "resolved", within=AFTER_RESTART)
    closed = await world.kefu.store.get_conversation(conversation.id)
    assert closed is not None and closed.close_reason == "abandoned"


# security

async def _post(world: World, path: str = ROUTE, body: bytes = b'{"event": "x"}',
                headers: dict[str, str] | None = None) -> int:
    assert world.kefu.client is not None
    response = await world.kefu.client.post(path, data=body, headers=headers or {})
    return response.status


async def test_unsigned_forged_and_stale_webhooks_are_refused(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    from handoff.bridges.chatwoot.bridge import signature
    secret = world.chatwoot.webhook_secret
    body = b'{"event": "message_created"}'
    import time
    now = str(int(time.time()))
    with caplog.at_level(logging.INFO):
        assert await _post(world, body=body) == 401
        assert await _post(world, body=body, headers={
            "X-Chatwoot-Timestamp": now,
            "X-Chatwoot-Signature": signature("guessed", now, body)}) == 401
        old = str(int(time.time()) - 3600)
        assert await _post(world, body=body, headers={
            "X-Chatwoot-Timestamp": old,
            "X-Chatwoot-Signature": signature(secret, old, body)}) == 401
        assert await _post(world, f"{ROUTE}/not-the-secret-at-all", body) == 403
        assert await _post(world, body=body, headers={
            "X-Chatwoot-Timestamp": now,
            "X-Chatwoot-Signature": signature(secret, now, body)}) == 200
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 4 and not any(r.exc_info for r in refusals)


async def test_an_older_install_uses_a_secret_in_the_url(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    url_secret = "url-secret-" + "s" * 20
    with caplog.at_level(logging.DEBUG):
        await world.restart(webhook_secret="", url_secret=url_secret)
        world.chatwoot.sign = False
        world.point_webhook(f"{ROUTE}/{url_secret}")
        visitor, conversation = await world.handed_off()
        chatwoot = world.chatwoot.conversation_of(conversation.id)
        await world.chatwoot.reply(chatwoot, "alice", "hello from an old Chatwoot")
        while (await next_said(visitor))["text"] != "hello from an old Chatwoot":
            pass
        assert await _post(world) == 403  # unsigned, no secret: refused
        await world.kefu.stop()
    logged = "\n".join(r.getMessage() + repr(vars(r)) for r in caplog.records)
    assert "aiohttp.access" in {r.name for r in caplog.records}
    assert url_secret not in logged
    assert world.chatwoot.access_token not in logged


async def test_a_wrong_access_token_is_logged_without_the_token(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    token = "wrong-token-" + "t" * 16
    with caplog.at_level(logging.DEBUG):
        await world.restart(access_token=token)
        visitor = await world.kefu.visitor()
        await visitor.say("转人工")
        await wait_for(lambda: any("HTTP 401" in r.getMessage() for r in caplog.records))
    assert not world.chatwoot.conversations
    logged = "\n".join(r.getMessage() + repr(vars(r)) for r in caplog.records)
    assert token not in logged


def test_the_chatwoot_desk_needs_its_settings(tmp_path: Any) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("handoff:\n  desk: chatwoot\n  chatwoot: {base_url: http://cw}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "account_id" in str(raised.value) and "access_token" in str(raised.value)


async def test_a_refused_resolve_is_tried_again_even_after_a_restart(world: World) -> None:
    world.sections |= {"desk": {"abandon_after_seconds": 0.3}}
    await world.restart()
    visitor, conversation = await world.handed_off()
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    world.chatwoot.refused_resolves = 10_000  # Chatwoot fails every resolve for now
    await visitor.disconnect()  # kefu closes the conversation: abandoned
    await wait_for(lambda: ("POST", f"/api/v1/accounts/7/conversations/{chatwoot.id}"
                                    "/toggle_status") in world.chatwoot.calls,
                   within=AFTER_RESTART)
    closed = await world.kefu.store.get_conversation(conversation.id)
    assert closed is not None and closed.state is ConversationState.CLOSED
    assert chatwoot.status == "open"
    kefu = await world.restart()  # and kefu restarts before Chatwoot is back
    world.chatwoot.refused_resolves = 0
    await wait_for(lambda: chatwoot.status == "resolved", within=AFTER_RESTART)
    await asyncio.sleep(0.3)
    assert not [k for k in await kefu.store.state_keys() if k == "chatwoot-pending"]


async def test_a_conversation_deleted_in_chatwoot_does_not_stop_the_read_back(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    gone_visitor, gone = await world.handed_off()
    visitor, conversation = await world.handed_off()
    world.chatwoot.delete_conversation(world.chatwoot.conversation_of(gone.id))
    world.chatwoot.webhooks_lost = True
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    await world.chatwoot.reply(chatwoot, "alice", "read back past the deleted one")
    await gone_visitor.disconnect()
    await visitor.disconnect()
    with caplog.at_level(logging.INFO, logger="handoff.bridges.chatwoot.bridge"):
        kefu = await world.restart(catch_up_seconds=0.2)
        await wait_for(lambda: _texts(kefu, conversation.id, "read back past the deleted one"),
                       within=AFTER_RESTART)
        await asyncio.sleep(0.7)  # more rounds: the deleted one fails each time
    cannot = [r for r in caplog.records if "cannot read conversation" in r.getMessage()]
    assert len(cannot) == 1 and gone.id in cannot[0].getMessage()
    assert "HTTP 404" in cannot[0].getMessage()


async def test_a_post_made_before_a_failure_is_not_doubled_past_100_messages(
        world: World) -> None:
    """Chatwoot's `after` gives 100 messages at a time: kefu reads every page before it
    posts again."""
    visitor, conversation = await world.handed_off()
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    await wait_for(lambda: any("handed this customer over" in m.content
                               for m in world.chatwoot.thread(chatwoot)))
    world.chatwoot.webhooks_lost = True  # 120 notes, not 120 webhooks
    for n in range(120):
        await world.chatwoot.note(chatwoot, "alice", f"note {n}")
    world.chatwoot.lost_answers = 1  # the next post is made, its answer lost
    await visitor.say("订单号 99999")
    await visitor.say("在吗")
    await wait_for(lambda: any(m.content == "在吗" for m in world.chatwoot.thread(chatwoot)))
    contents = [m.content for m in world.chatwoot.thread(chatwoot)]
    assert contents.count("订单号 99999") == 1


def test_wecoms_own_servicers_and_chatwoot_cannot_both_take_wecoms_handoffs(
        tmp_path: Any) -> None:
    wecom = ("  wecom: {enabled: true, corp_id: ww1, secret: s, token: t, "
             f"encoding_aes_key: {'a' * 43}, agents: wecom}}\n")
    chatwoot = ("handoff:\n  desk: chatwoot\n  chatwoot: {base_url: http://cw, account_id: 1,"
                " inbox_id: 2, access_token: tok, webhook_secret: sec}\n")
    path = tmp_path / "config.yaml"
    path.write_text(chatwoot + "channels:\n" + wecom, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "channels.wecom.agents: wecom and handoff.desk: chatwoot" in str(raised.value)
    path.write_text(chatwoot + "channels:\n" + wecom.replace("agents: wecom", "agents: kefu"),
                    encoding="utf-8")
    assert load_config(path).handoff.desk == "chatwoot"
    path.write_text("channels:\n" + wecom, encoding="utf-8")  # kefu's desk: WeCom's choice
    assert load_config(path).channels.wecom.agents == "wecom"


async def test_an_assignment_through_chatwoots_api_reaches_the_customer(world: World) -> None:
    """`POST /conversations/{id}/assignments`, as an automation or another tool assigns."""
    import aiohttp

    visitor, conversation = await world.handed_off()
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    url = (f"{world.chatwoot.url}/api/v1/accounts/{world.chatwoot.account_id}"
           f"/conversations/{chatwoot.id}/assignments")
    headers = {"api_access_token": world.chatwoot.access_token}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"assignee_id": 12}, headers=headers) as response:
            assert response.status == 200 and (await response.json())["name"] == "Bob"
        async with http.post(url, json={}, headers=headers) as response:
            assert await response.json() is None  # neither agent nor team: nothing
    while "Bob" not in (said := await next_said(visitor))["text"]:
        pass
    assert said["kind"] == "notice"
    held = await world.kefu.store.get_conversation(conversation.id)
    assert held is not None and held.agent_id == "chatwoot:Bob"
