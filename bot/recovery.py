"""Finishing what a crash left half-done: nothing acknowledged is lost, nothing said twice.

Every message is unsettled in the store from the moment it is appended until it is done
with: a customer's message until the router has handled it, a reply until its channel took
it. A process killed in between leaves it unsettled; one process at a time (the recovery
lease) looks for messages unsettled for longer than `recovery_after_seconds` and finishes
them: a customer's message is handled (unless the conversation shows it already was), a
reply is delivered again (web chat clients drop a message they already have, by its seq).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

from bot.cluster import Leases
from bot.messages import Role, StoredMessage
from bot.router import Router
from bot.speaker import Speaker
from bot.store import Store

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, store: Store, router: Router, speaker: Speaker, leases: Leases,
                 after_seconds: float, clock: Callable[[], float], at_once: int = 64) -> None:
        self._store = store
        self._router = router
        self._speaker = speaker
        self._leases = leases
        self._after = after_seconds
        self._clock = clock
        self._at_once = at_once  # conversations side by side; answers_at_once caps matching

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._after / 2)
            try:
                if await self._leases.try_lead("recovery"):
                    await self.sweep()
            except Exception:
                log.exception("recovery failed; trying again")

    async def sweep(self) -> int:
        """Finish every message unsettled for too long; how many there were. Conversations
        are finished side by side (each in its lane, its messages in order): one after
        another, a few hundred left by a crash took tens of seconds."""
        left = await self._store.unsettled(before=self._clock() - self._after)
        questions: dict[str, list[StoredMessage]] = defaultdict(list)
        replies = []
        for message in left:
            if message.role is Role.CUSTOMER:
                questions[message.conversation_id].append(message)
            else:
                replies.append(message)
        side_by_side = asyncio.Semaphore(self._at_once)

        async def bounded(work: Awaitable[None]) -> None:
            async with side_by_side:
                await work

        outcomes = await asyncio.gather(
            *(bounded(self._router.resume(group)) for group in questions.values()),
            *(bounded(self._deliver(message)) for message in replies),
            return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.error("recovery: %s", outcome, exc_info=outcome)
        return len(left)

    async def _deliver(self, message: StoredMessage) -> None:
        conversation = await self._store.get_conversation(message.conversation_id)
        if conversation is None:
            await self._store.settle(message.conversation_id, message.seq)
            return
        log.info("recovery: delivering message %d of %s again", message.seq, conversation.id)
        await self._speaker.deliver(conversation, message)
