"""What several kefu processes share beyond the store: who works on what, and news.

- `Leases`: one owner at a time for a customer's lane (messages of one conversation are
  handled in order even when they reach different processes) and for the timers (they
  fire once, not once per process). A lease expires if its owner dies, so another process
  takes over.
- `Fanout`: news that every process must hear (a message for a web chat customer whose
  socket is on another process, a change an agent's console must show).

One process on the embedded store uses the local versions: no lease is ever contended and
news goes straight to the subscribers. With Redis, leases are keys with a time-to-live and
news goes through pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError

from bot.errors import KefuError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class LeaseLost(KefuError):
    """The lease ran out while its work went on (Redis was unreachable for longer than its
    time-to-live): what this one was about to write is refused, whether another process
    holds the lease now or took it, did the work and gave it up, so the work is not done
    twice. Recovery finishes it if nobody did."""


# The lease held by the work running in this task, as (key, token): a store that can check
# it refuses writes from work whose lease another process has taken (bot/store/redis.py).
held_lease: ContextVar[tuple[str, str] | None] = ContextVar("held_lease", default=None)


class LeaseUnavailable(KefuError):
    """The lease could not be had in time (Redis unreachable, or held for too long): the
    work it guards is refused, never left waiting for ever."""


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """How leases are held and waited for (config.yaml `store:`, docs/deploy.md)."""

    seconds: float = 10.0  # a dead owner's lease runs out after this
    first_poll_seconds: float = 0.02  # a busy lease is looked at again after this...
    max_poll_seconds: float = 0.5  # ...then twice as long each time, up to this
    wait_seconds: float = 30.0  # longer than this without the lease: the work is refused


class Leases(Protocol):
    def hold(self, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Wait for the lease, keep it while the block runs, then give it up; raises
        LeaseUnavailable, before the block runs, when it cannot be had in time."""

    async def try_lead(self, name: str) -> bool:
        """Take or keep the named lease without waiting; True while this process has it."""


