"""QQ through a OneBot v11 client, against a stand-in that plays the client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from channels.onebot.events import read_message
from tests.channels.onebot.standin import OneBotClient
from tests.channels.tencent_envelope import Clock
from tests.conftest import TEST_KB
from tests.harness import Kefu, wait_for, write_kb


def test_cq_codes_and_segments_are_read_as_text() -> None:
    text, attachments = read_message("[CQ:face,id=14]退货怎么办&#91;急&#93;"
                                     "[CQ:image,file=a.jpg,url=http://img/a.jpg]")
    assert text == "退货怎么办[急]"
    assert [(a.kind, a.url) for a in attachments] == [("image", "http://img/a.jpg")]
    text, attachments = read_message([{"type": "text", "data": {"text": "在吗"}},
                                      {"type": "record", "data": {"file": "v.amr"}}])
    assert text == "在吗" and attachments[0].kind == "record"


@pytest.fixture
async def onebot(tmp_path: Path, request: pytest.FixtureRequest
                 ) -> AsyncIterator[tuple[Kefu, OneBotClient, Callable[[str], str]]]:
    clock = Clock()
    client = OneBotClient(clock)
    api = await client.start()
    config = Config.model_validate({
        "business": {"name": "测试店", "hours": {d: "00:00-24:00" for d in (
            "mon", "tue", "wed", "thu", "fri", "sat", "sun")}},
        "knowledge_base": {"path": str(write_kb(tmp_path / "kb", TEST_KB)),
                           "regressions": str(tmp_path / "none.yaml")},
        "store": {"path": str(tmp_path / "kefu.sqlite3")},
        "desk": {"auto_assign": False},
        "channels": {"onebot": {"enabled": True, "secret": client.secret,
                                "access_token": client.access_token,
                                "api_base": api if getattr(request, "param", "") == "http"
                                else ""}},
    })
    kefu = await Kefu(config, clock).start()
    await kefu.add_agent("duty", online=True)
    assert kefu.client is not None
    url = lambda path: str(kefu.client.make_url(path))  # noqa: E731
    yield kefu, client, url
    await client.close()
    await kefu.stop()


@pytest.mark.parametrize("onebot", ["http"], indirect=True)
async def test_posted_events_are_answered_through_the_http_api(onebot: Any) -> None:
    kefu, client, url = onebot
    assert await client.post(url("/onebot"), client.friend_added(42)) == 204
    await kefu.router.idle()
    assert "欢迎" in client.said_to(42)[0]
    assert await client.post(url("/onebot"), client.private(42, "[CQ:face,id=1]退货怎么办")) \
        == 204
    await kefu.router.idle()
    assert client.said_to(42)[1:] == ["签收后 7 天内可以无理由退货。"]
    assert all(s.auto_escape and s.via == "http" for s in client.sent)


async def test_forged_or_unsigned_posts_and_wrong_tokens_are_refused(onebot: Any) -> None:
    kefu, client, url = onebot
    assert await client.post(url("/onebot"), client.private(7, "退货怎么办"), forge=True) \
        == 403
    assert await client.connect(url("/onebot/ws"), token="wrong") == 401
    assert await client.connect(url("/onebot/ws"), token="令牌") == 401
    assert kefu.client is not None
    odd = await kefu.client.post("/onebot", data=b"{}", headers={"X-Signature": "sha1=签名"})
    assert odd.status == 403
    await kefu.router.idle()
    assert await kefu.store.latest_conversation("onebot", f"{client.self_id}:7") is None


async def test_the_reverse_websocket_carries_events_and_replies(onebot: Any) -> None:
    kefu, client, url = onebot
    assert await client.connect(url("/onebot/ws")) == 101
    await client.push(client.private(9, "转人工"))
    await wait_for(lambda: len(client.said_to(9)) >= 2)
    conversation = await kefu.store.latest_conversation("onebot", f"{client.self_id}:9")
    duty = await kefu.agent("duty")
    await duty.act(conversation.id, "take")
    reply = await duty.act(conversation.id, "reply", text="您好，请问[CQ:at,qq=all]订单号？")
    assert reply["undelivered"] is None
    detail = await duty.get(f"/conversations/{conversation.id}")

    async def named() -> bool:  # the QQ nickname is in the customer's record
        record = await duty.get(f"/customers/{detail['customer_id']}")
        return bool(record["customer"]["name"] == "顾客")

    await wait_for(named)
    last = client.sent[-1]
    assert (last.message, last.auto_escape, last.via) == (
        "您好，请问[CQ:at,qq=all]订单号？", True, "ws")  # sent as text, never as a code


async def test_an_event_delivered_by_both_transports_is_answered_once(
        onebot: Any, caplog: pytest.LogCaptureFixture) -> None:
    kefu, client, url = onebot
    await client.connect(url("/onebot/ws"))
    event = client.private(11, "退款多久到账", message_id=555)
    with caplog.at_level(logging.WARNING, logger="channels.onebot.channel"):
        await client.push(event)
        assert await client.post(url("/onebot"), event) == 204
        await wait_for(lambda: len(client.said_to(11)) >= 2)
        await kefu.router.idle()
    assert client.said_to(11)[1:] == ["退款 1-3 个工作日到账。"]
    assert any("both by" in r.message for r in caplog.records)


async def test_a_reply_while_the_client_is_away_waits_to_be_sent(onebot: Any) -> None:
    kefu, client, url = onebot
    assert await client.post(url("/onebot"), client.private(12, "转人工")) == 204
    await kefu.router.idle()
    assert client.sent == []  # no socket and no HTTP API: nothing can go out yet
    conversation = await kefu.store.latest_conversation("onebot", f"{client.self_id}:12")
    duty = await kefu.agent("duty")
    await duty.act(conversation.id, "take")
    reply = await duty.act(conversation.id, "reply", text="您好，马上为您处理。")
    assert "not connected" in reply["undelivered"] and "try again" in reply["undelivered"]
    unsettled = await kefu.store.unsettled(before=float("inf"))
    assert "您好，马上为您处理。" in [m.text for m in unsettled]  # recovery sends it later
