"""Retention: what is older than privacy.retention_days goes, once a day across processes,
and reports over the old period keep their counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.cluster import LocalLeases, RedisLeases
from bot.config import Config
from bot.messages import ConversationState, Kind, Role
from bot.store import (
    AccessRecord,
    Case,
    CaseStatus,
    ConversationEvent,
    Customer,
    DeliveryStatus,
    Identity,
    NewMessage,
    Store,
    Ticket,
    WebhookDelivery,
)
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore
from handoff.report import Period, make_report
from handoff.retention import Retention
from tests.bot.store.test_contract import conversation, said
from tests.handoff.test_export import kefu_cli
from tests.harness import Kefu, wait_for
from tests.redis_support import REDIS_URL, forget, require_redis, unique_prefix

DAY = 86400.0
ZONE = ZoneInfo("Asia/Shanghai")
# Noon in the business's time zone: past the purge hour.
NOW = datetime(2027, 6, 1, 12, 0, tzinfo=ZONE).timestamp()
OLD, RECENT = NOW - 400 * DAY, NOW - 10 * DAY
SAID = ["我的电话 13812345678", "签收后 7 天内…"]


async def seed(store: Store) -> None:
    for cid, user, at in (("old", "v-old", OLD), ("recent", "v-new", RECENT)):
        chat = conversation(cid, user=user, created=at, state=ConversationState.CLOSED,
                            closed_at=at + 600, rating=5)
        await store.save_conversation(chat)
        await store.append_message(chat, said(SAID[0], ts=at + 1))
        await store.append_message(chat, NewMessage(Role.BOT, Kind.ANSWER, SAID[1], at + 2))
        await store.save_identity(Identity("webchat", user, f"C-{cid}", first_seen_at=at))
        await store.save_customer(Customer(f"C-{cid}", at, at, name="王小明"))
    await store.save_customer(Customer("C-alone", OLD, OLD, phones=("13900000000",)))
    await store.save_ticket(Ticket("T-old", "old", "webchat", "v-old", "zh", "发票开错了",
                                   "13812345678", OLD, OLD + 3600))
    await store.save_case(Case("K-closed", "C-old", "old", OLD, OLD, "包裹丢了",
                               status=CaseStatus.CLOSED))
    await store.save_case(Case("K-open", "C-recent", "recent", OLD, OLD, "还没到"))
    for did, status in (("d-done", DeliveryStatus.DELIVERED), ("d-due", DeliveryStatus.PENDING)):
        await store.save_delivery(WebhookDelivery(did, did, "crm", "t", "{}", NOW - 40 * DAY,
                                                  NOW, status=status))
    await store.record_access(AccessRecord(OLD, "alice", "opened_customer", "C-old"))
    await store.record_access(AccessRecord(RECENT, "bob", "opened_customer", "C-recent"))


async def test_old_personal_data_goes_and_the_old_period_keeps_its_figures(
        store: Store, make_config: Callable[..., Config]) -> None:
    config = make_config(privacy={"retention_days": {"cases": 365, "customers": 365}})
    await seed(store)
    old_days = Period.parse(datetime.fromtimestamp(OLD, ZONE).date().isoformat(),
                            datetime.fromtimestamp(OLD, ZONE).date().isoformat(), ZONE, NOW,
                            366)
    before = await make_report(store, old_days, config, now=NOW)
    retention = Retention(config, store, LocalLeases(), clock=lambda: NOW)

    assert await retention.purge() == {
        "transcripts anonymised": 1, "offline messages anonymised": 1, "cases deleted": 1,
        "customer records deleted": 2, "webhook deliveries deleted": 1,
        "access trail records deleted": 1}
    assert [m.text for m in await store.messages("old")] == ["", ""]
    assert [m.text for m in await store.messages("recent")] == SAID
    assert await store.get_customer("C-old") is None  # its only conversation is anonymised
    assert await store.get_customer("C-alone") is None
    assert await store.get_customer("C-recent") is not None
    ticket = await store.get_ticket("T-old")
    assert ticket is not None and (ticket.question, ticket.contact) == ("", "")
    assert [c.id for c in await store.cases()] == ["K-open"]
    assert [d.id for d in await store.deliveries()] == ["d-due"]
    assert [r.actor for r in await store.access_trail()] == ["bob", "kefu:retention"]
    after = await make_report(store, old_days, config, now=NOW)
    assert before.conversations == after.conversations == 1
    assert (after.ratings, after.outcomes, after.customer_messages, after.tickets) == (
        before.ratings, before.outcomes, before.customer_messages, before.tickets)

    assert await retention.purge() == {}  # nothing more is old enough


async def test_repeat_complaints_are_still_counted_once_the_complaints_are_anonymised(
        store: Store, make_config: Callable[..., Config]) -> None:
    """Both complaints old, or the first old and the repeat not yet: the link between them
    is who complained, which the purge removes."""
    config = make_config(privacy={"retention_days": {"transcripts": 365}})
    first, again = NOW - 366 * DAY, NOW - 361 * DAY  # only the first one is old enough
    for cid, user, at in (("a1", "v-angry", OLD), ("a2", "v-angry", OLD + 2 * DAY),
                          ("b1", "v-back", first), ("b2", "v-back", again),
                          ("c1", "v-calm", OLD + DAY)):
        chat = conversation(cid, user=user, created=at, state=ConversationState.CLOSED,
                            closed_at=at + 600)
        await store.save_conversation(chat)
        await store.append_message(chat, said("我要投诉", ts=at + 1))
        await store.record_event(ConversationEvent(cid, at + 1, "queued",
                                                   detail={"reason": "complaint"}))
    days = Period.parse(datetime.fromtimestamp(OLD, ZONE).date().isoformat(),
                        datetime.fromtimestamp(again, ZONE).date().isoformat(), ZONE, NOW, 366)
    before = await make_report(store, days, config, now=NOW)
    assert (before.complaints, before.repeat_complaints) == (5, 2)

    counts = await Retention(config, store, LocalLeases(), clock=lambda: NOW).purge()

    assert counts["transcripts anonymised"] == 4
    assert [c.user_id for c in await store.conversations_of("webchat", "v-back")] == ["v-back"]
    after = await make_report(store, days, config, now=NOW)
    assert (after.complaints, after.repeat_complaints) == (5, 2)


async def test_zero_days_keeps_that_kind_for_ever(store: Store,
                                                  make_config: Callable[..., Config]) -> None:
    await seed(store)
    config = make_config(privacy={"retention_days": {
        "transcripts": 0, "customers": 0, "offline_messages": 0, "cases": 0,
        "webhook_deliveries": 0, "logs": 0}})
    assert await Retention(config, store, LocalLeases(), clock=lambda: NOW).purge() == {}
    assert [m.text for m in await store.messages("old")] == SAID


async def test_the_daily_purge_runs_once_across_processes(
        make_config: Callable[..., Config]) -> None:
    await require_redis()
    prefix = unique_prefix()
    stores = [await RedisStore.open(REDIS_URL, prefix=prefix) for _ in range(3)]
    try:
        await seed(stores[0])
        config = make_config(privacy={"purge_hour": 3})
        early = datetime(2027, 6, 1, 2, 0, tzinfo=ZONE).timestamp()
        asleep = Retention(config, stores[0], RedisLeases(stores[0].client, prefix),
                           clock=lambda: early)
        assert await asleep.purge_if_due() is None  # before the purge hour
        processes = [Retention(config, s, RedisLeases(s.client, prefix), clock=lambda: NOW)
                     for s in stores]
        ran = await asyncio.gather(*(p.purge_if_due() for p in processes))
        assert sorted(r is not None for r in ran) == [False, False, True]
        assert await processes[0].purge_if_due() is None  # done for the day
        tomorrow = Retention(config, stores[1], RedisLeases(stores[1].client, prefix),
                             clock=lambda: NOW + DAY)
        assert await tomorrow.purge_if_due() == {}
        purges = [r for r in await stores[2].access_trail() if r.action == "purged"]
        assert [r.at for r in purges] == [NOW, NOW + DAY]
    finally:
        for s in stores:
            await s.close()
        await forget(prefix)


async def test_a_running_kefu_purges_on_its_own(make_config: Callable[..., Config]) -> None:
    kefu = await Kefu(make_config(privacy={"purge_check_seconds": 0.05,
                                           "purge_hour": 0})).start()
    try:
        long_ago = time.time() - 400 * DAY
        chat = conversation("old", user="v-old", created=long_ago,
                            state=ConversationState.CLOSED, closed_at=long_ago)
        await kefu.store.save_conversation(chat)
        await kefu.store.append_message(chat, said(SAID[0], ts=long_ago))

        async def purged() -> bool:
            return [r.action for r in await kefu.store.access_trail()] == ["purged"]

        await wait_for(purged)
        assert [m.text for m in await kefu.store.messages("old")] == [""]
    finally:
        await kefu.stop()


async def test_kefu_purge_runs_it_now_and_says_what_went(tmp_path: Path) -> None:
    path = tmp_path / "kefu.sqlite3"
    store = await SqliteStore.open(path)
    long_ago = time.time() - 400 * DAY
    chat = conversation("old", user="v-old", created=long_ago,
                        state=ConversationState.CLOSED, closed_at=long_ago)
    await store.save_conversation(chat)
    await store.append_message(chat, said(SAID[0], ts=long_ago))
    await store.close()
    config = tmp_path / "config.yaml"
    config.write_text(f"store:\n  path: {path}\n", encoding="utf-8")
    first = kefu_cli("--config", str(config), "purge")
    assert (first.returncode, first.stdout) == (0, "removed: 1 transcripts anonymised\n")
    again = kefu_cli("--config", str(config), "purge")
    assert again.stdout == "removed: nothing\n"