class Fanout(Protocol):
    in_process: bool  # only this process hears: news may skip the trip through JSON

    def subscribe(self, topic: str, handler: Handler) -> None: ...

    def on_reconnect(self, handler: Callable[[], Awaitable[None]]) -> None:
        """Called after news may have been missed (Redis was unreachable for a while)."""

    async def publish(self, topic: str, news: dict[str, Any]) -> None:
        """Every process's handlers for `topic` get `news`, in the order published."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class LocalLeases:
    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        yield  # the lanes already keep one process's work in order

    async def try_lead(self, name: str) -> bool:
        return True


class LocalFanout:
    in_process = True

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    def on_reconnect(self, handler: Callable[[], Awaitable[None]]) -> None:
        """Nothing is ever missed in one process."""

    async def publish(self, topic: str, news: dict[str, Any]) -> None:
        await _dispatch(self._handlers[topic], topic, news)

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


async def _dispatch(handlers: list[Handler], topic: str, news: dict[str, Any]) -> None:
    for handler in handlers:
        try:
            await handler(news)
        except Exception:
            log.exception("fan-out handler for %s failed", topic)


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class RedisLeases:
    """Leases as Redis keys holding their owner's token, with a time-to-live renewed while
    the work goes on; given up only by their owner (a compare-and-delete script).

    A lease held by someone else is looked at again after a short wait that doubles up to
    `max_poll_seconds`: a live peer's lease is usually free within milliseconds, while a
    dead peer's lasts until its time-to-live runs out, and polling it every 20 ms from a
    thousand lanes kept Redis busy for nothing."""

    def __init__(self, client: Any, prefix: str, timing: LeaseTiming = LeaseTiming()) -> None:
        self._client = client
        self._prefix = prefix
        self._timing = timing
        self._ms = int(timing.seconds * 1000)
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    def _key(self, name: str) -> str:
        return f"{self._prefix}lease:{name}"

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        key, token = self._key(name), f"{self._owner}-{uuid.uuid4().hex[:8]}"
        await self._take(key, token)
        keeper = asyncio.create_task(self._keep(key, token))
        holding = held_lease.set((key, token))
        try:
            yield
        finally:
            held_lease.reset(holding)
            keeper.cancel()
            with contextlib.suppress(RedisError):
                await self._release(keys=[key], args=[token])

    async def _take(self, key: str, token: str) -> None:
        """Bounded in time as a whole: one attempt may itself wait for Redis (its retries
        ride through a restart), and an unreachable Redis must not hold the job for
        longer than `wait_seconds` either."""
        pause, problem = self._timing.first_poll_seconds, "held by another owner"
        try:
            async with asyncio.timeout(self._timing.wait_seconds):
                while True:  # polled: the owner may be another process
                    try:
                        if await self._client.set(key, token, nx=True, px=self._ms):
                            return
                        problem = "held by another owner"
                    except RedisError as exc:
                        problem = f"Redis unreachable ({exc})"
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, self._timing.max_poll_seconds)
        except TimeoutError:
            raise LeaseUnavailable(f"lease {key}: {problem} for "
                                   f"{self._timing.wait_seconds:g} s") from None

    async def _keep(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._ms / 3000)
            with contextlib.suppress(RedisError):
                await self._renew(keys=[key], args=[token, self._ms])

    async def try_lead(self, name: str) -> bool:
        key = self._key(name)
        try:
            if await self._renew(keys=[key], args=[self._owner, self._ms]):
                return True
            return bool(await self._client.set(key, self._owner, nx=True, px=self._ms))
        except RedisError as exc:
            log.warning("lease %s: Redis unreachable (%s); not leading for now", name, exc)
            return False


class RedisFanout:
    """News through Redis pub/sub; every process, the publisher included, hears it from
    Redis, so all of them see the same order."""

    in_process = False

    def __init__(self, client: Any, prefix: str, catch_up_seconds: float) -> None:
        self._client = client
        self._prefix = prefix
        self._catch_up_seconds = catch_up_seconds
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._reconnect_handlers: list[Callable[[], Awaitable[None]]] = []

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    def on_reconnect(self, handler: Callable[[], Awaitable[None]]) -> None:
        self._reconnect_handlers.append(handler)

    async def publish(self, topic: str, news: dict[str, Any]) -> None:
        await self._client.publish(f"{self._prefix}news:{topic}",
                                   json.dumps(news, ensure_ascii=False))

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="fan-out reader")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def _read(self) -> None:
        """Hear news until closed. After a break, redis-py may subscribe again by itself
        (inside `listen`, no error surfaces) or fail and be subscribed again here: either
        way the news published meanwhile is missed, and either way Redis confirms every
        subscription once more. The confirmation of the last one is the moment to catch up:
        from then on nothing more is missed."""
        channels = [f"{self._prefix}news:{t}" for t in self._handlers]
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(*channels)
                async for item in pubsub.listen():
                    if item.get("type") == "subscribe":
                        if item.get("data") == len(channels):
                            await self._subscribed()
                        continue
                    if item.get("type") != "message":
                        continue
                    topic = item["channel"].decode().rsplit(":", 1)[1]
                    await _dispatch(self._handlers[topic], topic, json.loads(item["data"]))
            except RedisError as exc:
                log.warning("fan-out: Redis connection lost (%s); subscribing again", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(RedisError):
                    await pubsub.aclose()

    async def _subscribed(self) -> None:
        if not self._ready.is_set():
            self._ready.set()
            return
        log.info("fan-out: subscribed again after a break; catching up")
        for handler in self._reconnect_handlers:
            await self._catch_up(handler)

    async def _catch_up(self, handler: Callable[[], Awaitable[None]]) -> None:
        """Redis may still be loading its append-only file, or drop again: a catch-up that
        fails is tried again, with a doubling pause, until `catch_up_seconds` have passed
        (no attempt starts after that; one under way finishes). Then what was missed stays
        missed, and the log says so."""
        loop = asyncio.get_running_loop()
        give_up_at, pause = loop.time() + self._catch_up_seconds, 0.2
        while True:
            try:
                await handler()
                return
            except RedisError as exc:
                if loop.time() + pause > give_up_at:
                    log.error("fan-out: catching up failed for %g s (%s); news missed in "
                              "the break stays missed", self._catch_up_seconds, exc)
                    return
                log.warning("fan-out: catching up failed (%s); trying again", exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            except Exception:
                log.exception("fan-out: catching up after a break failed")
                return

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
