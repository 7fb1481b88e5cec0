"""The official QQ bot channel against a stand-in that plays QQ's side."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.messages import ConversationState
from channels.qq.webhook import key_for, validation_answer
from tests.channels.qq.standin import QQStandIn
from tests.channels.tencent_envelope import Clock
from tests.conftest import TEST_KB
from tests.harness import Kefu, write_kb

ACK = {"op": 12, "d": 0}


def test_qqs_published_url_check_example() -> None:
    answer = validation_answer(key_for("DG5g3B4j9X2KOErG"), {"op": 13, "d": {
        "plain_token": "Arq0D5A61EgUu4OxUvOp", "event_ts": "1725442341"}})
    assert answer == {"plain_token": "Arq0D5A61EgUu4OxUvOp", "signature": (
        "87befc99c42c651b3aac0278e71ada338433ae26fcb24307bdc5ad38c1adc2d01bcfcadc0842edac85e"
        "85205028a1132afe09280305f13aa6909ffc2d652c706")}


@dataclass
class QQ:
    kefu: Kefu
    standin: QQStandIn
    clock: Clock
    url: str

    async def settled(self, result: tuple[int, Any]) -> tuple[int, Any]:
        await self.kefu.router.idle()
        return result

    async def conversation(self, customer: str) -> Any:
        return await self.kefu.store.latest_conversation("qq", customer)


@pytest.fixture
async def qq_world(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[Kefu, QQStandIn]] = []

    async def start() -> QQ:
        clock = Clock()
        standin = QQStandIn(clock)
        api = await standin.start()
        kb = write_kb(tmp_path / "kb", TEST_KB)
        config = Config.model_validate({
            "business": {"name": "测试店", "hours": {d: "00:00-24:00" for d in (
                "mon", "tue", "wed", "thu", "fri", "sat", "sun")}},
            "knowledge_base": {"path": str(kb), "regressions": str(tmp_path / "none.yaml")},
            "store": {"path": str(tmp_path / "kefu.sqlite3")},
            "desk": {"auto_assign": False},
            "channels": {"qq": {"enabled": True, "app_id": standin.app_id,
                                "secret": standin.secret, "api_base": api,
                                "token_url": f"{api}/app/getAppAccessToken",
                                "send_attempts": 2}},
        })
        kefu = await Kefu(config, clock).start()
        await kefu.add_agent("duty", online=True)
        started.append((kefu, standin))
        assert kefu.client is not None
        return QQ(kefu, standin, clock, str(kefu.client.make_url("/qq")))

    yield start
    for kefu, standin in started:
        await kefu.stop()
        await standin.close()


async def test_the_url_check_is_answered_with_the_bots_signature(qq_world: Any) -> None:
    qq = await qq_world()
    status, _ = await qq.standin.validate(qq.url)  # the stand-in checks the signature
    assert status == 200


async def test_a_new_friend_is_greeted_and_questions_answered(qq_world: Any) -> None:
    qq = await qq_world()
    chat = "/v2/users/OPENID1/messages"
    assert await qq.settled(await qq.standin.friend_add(qq.url, "OPENID1")) == (200, ACK)
    (greeting,) = qq.standin.said_in(chat)
    assert "欢迎" in greeting and qq.standin.replies[0].quotes.startswith("FRIEND_ADD:")
    await qq.settled(await qq.standin.private(qq.url, "OPENID1", "退货怎么办"))
    assert qq.standin.said_in(chat)[1:] == ["签收后 7 天内可以无理由退货。"]
    assert qq.standin.refused == []
    conversation = await qq.conversation("u:OPENID1")
    assert conversation.greeting_latency_ms < 5000


async def test_group_at_messages_are_answered_in_the_group(qq_world: Any) -> None:
    qq = await qq_world()
    await qq.settled(await qq.standin.group_at(qq.url, "GROUP9", "MEMBER1", "退款多久到账"))
    greeting, answer = qq.standin.said_in("/v2/groups/GROUP9/messages")
    assert "欢迎" in greeting and answer == "退款 1-3 个工作日到账。"
    assert [r.seq for r in qq.standin.replies] == [1, 2]  # one message, two replies to it
    assert await qq.conversation("g:GROUP9:MEMBER1") is not None


async def test_forged_stale_and_repeated_callbacks(qq_world: Any) -> None:
    qq = await qq_world()
    status, _ = await qq.standin.private(qq.url, "OPENID2", "退货怎么办", forge=True)
    assert status == 401
    status, _ = await qq.standin.private(qq.url, "OPENID2", "退货怎么办",
                                        timestamp=int(qq.clock()) - 3600)
    assert status == 401
    assert await qq.conversation("u:OPENID2") is None
    # QQ may deliver one message twice: it is answered once
    results = await asyncio.gather(*(qq.standin.private(
        qq.url, "OPENID2", "退货怎么办", msg_id="ROBOT1.0_same") for _ in range(2)))
    assert [r for r in results] == [(200, ACK), (200, ACK)]
    await qq.kefu.router.idle()
    said = qq.standin.said_in("/v2/users/OPENID2/messages")
    assert len(said) == 2 and said[1] == "签收后 7 天内可以无理由退货。"
    assert qq.kefu.client is not None
    garbage = await qq.kefu.client.post("/qq", data=b"{not json", headers=qq.standin.signed(
        b"{not json"))
    assert garbage.status == 400


async def test_an_agent_reply_within_the_hour_arrives_and_a_later_one_is_kept(
        qq_world: Any) -> None:
    qq = await qq_world()
    chat = "/v2/users/OPENID3/messages"
    await qq.settled(await qq.standin.private(qq.url, "OPENID3", "转人工"))
    conversation = await qq.conversation("u:OPENID3")
    assert conversation.state is ConversationState.QUEUED
    duty = await qq.kefu.agent("duty")
    await duty.act(conversation.id, "take")  # says who joined: the third reply
    reply = await duty.act(conversation.id, "reply", text="您好，我来帮您处理。")
    assert reply["undelivered"] is None
    assert qq.standin.said_in(chat)[-1] == "您好，我来帮您处理。"
    qq.clock.advance(61 * 60)
    late = await duty.act(conversation.id, "reply", text="已经为您办好了退款。")
    assert "60 minutes" in late["undelivered"]  # the agent is told why
    assert qq.standin.said_in(chat)[-1] == "您好，我来帮您处理。"  # nothing QQ would refuse
    assert (await qq.kefu.store.messages(conversation.id))[-1].text == "已经为您办好了退款。"
    # the customer writes again: replies are possible again
    await qq.settled(await qq.standin.private(qq.url, "OPENID3", "好的，谢谢"))
    again = await duty.act(conversation.id, "reply", text="不客气，祝您生活愉快。")
    assert again["undelivered"] is None and qq.standin.refused == []


async def test_five_replies_to_one_message_at_most(qq_world: Any) -> None:
    qq = await qq_world()
    await qq.settled(await qq.standin.private(qq.url, "OPENID4", "转人工"))
    conversation = await qq.conversation("u:OPENID4")
    duty = await qq.kefu.agent("duty")
    await duty.act(conversation.id, "take")
    used = len(qq.standin.said_in("/v2/users/OPENID4/messages"))  # greeting, handoff, join
    results = [await duty.act(conversation.id, "reply", text=f"第 {n} 条回复，正在处理。")
               for n in range(1, 5 - used + 2)]
    assert [r["undelivered"] is None for r in results] == [True] * (5 - used) + [False]
    assert "5 replies" in results[-1]["undelivered"]
    assert len(qq.standin.said_in("/v2/users/OPENID4/messages")) == 5
    assert qq.standin.refused == []


@pytest.mark.parametrize("author", ["OPENID5", None, {"user_openid": 5}])
async def test_a_message_with_a_malformed_author_is_refused_and_logged(
        qq_world: Any, author: Any, caplog: pytest.LogCaptureFixture) -> None:
    qq = await qq_world()
    status, text = await qq.standin.post(qq.url, {"op": 0, "t": "C2C_MESSAGE_CREATE", "d": {
        "author": author, "content": "退货怎么办", "id": "ROBOT1.0_x"}})
    assert status == 400 and "author.user_openid" in text
    assert any("callback refused" in r.getMessage() for r in caplog.records)
    assert qq.standin.replies == []


async def test_deeply_nested_json_is_refused_not_a_crash(qq_world: Any) -> None:
    qq = await qq_world()
    assert qq.kefu.client is not None
    body = b'{"op": 0, "d": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    refused = await qq.kefu.client.post("/qq", data=body, headers=qq.standin.signed(body))
    assert refused.status == 400 and "nested too deeply" in await refused.text()
