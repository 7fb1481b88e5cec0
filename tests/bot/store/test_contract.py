"""The store contract: every backend runs these same tests."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.messages import ConversationState, Kind, Role
from bot.store import (
    Agent,
    AgentRole,
    AgentSession,
    AgentSettings,
    Case,
    CaseStatus,
    Conversation,
    ConversationEvent,
    Customer,
    DeliveryStatus,
    Identity,
    NewMessage,
    Note,
    Notice,
    Presence,
    Store,
    Ticket,
    TicketStatus,
    UnansweredQuestion,
    WebhookDelivery,
)
from bot.store.sqlite import SqliteStore


def conversation(cid: str = "c1", user: str = "u1", created: float = 100.0, **changes: object
                 ) -> Conversation:
    base = Conversation(id=cid, channel="webchat", user_id=user, state=ConversationState.BOT,
                        lang="zh", created_at=created, last_activity_at=created)
    return replace(base, **changes)  # type: ignore[arg-type]


def said(text: str, ts: float = 101.0, msg_id: str | None = None) -> NewMessage:
    return NewMessage(role=Role.CUSTOMER, kind=Kind.TEXT, text=text, ts=ts, platform_msg_id=msg_id)


async def test_saved_conversation_reads_back_equal(store: Store) -> None:
    original = conversation(greeting_latency_ms=12.5, handoff_reason="complaint",
                            state=ConversationState.QUEUED, queued_at=105.0, rating=4)
    await store.save_conversation(original)
    assert await store.get_conversation("c1") == original
    assert await store.get_conversation("missing") is None


async def test_conversations_are_listed_by_when_they_began(store: Store) -> None:
    for cid, created, state in [("late", 300.0, ConversationState.CLOSED),
                                ("early", 100.0, ConversationState.AGENT),
                                ("mid-b", 200.0, ConversationState.BOT),
                                ("mid-a", 200.0, ConversationState.CLOSED),
                                ("after", 400.0, ConversationState.BOT)]:
        await store.save_conversation(conversation(cid, user=cid, created=created, state=state))
    await store.save_conversation(conversation("early", user="early", created=100.0,
                                               state=ConversationState.CLOSED))
    listed = await store.conversations_created(100.0, 400.0)
    assert [c.id for c in listed] == ["early", "mid-a", "mid-b", "late"]
    assert listed[0].state is ConversationState.CLOSED  # saved twice, listed once, as now
    assert await store.conversations_created(400.5, 500.0) == []


async def test_webhook_deliveries_come_due_in_time_order_and_are_listed(store: Store
                                                                       ) -> None:
    def delivery(did: str, created: float, next_at: float, **changes: object
                 ) -> WebhookDelivery:
        base = WebhookDelivery(id=did, event_id=f"e-{did}", endpoint="crm",
                               type="conversation.closed", body='{"x": "开"}',
                               created_at=created, next_at=next_at)
        return replace(base, **changes)  # type: ignore[arg-type]

    await store.save_delivery(delivery("late", 10.0, 300.0))
    await store.save_delivery(delivery("soon", 20.0, 100.0))
    await store.save_delivery(delivery("later", 30.0, 900.0))
    assert [d.id for d in await store.due_deliveries(now=300.0, limit=10)] == ["soon", "late"]
    assert [d.id for d in await store.due_deliveries(now=300.0, limit=1)] == ["soon"]
    sent = delivery("soon", 20.0, 100.0, status=DeliveryStatus.DELIVERED, attempts=2,
                    delivered_at=150.0)
    await store.save_delivery(sent)
    gave_up = delivery("late", 10.0, 300.0, status=DeliveryStatus.FAILED, attempts=12,
                       last_error="HTTP 500")
    await store.save_delivery(gave_up)
    assert await store.due_deliveries(now=10_000.0, limit=10) == [
        delivery("later", 30.0, 900.0)]
    assert [d.id for d in await store.deliveries()] == ["later", "soon", "late"]
    assert await store.deliveries(DeliveryStatus.FAILED) == [gave_up]
    assert await store.deliveries(DeliveryStatus.DELIVERED) == [sent]


async def test_customers_identities_and_contacts(store: Store) -> None:
    alice = Customer(id="c-alice", created_at=10.0, updated_at=10.0, name="李女士",
                     phones=("13812345678",), emails=("li@example.com",),
                     notes=({"at": 11.0, "by": "duty", "text": "VIP, 要发票"},), tags=("vip",))
    bob = Customer(id="c-bob", created_at=20.0, updated_at=20.0, phones=("13812345678",))
    await store.save_customer(alice)
    await store.save_customer(bob)
    assert await store.get_customer("c-alice") == alice
    assert [c.id for c in await store.customers_with_contact("13812345678")] == [
        "c-alice", "c-bob"]
    assert [c.id for c in await store.customers_with_contact("li@example.com")] == ["c-alice"]
    # Bob changes his phone; then he is merged into Alice's record and no longer listed
    await store.save_customer(replace(bob, phones=("13900000000",)))
    assert [c.id for c in await store.customers_with_contact("13812345678")] == ["c-alice"]
    await store.save_customer(replace(bob, phones=("13900000000",), merged_into="c-alice"))
    assert await store.customers_with_contact("13900000000") == []
    assert [c.id for c in await store.customers()] == ["c-alice"]
    assert [c.id for c in await store.customers(since=15.0)] == []

    web = Identity("webchat", "v1", "c-bob", "访客", first_seen_at=20.0)
    wechat = Identity("wechat", "o-1", "c-alice", "李", first_seen_at=5.0)
    await store.save_identity(web)
    await store.save_identity(wechat)
    assert await store.identity("webchat", "v1") == web
    assert await store.identity("webchat", "nobody") is None
    await store.save_identity(replace(web, customer_id="c-alice"))  # moved with the merge
    assert await store.identities_of("c-bob") == []
    assert [(i.channel, i.user_id) for i in await store.identities_of("c-alice")] == [
        ("wechat", "o-1"), ("webchat", "v1")]


async def test_an_identity_is_claimed_by_one_customer_only(store: Store) -> None:
    first = Identity("webchat", "v9", "c-first", first_seen_at=1.0)
    second = Identity("webchat", "v9", "c-second", first_seen_at=2.0)
    held = await asyncio.gather(store.claim_identity(first), store.claim_identity(second))
    assert held[0] == held[1] and held[0] in (first, second)
    assert await store.identity("webchat", "v9") == held[0]
    loser = "c-second" if held[0] == first else "c-first"
    assert await store.identities_of(loser) == []
    assert await store.identities_of(held[0].customer_id) == [held[0]]


async def test_saving_a_conversation_can_settle_its_handled_message(store: Store) -> None:
    c = conversation()
    await store.save_conversation(c)
    first = await store.append_message(c, said("一", msg_id="m1"))
    second = await store.append_message(c, said("二", msg_id="m2"))
    assert first is not None and second is not None
    await store.save_conversation(replace(c, consecutive_misses=1), settled=(first.seq,))
    assert (await store.get_conversation(c.id)).consecutive_misses == 1
    assert [m.seq for m in await store.unsettled(before=time.time() + 1)] == [second.seq]
    third = await store.append_message(c, said("三", msg_id="m3"))
    fourth = await store.append_message(c, said("四", msg_id="m4"))
    assert third is not None and fourth is not None
    await store.save_conversation(c, settled=(second.seq, fourth.seq))  # several at once
    assert [m.seq for m in await store.unsettled(before=time.time() + 1)] == [third.seq]


async def test_a_change_and_the_webhooks_announcing_it_are_written_together(store: Store
                                                                         ) -> None:
    def announcing(what: str) -> tuple[WebhookDelivery, ...]:
        return tuple(WebhookDelivery(id=f"{what}-{endpoint}", event_id=what, endpoint=endpoint,
                                     type=what, body="{}", created_at=5.0, next_at=5.0)
                     for endpoint in ("crm", "erp"))

    await store.record_event(ConversationEvent("c1", 5.0, "closed", "a1"),
                             announcing("conversation.closed"))
    await store.save_case(Case(id="K9", customer_id="c-x", conversation_id="c1", created_at=5.0,
                               due_at=9.0, summary="少发一件"), announcing("case.opened"))
    await store.save_ticket(Ticket(id="T9", conversation_id="c1", channel="webchat",
                                   user_id="u1", lang="zh", question="发票", contact="",
                                   created_at=5.0, due_at=9.0), announcing("ticket.overdue"))
    await store.save_conversation(conversation("c1"), deliveries=announcing("rating.received"))
    await store.save_conversation(conversation("c2", "u2"), settled=(1,),
                                  deliveries=announcing("conversation.started"))
    assert [e.type for e in await store.events("c1")] == ["closed"]
    assert [c.id for c in await store.cases()] == ["K9"]
    assert [t.id for t in await store.tickets()] == ["T9"]
    assert await store.get_conversation("c2") == conversation("c2", "u2")
    assert sorted(d.id for d in await store.due_deliveries(now=6.0, limit=20)) == [
        "case.opened-crm", "case.opened-erp", "conversation.closed-crm",
        "conversation.closed-erp", "conversation.started-crm", "conversation.started-erp",
        "rating.received-crm", "rating.received-erp", "ticket.overdue-crm",
        "ticket.overdue-erp"]


async def test_cases_keep_their_timeline_and_come_soonest_due_first(store: Store) -> None:
    first = Case(id="K1", customer_id="c-alice", conversation_id="conv-1", created_at=10.0,
                 due_at=500.0, summary="快递三天没动", category="delivery", severity="high",
                 timeline=({"at": 10.0, "by": "bot", "what": "opened", "note": ""},))
    second = Case(id="K2", customer_id="c-bob", conversation_id="conv-2", created_at=20.0,
                  due_at=100.0, summary="发票开错")
    await store.save_case(first)
    await store.save_case(second)
    assert [c.id for c in await store.cases()] == ["K2", "K1"]
    assert await store.cases("c-alice") == [first]
    resolved = replace(first, status=CaseStatus.RESOLVED, resolved_at=50.0, satisfied=False,
                       timeline=(*first.timeline, {"at": 50.0, "by": "duty",
                                                   "what": "resolved", "note": "补发"}))
    await store.save_case(resolved)
    assert await store.get_case("K1") == resolved
    assert await store.get_case("K9") is None


async def test_current_conversation_skips_closed_ones(store: Store) -> None:
    await store.save_conversation(conversation("old", created=1.0, state=ConversationState.CLOSED))
    assert await store.current_conversation("webchat", "u1") is None
    latest = await store.latest_conversation("webchat", "u1")
    assert latest is not None and latest.id == "old"
    await store.save_conversation(conversation("new", created=2.0))
    current = await store.current_conversation("webchat", "u1")
    assert current is not None and current.id == "new"
    assert [c.id for c in await store.conversations_of("webchat", "u1")] == ["new", "old"]
    assert await store.current_conversation("telegram", "u1") is None


async def test_transcript_keeps_order_and_every_field(store: Store) -> None:
    c = conversation()
    await store.save_conversation(c)
    first = await store.append_message(c, said("退货怎么办", msg_id="m1"))
    reply = await store.append_message(c, NewMessage(
        role=Role.BOT, kind=Kind.CLARIFY, text="您是想问？", ts=102.0,
        quick_replies=("可以退货吗", "人工客服"), meta={"scores": [{"entry": "a", "score": 50}]}))
    assert first is not None and reply is not None
    assert (first.seq, reply.seq) == (1, 2)
    transcript = await store.messages("c1")
    assert transcript == [first, reply]
    assert transcript[1].quick_replies == ("可以退货吗", "人工客服")
    assert transcript[1].meta == {"scores": [{"entry": "a", "score": 50}]}
    assert await store.messages("c1", after_seq=1) == [reply]


async def test_same_platform_message_id_is_stored_once_per_customer(store: Store) -> None:
    c, other = conversation(), conversation("c2", user="u2")
    await store.save_conversation(c)
    await store.save_conversation(other)
    assert await store.append_message(c, said("hi", msg_id="m1")) is not None
    assert await store.append_message(c, said("hi again", msg_id="m1")) is None
    assert await store.append_message(other, said("hi", msg_id="m1")) is not None  # other user
    assert [m.text for m in await store.messages("c1")] == ["hi"]


async def test_concurrent_appends_get_distinct_ordered_seqs(store: Store) -> None:
    c = conversation()
    await store.save_conversation(c)
    stored = await asyncio.gather(*(store.append_message(c, said(f"m{i}")) for i in range(50)))
    seqs = sorted(m.seq for m in stored if m is not None)
    assert seqs == list(range(1, 51))


async def test_queue_positions_follow_queue_time(store: Store) -> None:
    for cid, queued_at in [("late", 30.0), ("early", 10.0), ("middle", 20.0)]:
        await store.save_conversation(conversation(cid, user=cid, state=ConversationState.QUEUED,
                                                   queued_at=queued_at))
    await store.save_conversation(conversation("bot", user="bot"))
    assert [await store.queue_position(c) for c in ("early", "middle", "late", "bot")] == [
        1, 2, 3, None]


async def test_unanswered_questions_are_kept_for_staff(store: Store) -> None:
    await store.record_unanswered(UnansweredQuestion("c1", "能便宜点吗", "price", 20.5, 100.0))
    await store.record_unanswered(UnansweredQuestion("c1", "天气", None, None, 200.0))
    assert [u.text for u in await store.unanswered()] == ["能便宜点吗", "天气"]
    assert [u.text for u in await store.unanswered(since=150.0)] == ["天气"]


async def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "durable.sqlite3"
    first = await SqliteStore.open(path)
    c = conversation()
    await first.save_conversation(c)
    await first.append_message(c, said("退货怎么办", msg_id="m1"))
    await first.close()
    second = await SqliteStore.open(path)
    try:
        assert await second.get_conversation("c1") == c
        assert [m.text for m in await second.messages("c1")] == ["退货怎么办"]
        assert await second.append_message(c, said("dup", msg_id="m1")) is None
    finally:
        await second.close()


async def test_queue_order_puts_higher_priority_first_then_first_come(store: Store) -> None:
    for cid, queued_at, priority in [("a", 10.0, 0), ("b", 20.0, 1), ("c", 5.0, 0),
                                     ("d", 30.0, 1)]:
        await store.save_conversation(conversation(cid, user=cid, state=ConversationState.QUEUED,
                                                   queued_at=queued_at, priority=priority))
    await store.save_conversation(conversation("held", user="h", state=ConversationState.AGENT,
                                               agent_id="x"))
    queued = await store.conversations_in_state(ConversationState.QUEUED)
    assert [c.id for c in queued] == ["b", "d", "c", "a"]
    assert [await store.queue_position(c) for c in ("b", "d", "c", "a")] == [1, 2, 3, 4]
    held = await store.conversations_in_state(ConversationState.AGENT)
    assert [c.id for c in held] == ["held"]


async def test_agents_have_unique_names_and_narrow_updates(store: Store) -> None:
    mei = Agent(id="a1", name="mei", role=AgentRole.SUPERVISOR, max_chats=3,
                password_hash="scrypt$x", created_at=1.0)
    await store.save_agent(mei)
    assert await store.get_agent("a1") == mei
    assert await store.agent_by_name("mei") == mei
    with pytest.raises(ValueError, match="already exists"):
        await store.save_agent(replace(mei, id="a2"))
    await store.save_agent(replace(mei, id="a0", name="ann"))
    assert [a.name for a in await store.agents()] == ["ann", "mei"]
    await store.update_agent("a1", presence=Presence.ONLINE)
    await store.update_agent("a1", last_seen_at=50.0)
    updated = await store.get_agent("a1")
    assert updated is not None
    assert (updated.presence, updated.last_seen_at, updated.max_chats) == (
        Presence.ONLINE, 50.0, 3)
    await store.update_agent("ghost", presence=Presence.AWAY)  # nothing to change
    assert await store.get_agent("ghost") is None


async def test_a_password_change_or_disabling_touches_nothing_else(store: Store) -> None:
    mei = Agent(id="a1", name="mei", role=AgentRole.AGENT, max_chats=3,
                password_hash="scrypt$old", created_at=1.0, presence=Presence.ONLINE)
    await store.save_agent(mei)
    await store.update_agent("a1", password_hash="scrypt$new")
    await store.update_agent("a1", disabled=True)
    assert await store.get_agent("a1") == replace(mei, password_hash="scrypt$new", disabled=True)
    await store.update_agent("a1", disabled=False)
    assert (await store.agent_by_name("mei")) == replace(mei, password_hash="scrypt$new")


async def test_a_removed_agent_loses_name_settings_and_sessions(store: Store) -> None:
    mei = Agent(id="a1", name="mei", role=AgentRole.AGENT, max_chats=3,
                password_hash="scrypt$x", created_at=1.0)
    await store.save_agent(mei)
    await store.save_agent_settings(AgentSettings("a1", lang="en"))
    session = AgentSession(token_hash="h1", agent_id="a1", csrf_token="c",
                           created_at=1.0, expires_at=time.time() + 60)
    await store.save_session(session)
    await store.delete_agent("a1")
    assert await store.get_agent("a1") is None
    assert await store.agent_by_name("mei") is None
    assert await store.agents() == []
    assert await store.get_session("h1") is None
    assert await store.agent_settings("a1") == AgentSettings("a1")
    await store.save_agent(replace(mei, id="a2"))  # the name is free again
    assert (await store.agent_by_name("mei")) == replace(mei, id="a2")


async def test_agent_settings_default_until_chosen_and_read_back(store: Store) -> None:
    assert await store.agent_settings("a1") == AgentSettings("a1", lang="zh", muted=())
    chosen = AgentSettings("a1", lang="en", muted=(Notice.BREACH, Notice.NEW_CHAT))
    await store.save_agent_settings(chosen)
    assert await store.agent_settings("a1") == chosen
    assert await store.agent_settings("a2") == AgentSettings("a2")


async def test_notes_are_kept_per_conversation_oldest_first(store: Store) -> None:
    await store.add_note(Note("n2", "c1", "a1", "客户是老顾客，已补偿过一次", 20.0))
    await store.add_note(Note("n1", "c1", "a2", "等仓库回复", 10.0))
    await store.add_note(Note("n3", "c2", "a1", "other chat", 5.0))
    assert [n.id for n in await store.notes("c1")] == ["n1", "n2"]
    assert (await store.notes("c1"))[1] == Note("n2", "c1", "a1", "客户是老顾客，已补偿过一次",
                                                20.0)
    assert await store.notes("c3") == []


async def test_labels_are_replaced_and_read_for_many_conversations(store: Store) -> None:
    await store.set_labels("c1", ["退款", "vip"])
    await store.set_labels("c2", ["发票"])
    await store.set_labels("c1", ["退款", "加急"])
    assert await store.labels(["c1", "c2", "c3"]) == {"c1": ("加急", "退款"), "c2": ("发票",)}
    await store.set_labels("c2", [])
    assert await store.labels(["c2"]) == {}
    assert await store.labels([]) == {}


async def test_sessions_are_found_by_token_hash_and_deleted(store: Store) -> None:
    session = AgentSession(token_hash="h1", agent_id="a1", csrf_token="c",
                           created_at=1.0, expires_at=2.0)
    await store.save_session(session)
    assert await store.get_session("h1") == session
    await store.delete_session("h1")
    assert await store.get_session("h1") is None


async def test_ending_an_agents_sessions_keeps_only_the_one_asked(store: Store) -> None:
    now = time.time()
    for token_hash, agent_id in (("h1", "a1"), ("h2", "a1"), ("h3", "a1"), ("h4", "a2")):
        await store.save_session(AgentSession(token_hash=token_hash, agent_id=agent_id,
                                              csrf_token="c", created_at=now,
                                              expires_at=now + 3600))
    await store.end_sessions("a1", keep="h2")
    assert [h for h in ("h1", "h2", "h3", "h4") if await store.get_session(h)] == ["h2", "h4"]
    await store.end_sessions("a1")
    assert await store.get_session("h2") is None and await store.get_session("h4")


async def test_tickets_come_soonest_due_first_and_filter_by_status(store: Store) -> None:
    def ticket(tid: str, due: float, **changes: object) -> Ticket:
        base = Ticket(id=tid, conversation_id="c1", channel="webchat", user_id="u1", lang="zh",
                      question="发票开错了", contact="", created_at=1.0, due_at=due)
        return replace(base, **changes)  # type: ignore[arg-type]

    await store.save_ticket(ticket("late", 300.0))
    await store.save_ticket(ticket("soon", 100.0, contact="13812345678"))
    await store.save_ticket(ticket("done", 50.0, status=TicketStatus.DONE, done_at=60.0,
                                   done_by="a1", note="已回电"))
    assert [t.id for t in await store.tickets()] == ["done", "soon", "late"]
    assert [t.id for t in await store.tickets(TicketStatus.OPEN)] == ["soon", "late"]
    assert await store.get_ticket("done") == ticket(
        "done", 50.0, status=TicketStatus.DONE, done_at=60.0, done_by="a1", note="已回电")


async def test_events_keep_their_order_and_detail(store: Store) -> None:
    await store.record_event(ConversationEvent("c1", 10.0, "queued", None, {"priority": 1}))
    await store.record_event(ConversationEvent("c2", 11.0, "queued"))
    await store.record_event(ConversationEvent("c1", 12.0, "assigned", "a1",
                                               {"waited_seconds": 2.0}))
    assert [e.type for e in await store.events("c1")] == ["queued", "assigned"]
    assert (await store.events("c1"))[1].detail == {"waited_seconds": 2.0}
    assert [e.conversation_id for e in await store.events(since=11.0)] == ["c2", "c1"]


async def test_an_older_database_gains_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY, channel TEXT NOT NULL, user_id TEXT NOT NULL,
            state TEXT NOT NULL, lang TEXT NOT NULL, created_at REAL NOT NULL,
            last_activity_at REAL NOT NULL, consecutive_misses INTEGER NOT NULL,
            handoff_reason TEXT, queued_at REAL, closed_at REAL, rating INTEGER,
            greeting_latency_ms REAL, greeting_breach TEXT, last_holding_at REAL);
        INSERT INTO conversations VALUES ('c1', 'webchat', 'u1', 'queued', 'zh', 1.0, 2.0, 0,
            'request', 3.0, NULL, NULL, 12.5, NULL, NULL);
    """)
    db.close()
    store = await SqliteStore.open(path)
    try:
        upgraded = await store.get_conversation("c1")
        assert upgraded is not None
        assert (upgraded.state, upgraded.handoff_reason, upgraded.priority,
                upgraded.agent_read_seq, upgraded.agent_id) == (
            ConversationState.QUEUED, "request", 0, 0, None)
        assert await store.queue_position("c1") == 1
    finally:
        await store.close()


