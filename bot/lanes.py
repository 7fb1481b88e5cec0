"""One lane per customer: every change to a conversation runs in its lane, in order.

The router's handling of an inbound message, an agent's reply, a timer's holding message:
each is a job on the lane of the conversation's customer (channel, user id). Jobs of one
lane run strictly one after another, so no two of them load, change and save the same
conversation at once; different lanes run concurrently. An idle lane disappears, so memory
follows the number of active customers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from bot.cluster import Leases, LeaseUnavailable, LocalLeases

log = logging.getLogger(__name__)

T = TypeVar("T")
LaneKey = tuple[str, str]  # (channel, user id)
Job = Callable[[], Awaitable[None]]
Refusal = Callable[[LeaseUnavailable], None]


@dataclass
class _Lane:
    # Taken only by the lane's own task, never awaited: a deque, not an asyncio.Queue
    # (whose Event and waiters every new lane, one per customer message, would pay for).
    queue: deque[tuple[Job, Refusal | None]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class Lanes:
    """With `leases` shared between processes (Redis), a lane's job also waits for the
    customer's lease, so their messages are handled one at a time whichever process they
    reach."""

    def __init__(self, leases: Leases | None = None) -> None:
        self._lanes: dict[LaneKey, _Lane] = {}
        self._leases = leases or LocalLeases()

    def submit(self, key: LaneKey, job: Job, refused: Refusal | None = None) -> None:
        """Queue `job` on the lane; a job's failure is logged and the lane goes on. When the
        customer's lease cannot be had (Redis unreachable), the job does not run and
        `refused` hears why: whoever waits for the job must not wait for ever."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
            # A context of its own: a lane started from another customer's step (a
            # dispatch) must not take that step's message, priority or deliveries as its own.
            lane.task = asyncio.create_task(self._drain(key, lane), name=f"lane {key}",
                                            context=contextvars.Context())
        lane.queue.append((job, refused))

    async def run(self, key: LaneKey, action: Callable[[], Awaitable[T]]) -> T:
        """Run `action` in the lane and return its result (or raise its error).

        Never call this from a job of the same lane: it would wait for itself."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        async def job() -> None:
            try:
                result = await action()
            except Exception as exc:
                if not done.cancelled():
                    done.set_exception(exc)
                return
            if not done.cancelled():
                done.set_result(result)

        def refused(exc: LeaseUnavailable) -> None:
            if not done.done():
                done.set_exception(exc)

        self.submit(key, job, refused)
        return await done

    async def idle(self) -> None:
        """Wait until every lane has finished its work (tests and shutdown).

        Cancelling the wait (shutdown's grace running out) leaves the lanes running: a lane
        cancelled mid-queue would drop the jobs behind the running one, and whoever waits
        for them (a Telegram update waiting to be stored) would wait for ever."""
        while running := [lane.task for lane in list(self._lanes.values())
                          if lane.task is not None and not lane.task.done()]:
            await asyncio.wait(running)

    async def _drain(self, key: LaneKey, lane: _Lane) -> None:
        try:
            await self._run_jobs(key, lane)
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            # Cancelled (nothing in kefu does, but a lane must not strand anyone): the jobs
            # behind the one that was running never run, and their callers hear so.
            while lane.queue:
                _job, refused = lane.queue.popleft()
                if refused is not None:
                    refused(LeaseUnavailable("the lane was stopped before this job ran"))

    async def _run_jobs(self, key: LaneKey, lane: _Lane) -> None:
        while lane.queue:
            job, refused = lane.queue.popleft()
            async with contextlib.AsyncExitStack() as lease:
                try:
                    await lease.enter_async_context(
                        self._leases.hold(f"lane:{key[0]}:{key[1]}"))
                except LeaseUnavailable as exc:
                    log.warning("lane of %s/%s: a job was refused: %s", *key, exc)
                    if refused is not None:
                        refused(exc)
                    continue
                try:
                    await job()
                except Exception:
                    log.exception("job failed in the lane of %s/%s", *key)
