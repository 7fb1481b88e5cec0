"""Work that runs after the caller has moved on, tracked so it is neither lost nor silent."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    def __init__(self, what: str) -> None:
        self._what = what  # named in the log when a task fails
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("%s: background work failed", self._what)

        # A context of its own: the work is not the caller's step, so it does not answer
        # the caller's message (`replying_to`) nor take its priority or deliveries.
        task = asyncio.create_task(guarded(), context=contextvars.Context())
        self._tasks.add(task)  # a task nobody references may be collected mid-run
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for running work to finish (at shutdown; bound it with asyncio.timeout)."""
        while self._tasks:  # work may spawn more work
            await asyncio.wait(set(self._tasks))

    async def cancel(self) -> None:
        """Stop what is still running (at shutdown, after a bounded `drain`)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