async def test_channel_state_is_saved_and_replaced(store: Store) -> None:
    assert await store.load_state("wechat:token") is None
    await store.save_state("wechat:token", {"token": "中文 ok", "expires_at": 7200.5})
    await store.save_state("wechat:token", {"token": "t2", "expires_at": 9000.0})
    assert await store.load_state("wechat:token") == {"token": "t2", "expires_at": 9000.0}


async def test_messages_stay_unsettled_until_settled(store: Store) -> None:
    c = conversation()
    await store.save_conversation(c)
    asked = await store.append_message(c, said("退货怎么办", msg_id="m1"))
    answered = await store.append_message(c, NewMessage(
        role=Role.BOT, kind=Kind.ANSWER, text="可以退", ts=102.0))
    assert asked is not None and answered is not None
    later = time.time() + 60
    assert [m.seq for m in await store.unsettled(before=later)] == [1, 2]
    assert await store.unsettled(before=0.0) == []  # nothing that old
    await store.settle(c.id, 1)
    assert await store.unsettled(before=later) == [answered]
    await store.settle(c.id, 2)
    await store.settle(c.id, 2)  # settling twice is harmless
    assert await store.unsettled(before=later) == []


async def test_a_customer_message_comes_with_their_earlier_ones_left_unsettled(
    store: Store
) -> None:
    c, other = conversation(), conversation("c2", user="u2")
    await store.save_conversation(c)
    await store.save_conversation(other)
    first = await store.append_inbound(c, said("你好", msg_id="m1"))
    assert first is not None and (first.message.seq, first.earlier) == (1, ())
    await store.settle(c.id, 1)  # handled
    left = await store.append_inbound(c, said("退货怎么办", msg_id="m2"))  # then a crash
    unsent = await store.append_message(c, NewMessage(  # a reply the channel did not take
        role=Role.BOT, kind=Kind.ANSWER, text="可以退", ts=102.0))
    await store.append_inbound(other, said("别人的", msg_id="m3"))
    later = await store.append_inbound(c, said("什么时候退款", msg_id="m4"))
    assert left is not None and unsent is not None and later is not None
    assert (later.message.seq, later.earlier) == (4, (left.message,))
    assert await store.append_inbound(c, said("什么时候退款", msg_id="m4")) is None  # a resend


