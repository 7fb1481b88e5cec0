"""A Chatwoot agent answering a WeChat customer: kefu sends the replies by WeChat's rules
(customer-service messages in the 48-hour window, its quota, 2,048 bytes a message)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.channels.tencent_envelope import Clock
from tests.channels.wechat.standin import WeChatStandIn
from tests.handoff.bridges.conftest import AFTER_RESTART, World
from tests.harness import wait_for

OPENID = "oCustomerOfChatwoot1"
LONG_REPLY = "、".join(f"第{i}步：在订单详情页点击申请退货并填写原因" for i in range(60))


@pytest.fixture
async def wechat(world: World) -> AsyncIterator[tuple[World, WeChatStandIn, str]]:
    """The world's kefu with the WeChat channel on, and WeChat's side."""
    clock = Clock()
    standin = WeChatStandIn(clock, mode="safe")
    api = await standin.start()
    world.clock = clock
    world.sections |= {"channels": {"wechat": {
        "enabled": True, "app_id": standin.app_id, "app_secret": standin.secret,
        "token": standin.token, "encoding_aes_key": standin.aes_key, "mode": "safe",
        "api_base": api, "send_attempts": 2}}}
    kefu = await world.restart()
    assert kefu.client is not None
    yield world, standin, str(kefu.client.make_url("/wechat"))
    await world.kefu.stop()
    await standin.close()


async def test_a_chatwoot_agents_reply_follows_wechats_rules(
        wechat: tuple[World, WeChatStandIn, str]) -> None:
    world, standin, url = wechat
    xml, _ = standin.payload("text", OPENID, "转人工")
    pushed = await standin.push(url, xml)
    assert pushed.reply is not None  # the handoff message, as WeChat's passive reply
    conversation = await world.kefu.store.latest_conversation("wechat", OPENID)
    assert conversation is not None
    await wait_for(lambda: any(
        c.custom_attributes.get("kefu_conversation_id") == conversation.id
        for c in world.chatwoot.conversations.values()), within=AFTER_RESTART)
    chatwoot = world.chatwoot.conversation_of(conversation.id)
    assert chatwoot.source_id == f"wechat:{OPENID}"
    assert world.chatwoot.contacts[chatwoot.contact_id]["custom_attributes"][
        "kefu_wechat"] == OPENID

    await world.chatwoot.reply(chatwoot, "alice", LONG_REPLY)
    await wait_for(lambda: "".join(m["content"] for m in standin.sent[1:]) == LONG_REPLY)
    assert "Alice" in standin.sent[0]["content"]  # she joined, then her reply
    parts = standin.sent[1:]
    assert len(parts) >= 2 and all(len(p["content"].encode()) <= 2048 for p in parts)
    assert {m["touser"] for m in standin.sent} == {OPENID}

    standin.windows[OPENID].until = 0  # 48 hours since the customer last wrote
    sent = len(standin.sent)
    await world.chatwoot.reply(chatwoot, "alice", "还在吗？")
    await wait_for(lambda: _undelivered(world, conversation.id))
    assert len(standin.sent) == sent
    stored = [m.text for m in await world.kefu.store.messages(conversation.id)]
    assert "还在吗？" in stored  # kept in kefu's transcript
    # and Alice reads why, in a private note only agents see
    await wait_for(lambda: any("Not delivered to the customer" in m.content
                               for m in world.chatwoot.thread(chatwoot)))
    (note,) = [m for m in world.chatwoot.thread(chatwoot)
               if "Not delivered to the customer" in m.content]
    assert note.private and "48" in note.content
    await world.chatwoot.reply(chatwoot, "alice", "收到请回复")  # a later one: one note each
    await wait_for(lambda: len([m for m in world.chatwoot.thread(chatwoot)
                                if "Not delivered" in m.content]) == 2)
    assert len(standin.sent) == sent


async def _undelivered(world: World, conversation_id: str) -> Any:
    return [e for e in await world.kefu.store.events(conversation_id)
            if e.type == "undelivered"]
