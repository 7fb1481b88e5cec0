"""Customers' personal data at the desk: who may read it, the trail of who did, erasure."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from bot.config import Config
from bot.messages import ConversationState
from bot.store import AgentRole, Customer, Identity, Ticket
from bot.store.sqlite import SqliteStore
from handoff.report import Period, make_report
from tests.bot.store.test_contract import conversation, said
from tests.handoff.test_export import kefu_cli
from tests.harness import AgentClient, Kefu, wait_for
from tests.redis_support import REDIS_URL, forget, require_redis, unique_prefix


async def status_of(agent: AgentClient, path: str) -> int:
    response = await agent.client.get(f"/agent/api{path}", headers=agent.headers)
    return response.status


@pytest.fixture
async def strict(make_config: Callable[..., Config]) -> AsyncIterator[Kefu]:
    """Agents read only the chats they held or were offered, and see contacts masked."""
    running = await Kefu(make_config(
        desk={"auto_assign": False},
        privacy={"agents_read": "held_or_offered", "agents_see_contacts": "masked"})).start()
    for name in ("duty", "other"):
        await running.add_agent(name, online=True)
    await running.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    yield running
    await running.stop()


async def test_agents_read_the_chats_they_held_or_were_offered_and_are_on_the_trail(
        strict: Kefu) -> None:
    visitor, conversation_id = await strict.queued_customer("我要投诉，我的电话 13812345678")
    duty, other, boss = [await strict.agent(n) for n in ("duty", "other", "boss")]
    assert [c["preview"] for c in await other.get("/queue")] == ["我要投诉，我的电话 138****5678"]
    offered = await other.get(f"/conversations/{conversation_id}")  # queued: offered to all
    customer_id = offered["customer_id"]
    await duty.act(conversation_id, "take")
    await visitor.say("邮箱 wang@example.com")
    frame = await duty.next_event("message", conversation_id)
    while frame["message"]["role"] != "customer":
        frame = await duty.next_event("message", conversation_id)
    assert frame["message"]["text"] == "邮箱 w***@example.com"
    assert await status_of(other, f"/conversations/{conversation_id}") == 403
    assert await status_of(other, f"/conversations/{conversation_id}/transcript") == 403
    assert await status_of(other, f"/customers/{customer_id}") == 403
    held = await duty.get(f"/conversations/{conversation_id}")
    said = [m["text"] for m in held["messages"] if m["role"] == "customer"]
    assert said == ["我要投诉，我的电话 138****5678", "邮箱 w***@example.com"]  # masked
    full = await boss.get(f"/conversations/{conversation_id}")
    assert "我要投诉，我的电话 13812345678" in [m["text"] for m in full["messages"]]
    assert [c["summary"] for c in await duty.get("/cases")] == ["我要投诉，我的电话 138****5678"]
    assert [c["summary"] for c in await boss.get("/cases")] == ["我要投诉，我的电话 13812345678"]
    record = await duty.get(f"/customers/{customer_id}")
    assert record["customer"]["phones"] == ["138****5678"]

    await duty.act(conversation_id, "transfer", to="other")
    assert await status_of(other, f"/conversations/{conversation_id}/transcript") == 200
    assert await status_of(duty, f"/conversations/{conversation_id}") == 200  # held it

    assert await status_of(duty, "/audit") == 403
    trail = (await boss.get("/audit"))["records"]
    assert [(r["actor"], r["action"], r["subject"]) for r in trail] == [
        ("other", "opened_conversation", conversation_id),
        ("duty", "opened_conversation", conversation_id),
        ("boss", "opened_conversation", conversation_id),
        ("duty", "opened_customer", customer_id),
        ("other", "opened_transcript", conversation_id),
        ("duty", "opened_conversation", conversation_id)]
    assert {r["address"] for r in trail} == {"127.0.0.1"}
    assert all(time.time() - 60 < r["at"] <= time.time() for r in trail)
    mine = (await boss.get("/audit?actor=other"))["records"]
    assert [r["action"] for r in mine] == ["opened_conversation", "opened_transcript"]
    assert (await boss.get("/audit"))["records"][-1]["action"] == "read_trail"
    assert await status_of(boss, "/audit?from=someday") == 400


NEEDLES = ("13812345678", "wang@example.com", "王小明", "11010519491231002X", "王先生",
           "WX98765", "发票抬头写错了")


async def everything_in_sqlite(path: Path) -> str:
    """Every table's name and every value in it, as text."""
    db = sqlite3.connect(path)
    try:
        seen = []
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            seen.append(table)
            seen += [repr(row) for row in db.execute(f"SELECT * FROM {table}")]
        return "\n".join(seen)
    finally:
        db.close()


async def everything_in_redis(prefix: str) -> str:
    """Every key's name and value under the prefix, as text."""
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        seen = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            kind = await client.type(key)
            value: Any = {"string": client.get, "list": lambda k: client.lrange(k, 0, -1),
                          "zset": lambda k: client.zrange(k, 0, -1), "set": client.smembers,
                          "hash": client.hgetall}[kind](key)
            seen += [key, repr(await value)]
        return "\n".join(seen)
    finally:
        await client.aclose()


@pytest.fixture(params=["sqlite", "redis"])
async def erasable(request: pytest.FixtureRequest, make_config: Callable[..., Config],
                   tmp_path: Path) -> AsyncIterator[tuple[Kefu, Callable[[], Any]]]:
    """A kefu on each store, with a way to read everything that store holds."""
    webhooks = {"endpoints": [{"name": "crm", "url": "http://127.0.0.1:9/hooks",
                               "secret": "receiver-secret-0123456789"}],
                "first_retry_seconds": 3600}
    if request.param == "redis":
        await require_redis()
        prefix = unique_prefix()
        config = make_config(desk={"auto_assign": False}, webhooks=webhooks,
                             store={"type": "redis", "url": REDIS_URL, "prefix": prefix})
        running = await Kefu(config).start()
        yield running, lambda: everything_in_redis(prefix)
        await running.stop()
        await forget(prefix)
        return
    path = tmp_path / "erase.sqlite3"
    config = make_config(desk={"auto_assign": False}, webhooks=webhooks,
                         store={"path": str(path)})
    running = await Kefu(config).start()
    yield running, lambda: everything_in_sqlite(path)
    await running.stop()


