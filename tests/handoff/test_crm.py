"""Customer records and complaint cases, through the agent API as the console uses it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.cluster import LocalLeases
from bot.config import Config, CrmConfig, WebhooksConfig
from bot.messages import ConversationState
from bot.store import Agent, AgentRole, CaseStatus, Conversation
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore
from handoff.cases import FOLLOW_UP_DUE, CaseBook
from handoff.contacts import contacts_in
from handoff.customers import CustomerBook
from handoff.webhooks import Webhooks
from tests.harness import AgentClient, Kefu, Visitor, wait_for
from tests.redis_support import REDIS_URL, redis_store


@pytest.mark.parametrize(("text", "found"), [
    ("我的电话是 +86 138-1234-5678，邮箱 Li.Lei@Example.com",
     [("phone", "13812345678"), ("email", "li.lei@example.com")]),
    ("call me on +44 20 7946 0958 or 0086 139 0000 1111", [("phone", "+442079460958"),
                                                           ("phone", "13900001111")]),
    ("座机 010-62345678，手机13812345678", [("phone", "01062345678"), ("phone", "13812345678")]),
    ("订单 2026112512345 还没到，12月1日下的单", []),
    ("13812345678 / 138 1234 5678 是同一个号", [("phone", "13812345678")]),
])
def test_contacts_are_found_and_written_one_way(text: str, found: list[tuple[str, str]]
                                                ) -> None:
    assert [(c.kind, c.value) for c in contacts_in(text)] == found


@pytest.fixture
async def desk(make_config: Callable[..., Config]) -> AsyncIterator[Kefu]:
    running = await Kefu(make_config(desk={"auto_assign": False}, crm={
        "owner_rules": [{"channel": "webchat", "owner": "sales"}]})).start()
    await running.add_agent("duty", online=True)
    await running.add_agent("sales")
    yield running
    await running.stop()


async def customer_of(agent: AgentClient, visitor: Visitor, kefu: Kefu) -> dict[str, Any]:
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    detail = await agent.get(f"/conversations/{conversation.id}")
    return await agent.get(f"/customers/{detail['customer_id']}")  # type: ignore[no-any-return]


async def test_contacts_typed_in_a_chat_are_in_the_record_at_once(desk: Kefu) -> None:
    visitor = await desk.visitor()
    await visitor.say("我的电话是 +86 138-1234-5678，邮箱 Li.Lei@Example.com")
    duty = await desk.agent("duty")

    async def captured() -> bool:
        view = await customer_of(duty, visitor, desk)
        return bool(view["customer"]["phones"])

    await wait_for(captured)
    view = await customer_of(duty, visitor, desk)
    assert view["customer"]["phones"] == ["13812345678"]
    assert view["customer"]["emails"] == ["li.lei@example.com"]
    assert view["owner_name"] == "sales"  # the owner rule for web chat customers
    assert [i["user_id"] for i in view["identities"]] == [visitor.id]


async def test_agents_keep_notes_and_merge_one_person_s_two_records(desk: Kefu) -> None:
    on_phone, on_laptop = await desk.visitor(), await desk.visitor()
    await on_phone.say("我是李雷，电话 13812345678")
    await on_laptop.say("还是我，13812345678")
    duty = await desk.agent("duty")
    await wait_for(lambda: _has_phone(duty, on_laptop, desk))
    first = await customer_of(duty, on_phone, desk)
    second = await customer_of(duty, on_laptop, desk)
    # a typed number is no proof: offered as a possible match, not merged
    assert [m["id"] for m in first["possible_matches"]] == [second["customer"]["id"]]
    await duty.post(f"/customers/{first['customer']['id']}",
                    {"name": "李雷", "tags": ["vip"], "note": "要开专票"})
    merged = await duty.post(f"/customers/{first['customer']['id']}/merge",
                             {"other_id": second["customer"]["id"]})
    assert merged["customer"]["name"] == "李雷" and merged["customer"]["tags"] == ["vip"]
    assert {i["user_id"] for i in merged["identities"]} == {on_phone.id, on_laptop.id}
    assert merged["conversation_count"] == 2 and merged["possible_matches"] == []
    assert merged["customer"]["notes"][0]["text"] == "要开专票"
    # the laptop's conversation now shows the merged record
    assert (await customer_of(duty, on_laptop, desk))["customer"]["id"] == \
        first["customer"]["id"]
    refused = await duty.post(f"/customers/{first['customer']['id']}/merge",
                              {"other_id": first["customer"]["id"]}, status=400)
    assert "itself" in refused["message"]


async def _has_phone(agent: AgentClient, visitor: Visitor, kefu: Kefu) -> bool:
    return bool((await customer_of(agent, visitor, kefu))["customer"]["phones"])


async def test_records_that_both_verified_a_contact_merge_on_their_own(desk: Kefu) -> None:
    a, b = await desk.visitor(), await desk.visitor()
    await a.say("邮箱 han@example.com")
    await b.say("我的邮箱是 HAN@example.com")
    duty = await desk.agent("duty")
    await wait_for(lambda: _has_email(duty, b, desk))
    first, second = await customer_of(duty, a, desk), await customer_of(duty, b, desk)
    after_one = await duty.post(f"/customers/{first['customer']['id']}/verify",
                                {"contact": "han@example.com"})
    assert after_one["customer"]["verified"] == ["han@example.com"]
    assert len(after_one["possible_matches"]) == 1  # only one side verified: not yet
    both = await duty.post(f"/customers/{second['customer']['id']}/verify",
                           {"contact": "Han@Example.com"})
    assert both["customer"]["id"] == first["customer"]["id"]  # the older record lives on
    assert {i["user_id"] for i in both["identities"]} == {a.id, b.id}


async def _has_email(agent: AgentClient, visitor: Visitor, kefu: Kefu) -> bool:
    return bool((await customer_of(agent, visitor, kefu))["customer"]["emails"])


async def test_a_complaint_becomes_a_case_followed_up_until_the_customer_is_satisfied(
        desk: Kefu) -> None:
    await desk.queued_customer("我要投诉，快递三天没动")
    duty = await desk.agent("duty")
    (case,) = await duty.get("/cases")
    assert (case["summary"], case["status"], case["repeat_of"]) == (
        "我要投诉，快递三天没动", "open", None)
    assert case["due_at"] - case["created_at"] == pytest.approx(24 * 3600)
    path = f"/cases/{case['id']}"
    await duty.post(f"{path}/classify", {"category": "delivery", "severity": "high"})
    await duty.post(f"{path}/investigate", {"note": "联系快递公司核实"})
    no_note = await duty.post(f"{path}/resolve", {}, status=400)
    assert "how it was resolved" in no_note["message"]
    resolved = await duty.post(f"{path}/resolve", {"note": "已补发，顺丰单号 SF123"})
    assert resolved["case"]["status"] == "resolved"
    assert resolved["case"]["follow_up_due_at"] is not None
    unhappy = await duty.post(f"{path}/follow_up", {"satisfied": False,
                                                     "note": "客户说还没收到"})
    assert unhappy["case"]["status"] == "open" and unhappy["case"]["satisfied"] is False
    again = await duty.post(f"{path}/investigate", {}, status=200)
    assert again["case"]["status"] == "investigating"
    await duty.post(f"{path}/resolve", {"note": "已签收"})
    closed = await duty.post(f"{path}/follow_up", {"satisfied": True})
    assert closed["case"]["status"] == "closed"
    assert [t["what"] for t in closed["case"]["timeline"]] == [
        "opened", "classified delivery high", "investigating", "resolved",
        "followed up: not satisfied, reopened", "investigating", "resolved",
        "followed up: satisfied"]
    late = await duty.post(f"{path}/resolve", {"note": "x"}, status=409)
    assert "closed" in late["message"]
    assert await duty.get("/cases") == []  # closed cases are not in the work list


async def test_a_second_complaint_within_the_window_is_a_repeat(desk: Kefu) -> None:
    customer, first_id = await desk.queued_customer("投诉：商品有破损")
    duty = await desk.agent("duty")
    await duty.act(first_id, "take")
    await duty.act(first_id, "close")
    await customer.say("5")
    await customer.say("我要投诉，换货还是坏的")  # a new conversation, the same customer
    second = await desk.store.latest_conversation("webchat", customer.id)
    assert second is not None and second.id != first_id
    assert second.state is ConversationState.QUEUED
    cases = await duty.get("/cases")
    first_case = next(c for c in cases if c["conversation_id"] == first_id)
    repeat = next(c for c in cases if c["conversation_id"] == second.id)
    assert repeat["repeat_of"] == first_case["id"]
    assert repeat["customer_id"] == first_case["customer_id"]


async def test_agents_open_cases_by_hand_and_bad_requests_say_why(desk: Kefu) -> None:
    visitor = await desk.visitor()
    await visitor.say("东西收到了但是少了一件")
    conversation = await desk.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    duty = await desk.agent("duty")
    opened = await duty.post("/cases", {"conversation_id": conversation.id,
                                        "summary": "少发一件", "severity": "urgent",
                                        "category": "delivery"})
    assert opened["case"]["due_at"] - opened["case"]["created_at"] == pytest.approx(3600)
    assert (await duty.post("/cases", {"conversation_id": conversation.id,
                                       "summary": "again"}))["case"]["id"] == \
        opened["case"]["id"]  # one open case per conversation
    assert (await duty.post("/cases", {"conversation_id": conversation.id, "summary": "x",
                                       "severity": "catastrophic"}, status=400))["error"] == \
        "bad_request"
    assert (await duty.post("/cases", {"conversation_id": "nope", "summary": "x"},
                            status=404))["error"] == "not_found"
    assert (await duty.post(f"/cases/{opened['case']['id']}/follow_up",
                            {"satisfied": True}, status=409))["error"] == "bad_state"


async def test_a_due_follow_up_is_announced_once(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    store = await SqliteStore.open(tmp_path / "k.sqlite3")
    try:
        customers = CustomerBook(CrmConfig(), store, lambda: now[0])
        cases = CaseBook(CrmConfig(follow_up_after_hours=2), store, customers,
                         Webhooks(WebhooksConfig(), store, LocalLeases()), lambda: now[0])
        conversation = Conversation(id="conv", channel="webchat", user_id="v1",
                                    state=ConversationState.CLOSED, lang="zh",
                                    created_at=now[0], last_activity_at=now[0])
        agent = Agent("a1", "duty", AgentRole.AGENT, 5, "-", now[0])
        case = await cases.open(conversation, "少发一件", by="duty")
        await cases.act(agent, case.id, "resolve", note="已补发")
        now[0] += 3600
        assert await cases.announce_follow_ups() == []
        now[0] += 3601
        (due,) = await cases.announce_follow_ups()
        assert due.timeline[-1]["what"] == FOLLOW_UP_DUE and due.status is CaseStatus.RESOLVED
        assert await cases.announce_follow_ups() == []  # once
    finally:
        await store.close()


async def test_two_processes_meeting_a_new_customer_at_once_make_one_record() -> None:
    async with redis_store() as first:
        second = await RedisStore.open(REDIS_URL, prefix=first.prefix)  # another process
        try:
            books = [CustomerBook(CrmConfig(), store) for store in (first, second)]
            found = await asyncio.gather(*(b.of("telegram", "42", "李雷") for b in books))
            assert found[0] == found[1] and found[0].name == "李雷"
            assert [c.id for c in await second.customers()] == [found[0].id]
            # an agent's name for them is kept when the channel's name changes
            renamed = await books[0].of("telegram", "42", "Li Lei")
            assert renamed.name == "李雷"
            assert (await first.identity("telegram", "42")).display_name == "Li Lei"
        finally:
            await second.close()
