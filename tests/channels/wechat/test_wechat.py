"""The WeChat Official Account channel against a stand-in that plays WeChat's side."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from bot.config import Config
from bot.messages import ConversationState
from knowledge_base.matcher import Matcher
from tests.channels.wechat.standin import ACCOUNT, Clock, Delivery, WeChatStandIn
from tests.conftest import TEST_KB
from tests.harness import AgentClient, Kefu, wait_for, write_kb

LONG_ANSWER = "、".join(f"第{i}条：发票可以在订单详情页申请，电子发票会发到您的邮箱"
                       for i in range(40))
KB = {**TEST_KB, "long.yaml": f"""\
entries:
  - id: invoice-rules
    lang: zh
    questions: [发票规则有哪些]
    answer: "{LONG_ANSWER}"
"""}
MODES = ["plain", "compatible", "safe"]


@dataclass
class WeChat:
    kefu: Kefu
    standin: WeChatStandIn
    clock: Clock
    url: str

    async def say(self, openid: str, text: str, kind: str = "text", **sign: Any) -> Delivery:
        xml, _ = self.standin.payload(kind, openid, text)
        return await self.standin.push(self.url, xml, **sign)

    async def conversation(self, openid: str) -> Any:
        return await self.kefu.store.latest_conversation("wechat", openid)


@pytest.fixture
def wechat_world(tmp_path: Any) -> Callable[..., Any]:
    """Start kefu with the WeChat channel and a stand-in; close both afterwards."""
    started: list[tuple[Kefu, WeChatStandIn]] = []

    async def start(mode: str = "safe", wechat_waits: float = 5.0, **wechat: Any) -> WeChat:
        clock = Clock()
        standin = WeChatStandIn(clock, mode=mode, timeout=wechat_waits)
        api = await standin.start()
        kb = write_kb(tmp_path / f"kb-{len(started)}", KB)
        config = Config.model_validate({
            "business": {"name": "测试店", "hours": {d: "00:00-24:00" for d in (
                "mon", "tue", "wed", "thu", "fri", "sat", "sun")}},
            "knowledge_base": {"path": str(kb), "regressions": str(tmp_path / "none.yaml")},
            "store": {"path": str(tmp_path / f"kefu-{len(started)}.sqlite3")},
            "desk": {"auto_assign": False},
            "matching": {"processes": 0},  # slow_matching patches this process's matcher
            "channels": {"wechat": {
                "enabled": True, "app_id": standin.app_id, "app_secret": standin.secret,
                "token": standin.token, "encoding_aes_key": standin.aes_key, "mode": mode,
                "api_base": api, "send_attempts": 2, **wechat}},
        })
        kefu = await Kefu(config, clock).start()
        await kefu.add_agent("duty", online=True)
        started.append((kefu, standin))
        assert kefu.client is not None
        return WeChat(kefu, standin, clock, str(kefu.client.make_url("/wechat")))

    yield start


@pytest.fixture(autouse=True)
async def _close_worlds(wechat_world: Any) -> AsyncIterator[None]:
    yield
    # The closure holds what it started; close it all, kefu first.
    for cell in wechat_world.__closure__ or ():
        if isinstance(cell.cell_contents, list):
            for kefu, standin in cell.cell_contents:
                await kefu.stop()
                await standin.close()


def slow_matching(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    original = Matcher.match

    def slow(self: Matcher, *args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Matcher, "match", slow)


@pytest.mark.parametrize("mode", MODES)
async def test_url_verification(wechat_world: Any, mode: str) -> None:
    world = await wechat_world(mode)
    query, _ = world.standin.signed(world.standin.payload("text", "o1")[0])
    assert world.kefu.client is not None
    ok = await world.kefu.client.get("/wechat", params={**query, "echostr": "4567012"})
    assert (ok.status, await ok.text()) == (200, "4567012")
    forged = await world.kefu.client.get("/wechat", params={
        **query, "signature": "0" * 40, "echostr": "4567012"})
    assert forged.status == 403 and "4567012" not in await forged.text()


@pytest.mark.parametrize("mode", MODES)
async def test_greeting_and_answer_come_back_in_one_passive_reply(
    wechat_world: Any, mode: str
) -> None:
    world = await wechat_world(mode)
    delivery = await world.say("oCustomer1", "退货怎么办")
    assert delivery.attempts == ["200"] and delivery.reply is not None
    assert (delivery.reply["ToUserName"], delivery.reply["FromUserName"]) == (
        "oCustomer1", ACCOUNT)
    greeting, answer = delivery.reply["Content"].split("\n\n")
    assert "欢迎光临测试店" in greeting and answer == "签收后 7 天内可以无理由退货。"
    conversation = await world.conversation("oCustomer1")
    assert conversation.greeting_latency_ms < 5000 and conversation.greeting_breach is None
    assert world.standin.sent == []  # nothing needed the API


@pytest.mark.parametrize("mode", MODES)
async def test_following_scanning_and_menus_greet(wechat_world: Any, mode: str) -> None:
    world = await wechat_world(mode)
    for openid, kind in [("oFollow", "subscribe"), ("oScan", "scan"), ("oMenu", "click")]:
        delivery = await world.say(openid, "", kind)
        assert delivery.reply is not None, kind
        assert "欢迎光临测试店" in delivery.reply["Content"]
    world.clock.advance(2)  # events are told apart by sender and CreateTime
    again = await world.say("oFollow", "", "subscribe")
    assert again.body == "success"  # the same conversation is not greeted twice
    gone = await world.say("oFollow", "", "unsubscribe")
    assert (gone.status, gone.body) == (200, "success")


@pytest.mark.parametrize("mode", MODES)
async def test_slow_work_goes_through_the_api_and_the_push_gets_its_answer_in_time(
    wechat_world: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    world = await wechat_world(mode, reply_budget_seconds=0.4)
    slow_matching(monkeypatch, 1.2)
    started = time.monotonic()
    first = await world.say("oSlow", "退货怎么办")
    assert time.monotonic() - started < 1.0
    assert first.reply is not None and "欢迎光临" in first.reply["Content"]
    assert "退货" not in first.reply["Content"]  # the answer was not ready
    await wait_for(lambda: len(world.standin.sent) == 1)
    assert world.standin.sent[0] == {"touser": "oSlow", "content": "签收后 7 天内可以无理由退货。"}

    second = await world.say("oSlow", "什么时候退款")  # no greeting now: nothing is ready
    assert (second.status, second.body) == (200, "success")
    await wait_for(lambda: len(world.standin.sent) == 2)
    assert world.standin.sent[1]["content"] == "退款 1-3 个工作日到账。"


@pytest.mark.parametrize("mode", MODES)
async def test_retries_while_the_first_delivery_runs_give_exactly_one_reply(
    wechat_world: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # WeChat gives up on a delivery after `timeout` and sends it again; here it gives up
    # sooner than kefu's budget, so the retry arrives while the first is still at work.
    world = await wechat_world(mode, wechat_waits=0.5, reply_budget_seconds=0.8)
    slow_matching(monkeypatch, 1.5)
    delivery = await world.say("oRetry", "退货怎么办")
    assert delivery.attempts == ["timeout", "200"]
    assert delivery.reply is not None and "欢迎光临" in delivery.reply["Content"]
    await wait_for(lambda: len(world.standin.sent) == 1)
    await world.kefu.router.idle()
    await asyncio.sleep(0.3)
    assert [m["content"] for m in world.standin.sent] == ["签收后 7 天内可以无理由退货。"]
    conversation = await world.conversation("oRetry")
    said = await world.kefu.store.messages(conversation.id)
    assert [m.kind.value for m in said] == ["text", "greeting", "answer"]


async def test_when_wechat_gives_up_on_every_delivery_the_greeting_still_comes_first(
    wechat_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # WeChat drops each delivery after 0.3 s, three in all; kefu's first budget ends after
    # the last, so no passive reply can reach the customer: the API carries everything.
    world = await wechat_world(wechat_waits=0.3, reply_budget_seconds=1.0)
    slow_matching(monkeypatch, 1.5)
    delivery = await world.say("oGone", "退货怎么办")
    assert delivery.attempts == ["timeout", "timeout", "timeout"]
    await wait_for(lambda: len(world.standin.sent) == 2)
    assert "欢迎光临" in world.standin.sent[0]["content"]
    assert world.standin.sent[1]["content"] == "签收后 7 天内可以无理由退货。"
    again = await world.say("oGone", "谢谢")  # and the next push is answered as usual
    assert again.status == 200


@pytest.mark.parametrize("mode", MODES)
async def test_a_lost_answer_is_given_again_to_the_retry_never_a_second_reply(
    wechat_world: Any, mode: str
) -> None:
    world = await wechat_world(mode)
    xml, _ = world.standin.payload("text", "oLost", "退货怎么办")
    first = await world.standin.push(world.url, xml)
    again = await world.standin.push(world.url, xml)  # as if the first answer was lost
    assert again.reply == first.reply
    conversation = await world.conversation("oLost")
    assert len(await world.kefu.store.messages(conversation.id)) == 3


@pytest.mark.parametrize("mode", MODES)
async def test_forged_stale_and_unsealed_pushes_are_refused(wechat_world: Any, mode: str
                                                            ) -> None:
    world = await wechat_world(mode)
    forgeries = [{"forge": "signature"}, {"timestamp": int(world.clock()) - 3600}]
    if mode != "plain":
        forgeries.append({"forge": "msg_signature"})
    for sign in forgeries:
        refused = await world.say("oForger", "退货怎么办", **sign)
        assert refused.status == 403, sign
    assert await world.conversation("oForger") is None  # nothing reached the router
    world.standin.mode = "plain"
    unsealed = await world.say("oPlain", "退货怎么办")
    if mode == "safe":  # nobody can post unencrypted messages as WeChat
        assert unsealed.status == 403 and await world.conversation("oPlain") is None
    else:
        assert unsealed.reply is not None  # compatible mode takes both


@pytest.mark.parametrize("mode", MODES)
async def test_malformed_xml_and_entity_bombs_are_refused_without_harm(
    wechat_world: Any, mode: str
) -> None:
    world = await wechat_world(mode)
    bomb = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'
                      for i in range(8))
            + ']><xml><ToUserName>x</ToUserName><FromUserName>oBomb</FromUserName>'
            '<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&i;</Content>'
            '<MsgId>1</MsgId></xml>')
    for body in (bomb, "<xml><ToUserName>", "not xml at all", "<other/>"):
        refused = await world.standin.push_raw(world.url, body)
        assert refused.status == 400, body[:30]
    assert (await world.say("oAfter", "退货怎么办")).reply is not None  # still serving


async def test_chinese_text_round_trips_exactly_in_aes_mode(wechat_world: Any) -> None:
    world = await wechat_world("safe")
    text = "你好😀，我想问一下 ]]> 退货怎么办？" + "中" * 300  # multi-byte, emoji, CDATA end
    delivery = await world.say("oUnicode", text)
    assert delivery.reply is not None
    conversation = await world.conversation("oUnicode")
    (said,) = [m for m in await world.kefu.store.messages(conversation.id)
               if m.role.value == "customer"]
    assert said.text == text


async def test_long_answers_are_split_by_bytes(wechat_world: Any) -> None:
    world = await wechat_world("safe")
    await world.say("oLong", "", "subscribe")
    delivery = await world.say("oLong", "发票规则有哪些")
    assert delivery.reply is not None
    first = delivery.reply["Content"]
    await wait_for(lambda: len(world.standin.sent) >= 1)
    await asyncio.sleep(0.2)
    rest = [m["content"] for m in world.standin.sent]
    assert all(len(part.encode()) <= 2048 for part in [first, *rest])
    assert first + "".join(rest) == LONG_ANSWER


async def test_pictures_voice_and_locations_get_a_polite_reply_and_are_kept(
    wechat_world: Any,
) -> None:
    world = await wechat_world("safe")
    await world.say("oMedia", "", "subscribe")
    for kind in ("image", "voice", "location"):
        delivery = await world.say("oMedia", "", kind)
        assert delivery.reply is not None and "只能看懂文字" in delivery.reply["Content"]
    recognized = await world.say("oMedia", "退货怎么办", "voice_recognized")
    assert recognized.reply is not None
    assert recognized.reply["Content"] == "签收后 7 天内可以无理由退货。"
    conversation = await world.conversation("oMedia")
    said = [m for m in await world.kefu.store.messages(conversation.id)
            if m.role.value == "customer"]
    assert [m.text for m in said] == ["[image]", "[voice]", "[location]", "退货怎么办"]
    assert said[0].meta["attachments"][0]["url"].startswith("http://mmbiz.qpic.cn/")
    assert said[2].meta["attachments"][0]["name"] == "广州市天河区"
    assert conversation.consecutive_misses == 0  # not counted as unanswered questions


async def agent_with_wechat_customer(world: WeChat, openid: str) -> tuple[AgentClient, str]:
    await world.say(openid, "转人工")
    conversation = await world.conversation(openid)
    assert conversation.state is ConversationState.QUEUED
    agent = await world.kefu.agent("duty")
    await agent.act(conversation.id, "take")
    await world.kefu.router.idle()
    return agent, conversation.id


@pytest.mark.parametrize("mode", MODES)
async def test_an_agents_reply_reaches_the_wechat_customer_with_a_fresh_token(
    wechat_world: Any, mode: str
) -> None:
    world = await wechat_world(mode)
    agent, conversation_id = await agent_with_wechat_customer(world, "oHuman")
    await agent.act(conversation_id, "typing")
    assert world.standin.typing == ["oHuman"]
    result = await agent.act(conversation_id, "reply", text="您好，我是客服，马上为您处理。")
    assert result["undelivered"] is None
    assert world.standin.sent[-1] == {"touser": "oHuman",
                                      "content": "您好，我是客服，马上为您处理。"}
    assert all(b"\\u" not in body for body in world.standin.raw_bodies)  # UTF-8, not escapes
    assert world.standin.token_requests == 1

    world.clock.advance(7200 - 200)  # inside the refresh margin: refreshed before expiry
    await agent.act(conversation_id, "reply", text="订单已为您查到，明天送达。")
    assert world.standin.token_requests == 2
    world.standin.revoke_tokens()  # another client took a new token: 40001, refresh, retry
    result = await agent.act(conversation_id, "reply", text="还有其他问题随时联系我。")
    assert result["undelivered"] is None and world.standin.token_requests == 3
    assert world.standin.sent[-1]["content"] == "还有其他问题随时联系我。"


@pytest.mark.parametrize("mode", MODES)
async def test_a_reply_after_the_window_is_kept_and_the_agent_is_told_why(
    wechat_world: Any, mode: str
) -> None:
    world = await wechat_world(mode)
    _, conversation_id = await agent_with_wechat_customer(world, "oLate")
    world.clock.advance(49 * 3600)
    agent = await world.kefu.agent("duty")  # two days on: a new login
    result = await agent.act(conversation_id, "reply", text="抱歉久等了，您的问题已解决。")
    assert "48 hours" in result["undelivered"]
    assert "抱歉久等了" not in [m["content"] for m in world.standin.sent]
    detail = await agent.get(f"/conversations/{conversation_id}")
    assert detail["messages"][-1]["text"] == "抱歉久等了，您的问题已解决。"  # kept
    (event,) = [e for e in detail["events"] if e["type"] == "undelivered"
                and e["detail"]["seq"] == result["message"]["seq"]]
    assert "48 hours" in event["detail"]["reason"]

    world.clock.advance(30 * 60)
    await world.say("oLate", "还在吗")  # the customer writes: the window opens again...
    # ...and the kept reply goes first, saying how old it is
    await wait_for(lambda: any("抱歉久等了" in m["content"] for m in world.standin.sent))
    late = next(m["content"] for m in world.standin.sent if "抱歉久等了" in m["content"])
    assert late == "（30 分钟前的消息 · sent 30 min ago）抱歉久等了，您的问题已解决。"
    detail = await agent.get(f"/conversations/{conversation_id}")
    assert [e["detail"]["seq"] for e in detail["events"] if e["type"] == "delivered_late"] \
        == [result["message"]["seq"]]
    result = await agent.act(conversation_id, "reply", text="在的，已为您处理好。")
    assert result["undelivered"] is None
    world.standin.windows["oLate"].until = 0  # WeChat's own view wins: 45015...
    result = await agent.act(conversation_id, "reply", text="再确认一下地址。")
    assert "45015" in result["undelivered"] and "kept" in result["undelivered"]
    calls = world.standin.send_calls
    result = await agent.act(conversation_id, "reply", text="地址是否有变化？")
    assert "kept" in result["undelivered"]  # ...and is believed: no call it would refuse
    assert world.standin.send_calls == calls
    world.clock.advance(60)
    await world.say("oLate", "地址没变")  # both go when the customer writes again, in order
    await wait_for(lambda: any("地址是否有变化" in m["content"] for m in world.standin.sent))
    late = [m["content"] for m in world.standin.sent if "地址" in m["content"]]
    assert late == ["（1 分钟前的消息 · sent 1 min ago）再确认一下地址。",
                    "（1 分钟前的消息 · sent 1 min ago）地址是否有变化？"]


async def test_the_quota_of_a_window_is_respected(wechat_world: Any) -> None:
    world = await wechat_world("safe")
    agent, conversation_id = await agent_with_wechat_customer(world, "oQuota")
    results = [await agent.act(conversation_id, "reply", text=f"第 {i} 条回复，请查收。")
               for i in range(6)]
    delivered = [r for r in results if r["undelivered"] is None]
    # The "agent joined" notice used one of the 5 messages this window allows.
    assert len(delivered) == 4 and "quota" in results[-1]["undelivered"]
    assert len(world.standin.sent) == 5


async def test_wechat_being_busy_is_retried(wechat_world: Any) -> None:
    world = await wechat_world("safe")
    agent, conversation_id = await agent_with_wechat_customer(world, "oBusy")
    world.standin.fail_next = [-1]
    result = await agent.act(conversation_id, "reply", text="系统繁忙时也能送达。")
    assert result["undelivered"] is None
    assert world.standin.sent[-1]["content"] == "系统繁忙时也能送达。"


async def test_automatic_messages_leave_the_windows_last_two_for_the_agent(
        wechat_world: Any) -> None:
    world = await wechat_world("safe")
    await world.say("oReserve", "转人工")
    conversation = await world.conversation("oReserve")
    assert conversation.state is ConversationState.QUEUED
    agent = await world.kefu.agent("duty")
    config = world.kefu.config.conversation
    world.clock.advance(config.queued_reminder_seconds)
    await world.kefu.desk.tick()  # WeChat's quota: timed updates are rarer here
    assert len(world.standin.sent) == 0
    asked = await world.say("oReserve", "还要等多久")  # the answer rides on the passive reply
    assert asked.reply is not None and "您是下一位" in asked.reply["Content"]
    assert len(world.standin.sent) == 0
    for _ in range(5):  # five queue updates due while the customer waits without writing
        world.clock.advance(config.queued_reminder_seconds_with_quota)
        await agent.get("/queue")  # the agent is still there
        await world.kefu.desk.tick()
    holding = [m for m in await world.kefu.store.messages(conversation.id)
               if m.kind.value == "holding"]
    assert len(holding) == 6 and len(world.standin.sent) == 3  # 2 of the 5 timed kept back
    await agent.act(conversation.id, "take")  # "duty has joined": automatic, not sent
    await world.kefu.router.idle()
    assert len(world.standin.sent) == 3
    shown = (await agent.get(f"/conversations/{conversation.id}"))["conversation"]
    window = shown["delivery_window"]
    assert (window["messages_left"], window["reserve"]) == (2, 2)
    assert datetime.fromisoformat(window["closes_at"]).timestamp() > world.clock() + 47 * 3600
    results = [await agent.act(conversation.id, "reply", text=f"第 {i} 条：已为您处理。")
               for i in (1, 2)]
    assert [r["undelivered"] for r in results] == [None, None]
    assert [s["content"] for s in world.standin.sent[-2:]] == [
        "第 1 条：已为您处理。", "第 2 条：已为您处理。"]
    shown = (await agent.get(f"/conversations/{conversation.id}"))["conversation"]
    assert shown["delivery_window"]["messages_left"] == 0
