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
from collections.abc import Callable

from bot.cluster import Leases
from bot.messages import Role
from bot.router import Router
from bot.speaker import Speaker
from bot.store import Store

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, store: Store, router: Router, speaker: Speaker, leases: Leases,
                 after_seconds: float, clock: Callable[[], float]) -> None:
        self._store = store
        self._router = router
        self._speaker = speaker
        self._leases = leases
        self._after = after_seconds
        self._clock = clock

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._after / 2)
            try:
                if await self._leases.try_lead("recovery"):
                    await self.sweep()
            except Exception:
                log.exception("recovery failed; trying again")

    async def sweep(self) -> int:
        """Finish every message unsettled for too long; how many there were."""
        left = await self._store.unsettled(before=self._clock() - self._after)
        for message in left:
            if message.role is Role.CUSTOMER:
                await self._router.resume(message)
                continue
            conversation = await self._store.get_conversation(message.conversation_id)
            if conversation is None:
                await self._store.settle(message.conversation_id, message.seq)
                continue
            log.info("recovery: delivering message %d of %s again", message.seq,
                     conversation.id)
            await self._speaker.deliver(conversation, message)
        return len(left)
