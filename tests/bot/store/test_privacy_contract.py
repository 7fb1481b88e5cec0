"""The store contract for personal data: the access trail, anonymising and deleting. Every
backend runs these same tests."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.messages import ConversationState, Kind, Role
from bot.store import (
    AccessRecord,
    Case,
    Customer,
    Identity,
    NewMessage,
    Note,
    Store,
    UnansweredQuestion,
    WebhookDelivery,
)
from bot.store.sqlite import SqliteStore
from tests.bot.store.test_contract import conversation, said


async def test_the_trail_reads_back_by_period_oldest_first(store: Store) -> None:
    for at, actor in [(100.0, "alice"), (300.0, "carol"), (200.0, "bob"), (200.0, "bea")]:
        await store.record_access(AccessRecord(at, actor, "opened_transcript", "c1",
                                               "10.0.0.7", {"format": "text"}))
    assert [r.actor for r in await store.access_trail()] == ["alice", "bob", "bea", "carol"]
    assert [r.actor for r in await store.access_trail(200.0, 300.0)] == ["bob", "bea"]
    newest = await store.access_trail(limit=2)
    assert [r.actor for r in newest] == ["bea", "carol"]
    assert newest[0] == AccessRecord(200.0, "bea", "opened_transcript", "c1", "10.0.0.7",
                                     {"format": "text"})
    assert await store.forget_access_before(200.0) == 1
    assert [r.actor for r in await store.access_trail()] == ["bob", "bea", "carol"]


async def test_the_embedded_trail_refuses_to_be_edited_even_from_sqlite3(tmp_path: Path
                                                                        ) -> None:
    path = tmp_path / "kefu.sqlite3"
    store = await SqliteStore.open(path)
    await store.record_access(AccessRecord(time.time(), "alice", "erased", "C1", "local"))
    await store.close()
    db = sqlite3.connect(path)
    for change in ("UPDATE access_trail SET actor = 'mallory'", "DELETE FROM access_trail"):
        with pytest.raises(sqlite3.IntegrityError, match="cannot be changed"):
            db.execute(change)
    assert db.execute("SELECT actor FROM access_trail").fetchall() == [("alice",)]
    db.close()


async def test_an_anonymised_conversation_keeps_its_figures_not_its_words(store: Store
                                                                         ) -> None:
    now = time.time()  # dedupe keys live in real time
    c = conversation("c1", user="visitor-9", created=now, state=ConversationState.CLOSED,
                     rating=4, closed_at=now + 10)
    await store.save_conversation(c)
    await store.append_message(c, said("我的电话 13812345678", now + 1, "p1"))
    await store.append_message(c, NewMessage(
        role=Role.AGENT, kind=Kind.TEXT, text="好的张三", ts=now + 2,
        meta={"agent_id": "a1", "agent_name": "alice", "display_name": "张三"}))
    await store.append_message(c, NewMessage(role=Role.BOT, kind=Kind.ANSWER, text="退货…",
                                             ts=now + 3, quick_replies=("好",),
                                             meta={"entry": "returns", "why": "退货"}))
    await store.record_unanswered(UnansweredQuestion("c1", "张三的包裹", None, None, now + 1))
    other = conversation("c2", user="visitor-8", created=now)
    await store.save_conversation(other)
    await store.record_unanswered(UnansweredQuestion("c2", "发票", None, None, now + 1))
    await store.add_note(Note("n1", "c1", "a1", "张三说下周再打 13812345678", now + 4))
    await store.add_note(Note("n2", "c2", "a1", "老客户", now + 4))

    assert await store.anonymise_conversation("c1", "anon-1")
    assert not await store.anonymise_conversation("missing", "anon-2")
    assert await store.get_conversation("c1") == replace(c, user_id="anon-1")
    assert await store.conversations_of("webchat", "visitor-9") == []
    assert [x.id for x in await store.conversations_of("webchat", "anon-1")] == ["c1"]
    messages = await store.messages("c1")
    assert [(m.seq, m.role, m.kind, m.text, m.quick_replies) for m in messages] == [
        (1, Role.CUSTOMER, Kind.TEXT, "", ()), (2, Role.AGENT, Kind.TEXT, "", ()),
        (3, Role.BOT, Kind.ANSWER, "", ())]
    assert [m.meta for m in messages] == [{}, {"agent_id": "a1", "agent_name": "alice"},
                                          {"entry": "returns"}]
    assert await store.unsettled(time.time() + 1) == []
    assert [q.text for q in await store.unanswered()] == ["发票"]
    assert await store.notes("c1") == []  # agents' private notes name the customer too
    assert [n.text for n in await store.notes("c2")] == ["老客户"]
    # the dedupe key went with the customer's id: the same platform id is a new message now
    assert await store.append_message(replace(c, user_id="visitor-9"),
                                      said("again", msg_id="p1")) is not None


async def test_deleting_a_customer_takes_the_records_merged_into_it(store: Store) -> None:
    keep = Customer("C1", 1.0, 1.0, name="张三", phones=("13812345678",))
    merged = Customer("C2", 2.0, 2.0, name="张三", emails=("z@example.com",),
                      merged_into="C1")
    stranger = Customer("C3", 3.0, 3.0, phones=("13900000000",))
    for record in (keep, merged, stranger):
        await store.save_customer(record)
    await store.save_identity(Identity("webchat", "v1", "C1"))
    await store.save_identity(Identity("wechat", "o1", "C1"))
    await store.save_identity(Identity("webchat", "v3", "C3"))

    assert sorted(await store.delete_customer("C1")) == ["C1", "C2"]
    assert await store.get_customer("C1") is None and await store.get_customer("C2") is None
    assert await store.identity("webchat", "v1") is None
    assert await store.identities_of("C1") == []
    assert await store.customers_with_contact("13812345678") == []
    assert [c.id for c in await store.customers()] == ["C3"]
    assert await store.identity("webchat", "v3") is not None


async def test_cases_deliveries_and_channel_state_can_be_deleted(store: Store) -> None:
    case = Case("K1", "C1", "c1", 1.0, 10.0, "包裹丢了")
    await store.save_case(case)
    await store.save_case(replace(case, id="K2"))
    await store.delete_case("K1")
    assert await store.get_case("K1") is None
    assert [k.id for k in await store.cases()] == ["K2"]
    assert [k.id for k in await store.cases("C1")] == ["K2"]

    for did in ("d1", "d2"):
        await store.save_delivery(WebhookDelivery(did, f"e-{did}", "crm", "t", "{}", 1.0, 1.0))
    await store.delete_deliveries(["d1"])
    assert [d.id for d in await store.deliveries()] == ["d2"]
    assert [d.id for d in await store.due_deliveries(5.0, 10)] == ["d2"]

    await store.save_state("webchat:presence:v1", {"online": True})
    await store.save_state("qq:reply:app:u1", {"n": 1})
    assert await store.state_keys() == ["qq:reply:app:u1", "webchat:presence:v1"]
    await store.delete_state("webchat:presence:v1")
    assert await store.state_keys() == ["qq:reply:app:u1"]
    assert await store.load_state("webchat:presence:v1") is None