async def test_a_message_appended_twice_by_id_is_stored_once(store: Store) -> None:
    """redis-py sends a command again when its reply was lost, though Redis may have run it."""
    c = conversation()
    await store.save_conversation(c)
    answer = NewMessage(role=Role.BOT, kind=Kind.ANSWER, text="可以退", ts=101.0, id="a-1")
    first = await store.append_message(c, answer)
    again = await store.append_message(c, answer)
    asked = await store.append_message(c, said("还有", msg_id="m-2"))
    assert first is not None and again == first and first.id == "a-1"
    assert asked is not None and asked.seq == first.seq + 1
    assert [m.id for m in await store.messages(c.id)] == ["a-1", asked.id]


async def test_failures_are_counted_atomically_and_forgotten(store: Store) -> None:
    assert await store.failures("login:alice:10.0.0.9", 100.0) == (0, 0.0)
    counts = await asyncio.gather(*(store.count_failure("login:alice:10.0.0.9", 100.0 + i,
                                                        60.0) for i in range(5)))
    assert sorted(counts) == [1, 2, 3, 4, 5]  # none lost to a race
    assert (await store.failures("login:alice:10.0.0.9", 120.0))[0] == 5
    assert await store.failures("login:alice:10.0.0.1", 120.0) == (0, 0.0)  # per key
    assert await store.failures("login:alice:10.0.0.9", 200.0) == (0, 0.0)  # forgotten
    assert await store.count_failure("login:alice:10.0.0.9", 200.0, 60.0) == 1
    await store.clear_failures("login:alice:10.0.0.9")
    assert await store.failures("login:alice:10.0.0.9", 200.0) == (0, 0.0)


