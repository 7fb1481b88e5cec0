"""Retention: personal data older than `privacy.retention_days` deleted or anonymised, daily.

The purge runs once a day across every process: after `privacy.purge_hour` (business
time) whichever process holds the lease runs it and writes the day in the store's state;
the others, waiting for the lease, find the day written and do nothing. What it removes is
logged and written in the access trail.

Reports over an old period keep their counts: conversations and offline messages are
anonymised, not deleted (a conversation keeps its state, times, rating and each message's
role, kind, time and agent: what reports count), and the events reports are made from hold
nothing personal; before a customer's conversations are anonymised, each of their
complaints notes when they last complained (handoff/report.py), so repeats still count.
What goes from them is what the customer said: the transcript's text, the questions the bot
could not answer, the offline message's question and contact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.cluster import Leases
from bot.config import Config
from bot.messages import ConversationState
from bot.store import AccessRecord, CaseStatus, DeliveryStatus, Store
from handoff.privacy import ALL_DELIVERIES, PSEUDONYM_PREFIX, pseudonym
from handoff.report import keep_complaint_history

log = logging.getLogger(__name__)

LEADER = "privacy-purge"
LAST_PURGE = "privacy:last_purge"  # the state key: {"day": "YYYY-MM-DD", "at": ...}
DAY = 86400.0
ACTOR = "kefu:retention"


class Retention:
    def __init__(self, config: Config, store: Store, leases: Leases,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config.privacy
        self._repeat_days = config.reports.repeat_complaint_days
        self._zone = ZoneInfo(config.business.timezone)
        self._store = store
        self._leases = leases
        self._clock = clock

    def _cutoff(self, days: int) -> float | None:
        return self._clock() - days * DAY if days else None

    async def purge(self) -> dict[str, int]:
        """Delete or anonymise what is older than its retention; what went, by kind."""
        keep = self._config.retention_days
        store, counts = self._store, dict[str, int]()

        def count(kind: str, n: int = 1) -> None:
            if n:
                counts[kind] = counts.get(kind, 0) + n

        cutoff = self._cutoff(keep.transcripts)
        if cutoff is not None:
            old = [c for c in await store.conversations_created(0.0, cutoff)
                   if c.state is ConversationState.CLOSED and (c.closed_at or 0.0) < cutoff
                   and not c.user_id.startswith(PSEUDONYM_PREFIX)]
            repeats_within = self._repeat_days * DAY  # what a later complaint links to
            old_customers = {(c.channel, c.user_id) for c in old}
            await keep_complaint_history(store, [
                c for c in await store.conversations_created(0.0, cutoff + repeats_within)
                if (c.channel, c.user_id) in old_customers])
            for c in old:
                await store.anonymise_conversation(c.id, pseudonym())
                count("transcripts anonymised")
        cutoff = self._cutoff(keep.offline_messages)
        if cutoff is not None:
            for t in await store.tickets():
                if t.created_at < cutoff and not t.user_id.startswith(PSEUDONYM_PREFIX):
                    await store.save_ticket(replace(t, question="", contact="", note="",
                                                    user_id=pseudonym()))
                    count("offline messages anonymised")
        cutoff = self._cutoff(keep.cases)
        if cutoff is not None:
            for case in await store.cases():
                if case.status is CaseStatus.CLOSED and case.created_at < cutoff:
                    await store.delete_case(case.id)
                    count("cases deleted")
        cutoff = self._cutoff(keep.customers)
        if cutoff is not None:
            for customer in await store.customers():
                if customer.updated_at < cutoff and not await store.cases(customer.id) \
                        and not await self._has_conversation(customer.id):
                    count("customer records deleted",
                          len(await store.delete_customer(customer.id)))
        cutoff = self._cutoff(keep.webhook_deliveries)
        if cutoff is not None:
            done = [d.id for d in await store.deliveries(limit=ALL_DELIVERIES)
                    if d.status is not DeliveryStatus.PENDING and d.created_at < cutoff]
            await store.delete_deliveries(done)
            count("webhook deliveries deleted", len(done))
        cutoff = self._cutoff(keep.logs)
        if cutoff is not None:
            count("access trail records deleted", await store.forget_access_before(cutoff))
        await store.record_access(AccessRecord(self._clock(), ACTOR, "purged", "retention",
                                               "local", dict(counts)))
        log.info("privacy: retention purge removed %s",
                 ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "nothing")
        return counts

    async def _has_conversation(self, customer_id: str) -> bool:
        for identity in await self._store.identities_of(customer_id):
            if await self._store.conversations_of(identity.channel, identity.user_id):
                return True
        return False

    async def purge_if_due(self) -> dict[str, int] | None:
        """The day's purge, if it is past the hour and no process ran it today."""
        now = datetime.fromtimestamp(self._clock(), self._zone)
        if now.hour < self._config.purge_hour:
            return None
        today = now.date().isoformat()
        async with self._leases.hold(LEADER):
            last = await self._store.load_state(LAST_PURGE)
            if last is not None and last.get("day") == today:
                return None
            counts = await self.purge()
            await self._store.save_state(LAST_PURGE, {"day": today, "at": self._clock()})
            return counts

    async def run(self) -> None:
        """Look every `purge_check_seconds` whether the day's purge is due, until cancelled.
        The first look is one interval after start-up, which stays quick."""
        while True:
            await asyncio.sleep(self._config.purge_check_seconds)
            try:
                await self.purge_if_due()
            except Exception:  # the loop must go on (Redis down a while...); it is logged
                log.exception("privacy: the retention purge failed; trying again later")
