"""WeCom customer service (微信客服) against a stand-in that plays WeCom's side."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.messages import ConversationState
from bot.store import AgentRole
from channels.tencent.push import PushRejected
from channels.wecom.callback import crypto_for, open_callback, verify_url
from channels.wecom.settings import WeComConfig
from tests.channels.wecom.world import WeCom, servicers_world

# WeCom's published sample (WXBizMsgCrypt): the URL check and a sealed message.
SAMPLE = WeComConfig(enabled=True, corp_id="wx5823bf96d3bd56c7", secret="x", token="QDG6eK",
                     encoding_aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")
SAMPLE_URL_CHECK = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+F"
               "ZXvnaqQ=="}
SAMPLE_POST = {"msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
               "timestamp": "1409659813", "nonce": "1372623149"}
SAMPLE_BODY = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA["
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3Qczc"
    "dCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLj"
    "vd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMn"
    "vw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k"
    "22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2Yoy"
    "yH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>")


def test_wecoms_published_sample_passes_and_a_changed_one_does_not() -> None:
    crypto = crypto_for(SAMPLE)
    assert verify_url(SAMPLE, crypto, SAMPLE_URL_CHECK, now=1409659589) == \
        "1616140317555161061"
    # the sample is a text message for an app, not a customer-service nudge: opened, ignored
    assert open_callback(SAMPLE, crypto, SAMPLE_POST, SAMPLE_BODY.encode(),
                         now=1409659813) is None
    with pytest.raises(PushRejected, match="forged msg_signature"):
        open_callback(SAMPLE, crypto, {**SAMPLE_POST, "nonce": "1372623150"},
                      SAMPLE_BODY.encode(), now=1409659813)
    with pytest.raises(PushRejected, match="stale timestamp"):
        open_callback(SAMPLE, crypto, SAMPLE_POST, SAMPLE_BODY.encode(), now=1409669813)
    with pytest.raises(PushRejected, match="forged msg_signature"):
        verify_url(SAMPLE, crypto, {**SAMPLE_URL_CHECK, "echostr": "x" + SAMPLE_URL_CHECK[
            "echostr"]}, now=1409659589)


async def test_a_customer_entering_is_greeted_with_the_welcome_code(wecom_world: Any) -> None:
    wecom = await wecom_world()
    wecom.standin.enters("wmAlice")
    await wecom.nudged()
    (greeting,) = wecom.standin.sent
    assert (greeting.how, greeting.touser) == ("welcome_code", "wmAlice")
    assert "欢迎" in greeting.content
    conversation = await wecom.conversation("wmAlice")
    assert conversation.greeting_latency_ms < 5000 and conversation.greeting_breach is None
    # the question is answered through kf/send_msg, and nobody is greeted twice
    (answer,) = await wecom.writes("wmAlice", "退货怎么办")
    assert answer == "签收后 7 天内可以无理由退货。"
    assert [s.how for s in wecom.standin.sent] == ["welcome_code", "send_msg"]


async def test_without_a_welcome_code_the_first_message_is_greeted(wecom_world: Any) -> None:
    wecom = await wecom_world()
    wecom.standin.enters("wmBob", welcome=False)  # greeted by WeCom within 48 hours
    await wecom.nudged()
    assert wecom.standin.sent == []  # nothing kefu could send yet
    greeting, answer = await wecom.writes("wmBob", "退货怎么办")
    assert "欢迎" in greeting and answer == "签收后 7 天内可以无理由退货。"


async def test_handoff_and_an_agent_reply_reach_the_customer(wecom_world: Any) -> None:
    wecom = await wecom_world()
    said = await wecom.writes("wmCarol", "转人工")
    assert len(said) == 2 and "人工" in said[1]  # the greeting, then the handoff
    await kefus_agent_answers(wecom, "wmCarol", "您好，我是客服，马上为您查询。")


async def kefus_agent_answers(wecom: WeCom, customer: str, reply: str) -> None:
    """The customer waits in kefu's queue; an agent takes the chat and the reply reaches
    them."""
    conversation = await wecom.conversation(customer)
    assert conversation.state is ConversationState.QUEUED
    duty = await wecom.kefu.agent("duty")
    await duty.act(conversation.id, "take")
    await duty.act(conversation.id, "reply", text=reply)
    assert wecom.standin.sent_to(customer)[-1] == reply


async def test_nudges_and_pages_read_twice_are_answered_once(wecom_world: Any) -> None:
    wecom = await wecom_world()
    wecom.standin.writes("wmDan", "退货怎么办")
    wecom.standin.writes("wmEve", "退款多久到账")
    await asyncio.gather(*(wecom.standin.nudge(wecom.url) for _ in range(4)))
    await wecom.settle()
    assert 1 <= len(wecom.standin.sync_calls) <= 2  # nudges during a read fold into one
    # a cursor lost before it was saved: everything is read again
    await wecom.kefu.store.save_state(f"wecom:cursor:{wecom.standin.corp_id}:"
                                      f"{wecom.standin.open_kfid}", {"cursor": ""})
    await wecom.nudged()
    assert wecom.standin.sent_to("wmDan")[1:] == ["签收后 7 天内可以无理由退货。"]
    assert wecom.standin.sent_to("wmEve")[1:] == ["退款 1-3 个工作日到账。"]
    assert wecom.standin.sync_calls[-1] == ""  # it was read again, from the start


async def test_forged_or_stale_callbacks_read_nothing(wecom_world: Any) -> None:
    wecom = await wecom_world()
    wecom.standin.writes("wmMallory", "退货怎么办")
    status, _ = await wecom.standin.nudge(wecom.url, forge="msg_signature")
    assert status == 403
    status, _ = await wecom.standin.nudge(wecom.url, timestamp=int(wecom.clock()) - 3600)
    assert status == 403
    await wecom.settle()
    assert wecom.standin.sync_calls == [] and wecom.standin.sent == []
    assert wecom.kefu.client is not None
    garbage = await wecom.kefu.client.post("/wecom", data=b"<xml><Encrypt>",
                                           params={"msg_signature": "x", "timestamp": "1",
                                                   "nonce": "2"})
    assert garbage.status == 400


async def test_outside_the_48_hour_window_an_agent_reply_is_kept_and_refused(
        wecom_world: Any) -> None:
    wecom = await wecom_world()
    await wecom.writes("wmFrank", "转人工")
    conversation = await wecom.conversation("wmFrank")
    duty = await wecom.kefu.agent("duty")
    await duty.act(conversation.id, "take")
    wecom.clock.advance(49 * 3600)
    duty = await wecom.kefu.agent("duty")  # the next day's login
    sent_before = len(wecom.standin.sent)
    reply = await duty.act(conversation.id, "reply", text="抱歉久等，您的退款已经办好。")
    assert "48 hours" in reply["undelivered"]  # the agent is told why
    assert len(wecom.standin.sent) == sent_before  # no call WeCom would refuse
    kept = await wecom.kefu.store.messages(conversation.id)
    assert kept[-1].text == "抱歉久等，您的退款已经办好。"
    events = [e for e in await wecom.kefu.store.events(conversation.id)
              if e.type == "undelivered"]
    assert "48 hours" in events[-1].detail["reason"]


async def test_a_delivery_wecom_reports_failed_is_recorded(wecom_world: Any) -> None:
    wecom = await wecom_world()
    await wecom.writes("wmGrace", "你好")
    wecom.standin.writes("wmGrace", "退款多久到账")
    wecom.standin.windows.pop("wmGrace")  # WeCom's own count says no more
    await wecom.nudged()  # kefu answers; WeCom accepts, then reports it undelivered
    conversation = await wecom.conversation("wmGrace")
    await wecom.nudged()  # the msg_send_fail event comes with the next read
    events = [e for e in await wecom.kefu.store.events(conversation.id)
              if e.type == "undelivered"]
    assert events and "48 hours" in events[-1].detail["reason"]


async def test_a_restart_in_the_middle_of_a_read_resumes_from_the_saved_cursor(
        wecom_world: Any, tmp_path: Path) -> None:
    store = tmp_path / "shared.sqlite3"
    first = await wecom_world(store=store, sync_limit=2)
    customers = [f"wm{i}" for i in range(5)]
    for customer in customers:
        first.standin.writes(customer, "退货怎么办")
    first.standin.behaviour.next_syncs = ["ok", "hang"]  # page 1 read, then the process dies
    await first.standin.nudge(first.url)
    await asyncio.sleep(0.5)
    await first.kefu.stop()
    answered_before = {c: len(first.standin.sent_to(c)) for c in customers}
    assert sum(1 for n in answered_before.values() if n) == 2  # page 1: two customers

    second = await wecom_world(standin=first.standin, store=store, sync_limit=2)
    await second.nudged()
    for customer in customers:
        said = second.standin.sent_to(customer)
        assert len(said) == 2 and said[1] == "签收后 7 天内可以无理由退货。", (customer, said)
    resumed = second.standin.sync_calls[2]  # the second process's first read
    assert resumed == first.standin.sync_calls[1] != ""


# WeCom's own servicers (接待人员), who answer in the WeCom app (`agents: wecom`)

POOL_STATE, SERVICER_STATE, ENDED_STATE = 2, 3, 4


async def kinds_of_events(wecom: WeCom, conversation_id: str) -> list[tuple[str, str | None]]:
    return [(e.type, e.agent_id) for e in await wecom.kefu.store.events(conversation_id)]


async def test_a_handoff_goes_to_wecoms_pool_and_the_servicers_work_is_in_the_transcript(
        wecom_world: Any) -> None:
    wecom = await servicers_world(wecom_world)
    greeting, handoff = await wecom.writes("wmHan", "转人工")
    assert "欢迎" in greeting
    assert "人工" in handoff  # said while kefu may still write to the customer
    assert wecom.standin.states["wmHan"] == POOL_STATE
    conversation = await wecom.conversation("wmHan")
    assert (conversation.state, conversation.agent_id) == (ConversationState.AGENT,
                                                           "wecom:pool")
    # in the pool, the customer's messages are kept and the bot stays silent
    assert await wecom.writes("wmHan", "在吗？") == []

    wecom.standin.servicer_takes("zhangsan", "wmHan")
    await wecom.nudged()
    joined = wecom.standin.sent[-1]
    assert joined.how == "msg_code" and "zhangsan" in joined.content  # with WeCom's code
    sent_before = len(wecom.standin.sent)
    # everything read again (a lost cursor): nothing is recorded or said twice
    await wecom.kefu.store.save_state(f"wecom:cursor:{wecom.standin.corp_id}:"
                                      f"{wecom.standin.open_kfid}", {"cursor": ""})
    await wecom.nudged()
    assert len(wecom.standin.sent) == sent_before
    taken = await kinds_of_events(wecom, (await wecom.conversation("wmHan")).id)
    assert taken.count(("assigned", "wecom:zhangsan")) == 1
    wecom.standin.servicer_writes("zhangsan", "wmHan", "您好，我是张三，帮您查一下订单。")
    await wecom.nudged()
    assert len(wecom.standin.sent) == sent_before  # WeCom delivered it, not kefu
    conversation = await wecom.conversation("wmHan")
    assert conversation.agent_id == "wecom:zhangsan"
    said = await wecom.kefu.store.messages(conversation.id)
    assert [(m.role.value, m.text) for m in said[-2:]] == [
        ("system", joined.content), ("agent", "您好，我是张三，帮您查一下订单。")]
    assert said[-1].meta["agent_name"] == "zhangsan"
    events = await kinds_of_events(wecom, conversation.id)
    assert ("assigned", "wecom:zhangsan") in events
    assert ("first_response", "wecom:zhangsan") in events

    # the agents in kefu's console see the chat and who holds it, but cannot write into it
    duty = await wecom.kefu.agent("duty")
    refused = await duty.act(conversation.id, "reply", status=409, text="我来帮您看看。")
    assert refused["error"] == "platform_agent"
    detail = await duty.get(f"/conversations/{conversation.id}")
    assert detail["conversation"]["agent_name"] == "zhangsan (wecom)"

    # the 1-minute rule is kept for them too: recorded, without a message kefu may not send
    await wecom.writes("wmHan", "订单号是 12345")
    wecom.clock.advance(61)
    await wecom.kefu.desk.tick()
    assert ("reply_breach", "wecom:zhangsan") in await kinds_of_events(wecom, conversation.id)
    assert len(wecom.standin.sent) == sent_before

    wecom.standin.servicer_passes_on("zhangsan", "wmHan", "lisi")
    await wecom.nudged()
    assert (await wecom.conversation("wmHan")).agent_id == "wecom:lisi"
    wecom.standin.servicer_writes("lisi", "wmHan", "您的订单明天送到。")
    wecom.standin.servicer_ends("lisi", "wmHan")
    await wecom.nudged()
    conversation = await wecom.conversation("wmHan")
    assert conversation.state is ConversationState.CLOSED
    rating = wecom.standin.sent[-1]
    assert rating.how == "msg_code" and "打分" in rating.content  # with the 结束语 code
    thanks, = await wecom.writes("wmHan", "5")
    assert (await wecom.conversation("wmHan")).rating == 5 and "感谢" in thanks
    # the session is back with the API: a new conversation, with the bot answering
    assert (await wecom.writes("wmHan", "退货怎么办"))[-1] == "签收后 7 天内可以无理由退货。"


async def test_with_no_servicer_taking_sessions_the_customer_leaves_a_message(
        wecom_world: Any) -> None:
    wecom = await servicers_world(wecom_world)
    wecom.standin.servicers = {"zhangsan": 1, "lisi": 1}  # 停止接待
    _, offer = await wecom.writes("wmIvy", "转人工")
    assert "留言" in offer
    assert wecom.standin.states["wmIvy"] == 1  # still the API's: kefu takes the message
    (received,) = await wecom.writes("wmIvy", "发票什么时候开？电话 13800138000")
    assert "T" in received and (await wecom.kefu.store.tickets())[0].contact


async def test_when_wecom_refuses_the_handoff_kefus_own_agents_take_it(
        wecom_world: Any) -> None:
    wecom = await servicers_world(wecom_world)
    wecom.standin.behaviour.trans_refused = True
    said = await wecom.writes("wmJack", "转人工")
    assert len(said) == 2  # the greeting and one handoff message, not two
    await kefus_agent_answers(wecom, "wmJack", "您好，我来为您处理。")


async def test_a_supervisor_hands_a_servicers_session_back_to_the_bot(
        wecom_world: Any) -> None:
    wecom = await servicers_world(wecom_world)
    await wecom.kefu.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    boss = await wecom.kefu.agent("boss")
    await wecom.writes("wmKim", "转人工")
    conversation = await wecom.conversation("wmKim")
    # WeCom lets a session in its pool go only to a servicer: the supervisor is told why
    refused = await boss.act(conversation.id, "handback", status=409)
    assert refused["error"] == "platform_refused" and "2 -> 4" in refused["message"]
    wecom.standin.servicer_takes("zhangsan", "wmKim")
    await wecom.nudged()
    await boss.act(conversation.id, "handback")
    assert wecom.standin.states["wmKim"] == ENDED_STATE
    back = wecom.standin.sent[-1]
    assert back.how == "msg_code" and "智能客服" in back.content
    assert (await wecom.conversation("wmKim")).state is ConversationState.BOT
    assert await wecom.writes("wmKim", "退款多久到账") == ["退款 1-3 个工作日到账。"]


async def test_a_servicer_writing_from_the_app_silences_the_bot_in_kefus_own_mode(
        wecom_world: Any) -> None:
    wecom = await wecom_world()  # agents: kefu
    await wecom.writes("wmLeo", "你好")
    wecom.standin.states["wmLeo"] = ENDED_STATE  # the session ended in WeCom
    wecom.standin.servicers = {"zhangsan": 0}
    wecom.standin.servicer_writes("zhangsan", "wmLeo", "您好，上次的问题解决了吗？")
    await wecom.nudged()
    conversation = await wecom.conversation("wmLeo")
    assert (conversation.state, conversation.agent_id) == (ConversationState.AGENT,
                                                           "wecom:zhangsan")
    said = await wecom.kefu.store.messages(conversation.id)
    assert said[-1].text == "您好，上次的问题解决了吗？"
    assert await wecom.writes("wmLeo", "解决了，谢谢") == []  # the servicer answers, not the bot


async def test_a_malformed_item_is_skipped_and_the_rest_is_answered(wecom_world: Any) -> None:
    wecom = await wecom_world()
    await wecom.writes("wmNed", "你好")
    wecom.standin.items.append({"msgid": "bad1", "origin": 4, "send_time": "soon",
                                "event": {"event_type": "session_status_change",
                                          "change_type": "x"}})
    wecom.standin.items.append({"origin": 3, "msgtype": "text"})  # no msgid, no customer
    assert await wecom.writes("wmNed", "退货怎么办") == ["签收后 7 天内可以无理由退货。"]


async def test_the_customers_record_has_their_wechat_nickname(wecom_world: Any) -> None:
    wecom = await wecom_world()
    wecom.standin.nicknames["wmOla"] = "欧拉"
    await wecom.writes("wmOla", "转人工")
    await wecom.writes("wmPam", "转人工")  # WeCom knows no nickname for this one
    duty = await wecom.kefu.agent("duty")
    for customer, name in (("wmOla", "欧拉"), ("wmPam", "")):
        conversation = await wecom.conversation(customer)
        detail = await duty.get(f"/conversations/{conversation.id}")
        record = await duty.get(f"/customers/{detail['customer_id']}")
        assert record["customer"]["name"] == name