async def test_opening_the_chat_begins_a_greeted_conversation_unless_one_goes_on(
        store: Store) -> None:
    def greeting(ts: float) -> NewMessage:
        return NewMessage(role=Role.BOT, kind=Kind.GREETING, text="您好！", ts=ts)

    first = conversation("c1", created=100.0)
    latest, greeted = await store.begin_unless_open(first, greeting(100.0), idle_before=50.0)
    assert latest is None and greeted is not None  # a newcomer: greeted in the same operation
    assert (greeted.conversation_id, greeted.seq, greeted.kind) == ("c1", 1, Kind.GREETING)
    assert [m.seq for m in await store.unsettled(before=time.time() + 1)] == [1]
    await store.save_conversation(first, settled=(1,))

    again = conversation("c2", created=200.0)
    latest, greeted = await store.begin_unless_open(again, greeting(200.0), idle_before=90.0)
    assert latest == first and greeted is None  # active since 100: it goes on
    assert await store.messages("c2") == []

    latest, greeted = await store.begin_unless_open(again, greeting(200.0), idle_before=150.0)
    assert latest == first and greeted is not None  # the bot's, idle since 100: a new one
    assert greeted.conversation_id == "c2"
    with_agent = replace(first, state=ConversationState.AGENT)
    await store.save_conversation(with_agent)
    third = conversation("c3", created=300.0)
    latest, greeted = await store.begin_unless_open(third, greeting(300.0), idle_before=250.0)
    assert latest == with_agent and greeted is None  # people have it: idle or not, it goes on
    closed = replace(first, state=ConversationState.CLOSED, closed_at=150.0)
    await store.save_conversation(closed)
    latest, greeted = await store.begin_unless_open(third, greeting(300.0), idle_before=0.0)
    assert latest == closed and greeted is not None