async def test_an_erased_customer_leaves_nothing_of_theirs_in_the_store(
        erasable: tuple[Kefu, Callable[[], Any]]) -> None:
    kefu, everything = erasable
    await kefu.add_agent("duty", online=True)
    await kefu.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    visitor, conversation_id = await kefu.queued_customer(
        "我要投诉！我叫王小明，电话 13812345678，邮箱 wang@example.com")
    await visitor.say("身份证 11010519491231002X，包裹 WX98765")
    await wait_for(lambda: kefu.store.customers_with_contact("wang@example.com"))
    duty, boss = await kefu.agent("duty"), await kefu.agent("boss")
    customer_id = (await duty.get(f"/conversations/{conversation_id}"))["customer_id"]
    await duty.post(f"/customers/{customer_id}", {"name": "王小明", "note": "王先生要退款"})
    await duty.act(conversation_id, "take")
    await duty.act(conversation_id, "reply", text="王先生您好，马上为您处理")
    busy = await boss.post(f"/customers/{customer_id}/erase", {"confirm": True}, status=409)
    assert busy["error"] == "bad_state"  # not while they are in a conversation
    await duty.act(conversation_id, "close")
    await visitor.say("5")
    await visitor.disconnect()
    left_at = time.time()  # and an offline message of theirs from an evening before
    await kefu.store.save_ticket(Ticket("T-wang", conversation_id, "webchat", visitor.id, "zh",
                                        "发票抬头写错了", "13812345678", left_at - 86400,
                                        left_at))
    zone = ZoneInfo(kefu.config.business.timezone)
    today = Period.parse(None, None, zone, time.time(), 7)
    before = await make_report(kefu.store, today, kefu.config, now=time.time())
    stored = await everything()
    assert all(n in stored for n in (visitor.id, *NEEDLES))  # the scan would see them

    await duty.post(f"/customers/{customer_id}/erase", {"confirm": True}, status=403)
    await boss.post(f"/customers/{customer_id}/erase", {}, status=400)
    erased = (await boss.post(f"/customers/{customer_id}/erase", {"confirm": True}))["erased"]

    assert erased["customer records deleted"] == 1 and erased["cases deleted"] == 1
    assert erased["conversations anonymised"] == 1
    assert erased["offline messages anonymised"] == 1
    stored = await everything()
    for needle in (visitor.id, *NEEDLES):
        assert needle not in stored
    after = await make_report(kefu.store, today, kefu.config, now=time.time())
    assert (after.conversations, after.ratings, after.outcomes, after.customer_messages,
            after.complaints, after.tickets) == (
        before.conversations, before.ratings, before.outcomes, before.customer_messages,
        before.complaints, before.tickets)
    assert [d.type for d in await kefu.store.deliveries()] == ["customer.erased"]
    (told,) = await kefu.store.deliveries()
    assert customer_id in told.body and conversation_id in told.body
    (trail,) = [r for r in await kefu.store.access_trail() if r.action == "erased"]
    assert (trail.actor, trail.subject) == ("boss", customer_id)
    await boss.post(f"/customers/{customer_id}/erase", {"confirm": True}, status=404)


async def test_the_command_line_erases_by_contact_and_shows_the_trail(tmp_path: Path) -> None:
    path = tmp_path / "kefu.sqlite3"
    store = await SqliteStore.open(path)
    now = time.time()
    await store.save_customer(Customer("C1", now, now, name="王小明", phones=("13812345678",)))
    await store.save_identity(Identity("webchat", "v-wang", "C1", first_seen_at=now))
    chat = conversation("c1", user="v-wang", created=now, state=ConversationState.CLOSED)
    await store.save_conversation(chat)
    await store.append_message(chat, said("电话 13812345678 身份证 11010519491231002X"))
    await store.close()
    config = tmp_path / "config.yaml"
    config.write_text(f"store:\n  path: {path}\n", encoding="utf-8")

    exported = kefu_cli("--config", str(config), "export", "customers", "--format", "json")
    assert "138****5678" in exported.stdout and "13812345678" not in exported.stdout
    unmasked = kefu_cli("--config", str(config), "export", "customers", "--unmasked",
                        "--format", "json")
    assert "13812345678" in unmasked.stdout
    wrong = kefu_cli("--config", str(config), "customer", "erase", "--contact", "13900000000")
    assert (wrong.returncode, wrong.stderr) == (
        2, "kefu: no customer record holds that contact\n")
    erased = kefu_cli("--config", str(config), "customer", "erase", "--contact",
                      "+86 138-1234-5678")
    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.startswith("customer C1 erased: 1 conversations anonymised")
    assert "13812345678" not in await everything_in_sqlite(path)

    audit = kefu_cli("--config", str(config), "audit", "--format", "json")
    trail = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [(r["action"], r["subject"], r["address"]) for r in trail] == [
        ("exported", "customers", "local"), ("exported", "customers", "local"),
        ("erased", "C1", "local")]
    assert [r["detail"]["unmasked"] for r in trail[:2]] == [False, True]
    assert all(r["actor"].startswith("cli:") for r in trail)
    text = kefu_cli("--config", str(config), "audit", "--subject", "C1").stdout
    assert " erased " in text and "from local" in text and "read_trail" not in text
