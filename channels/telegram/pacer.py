"""Sending to Telegram at the pace Telegram allows, losing nothing.

Telegram's limits: about 1 message a second in one chat, 20 a minute in one group, about
30 a second overall; above them it answers 429 with `retry_after`. Every send goes through
one queue per chat, each chat with a token bucket (a group: 3 at once, then one every 3 s)
under an overall bucket. Chats are served oldest message first, except that urgent
messages (greetings) go before everything waiting; one chat's messages stay in order, and
different chats are sent to concurrently. A 429 puts the message back at the head of its
chat's queue until `retry_after` has passed. When several mergeable messages for the same
topic are waiting, they go as one message that says how many were merged, so a burst
costs the group's budget once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.errors import ChannelSendError

log = logging.getLogger(__name__)

NETWORK_ATTEMPTS = 3
# A group's budget is spread out (3 at once, then one every 60/N s) rather than spent in one
# burst of N, so that what piles up meanwhile can be merged instead of waiting a minute.
GROUP_BURST = 3


@dataclass
class Outgoing:
    chat_id: int
    text: str
    thread_id: int | None = None
    markup: Any = None
    urgent: bool = False
    mergeable: bool = False
    seq: int = 0
    merged: int = 1
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class _Bucket:
    def __init__(self, capacity: float, per_second: float, now: float) -> None:
        self.capacity, self.rate = capacity, per_second
        self.tokens, self.at = capacity, now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def wait(self, now: float) -> float:
        """Seconds until one token is there (0 when it is)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1


@dataclass
class _Chat:
    queue: deque[Outgoing]
    bucket: _Bucket
    blocked_until: float = 0.0
    busy: bool = False


Send = Callable[[Outgoing], Awaitable[Any]]


class Pacer:
    def __init__(self, send: Send, *, per_chat_per_second: float, group_per_minute: int,
                 overall_per_second: float, max_chars: int, merged_note: str) -> None:
        self._send = send
        self._per_chat = per_chat_per_second
        self._group_per_minute = group_per_minute
        self._max_chars = max_chars
        self._merged_note = merged_note  # e.g. "（{n} 条消息已合并）"
        loop = asyncio.get_running_loop()
        self._now = loop.time
        self._overall = _Bucket(overall_per_second, overall_per_second, self._now())
        self._chats: dict[int, _Chat] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._in_flight: dict[asyncio.Task[None], Outgoing] = {}
        self._closed = False

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="telegram pacer")

    async def aclose(self) -> None:
        """Stop sending. Whoever waits for a message not sent hears so (the reply stays
        unsettled in the store, for recovery) rather than waiting for ever."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
        in_flight = dict(self._in_flight)
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        for message in in_flight.values():  # a send cancelled before it began says nothing
            _stopped(message)
        for chat in self._chats.values():
            while chat.queue:
                _stopped(chat.queue.popleft())

    def submit(self, message: Outgoing) -> asyncio.Future[Any]:
        """Queue a message; the future gives what Telegram returned, or the error."""
        message.seq = next(self._seq)
        if self._closed:
            _stopped(message)
            return message.done
        chat = self._chats.get(message.chat_id)
        if chat is None:
            group = message.chat_id < 0
            capacity, rate = ((min(GROUP_BURST, self._group_per_minute),
                               self._group_per_minute / 60.0) if group
                              else (1.0, self._per_chat))
            chat = self._chats[message.chat_id] = _Chat(deque(), _Bucket(capacity, rate,
                                                                         self._now()))
        if message.urgent:
            chat.queue.appendleft(message)
        else:
            chat.queue.append(message)
        self._wake.set()
        return message.done

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            delay = self._dispatch()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _dispatch(self) -> float | None:
        """Start every send that may go now; return how long until the next may."""
        soonest: float | None = None
        while True:
            now = self._now()
            ready, waits = [], []
            for chat_id, chat in self._chats.items():
                if chat.busy or not chat.queue:
                    continue
                wait = max(chat.blocked_until - now, chat.bucket.wait(now))
                if wait > 0:
                    waits.append(wait)
                else:
                    ready.append((not chat.queue[0].urgent, chat.queue[0].seq, chat_id))
            overall = self._overall.wait(now)
            if ready and overall > 0:
                waits.append(overall)
                ready = []
            if not ready:
                soonest = min(waits) if waits else None
                self._forget_idle_chats()
                return soonest
            _, _, chat_id = min(ready)
            chat = self._chats[chat_id]
            message = self._take(chat)
            chat.bucket.take(now)
            self._overall.take(now)
            chat.busy = True
            task = asyncio.create_task(self._deliver(chat, message))
            self._in_flight[task] = message
            task.add_done_callback(self._forget)

    def _take(self, chat: _Chat) -> Outgoing:
        """The head of the queue, with the mergeable messages for the same topic behind it."""
        head = chat.queue.popleft()
        if not head.mergeable:
            return head
        merged = [head]
        while chat.queue and chat.queue[0].mergeable and \
                chat.queue[0].thread_id == head.thread_id:
            text = "\n\n".join(m.text for m in [*merged, chat.queue[0]])
            if len(text) + 40 > self._max_chars:
                break
            merged.append(chat.queue.popleft())
        if len(merged) == 1:
            return head
        text = "\n\n".join(m.text for m in merged)
        combined = Outgoing(head.chat_id, text + "\n\n" + self._merged_note.format(
            n=len(merged)), head.thread_id, mergeable=True, seq=head.seq, merged=len(merged))
        combined.done.add_done_callback(lambda done: _settle(merged, done))
        return combined

    async def _deliver(self, chat: _Chat, message: Outgoing) -> None:
        try:
            for attempt in range(1, NETWORK_ATTEMPTS + 1):
                try:
                    result = await self._send(message)
                except RetryAfter as exc:
                    seconds = retry_after_seconds(exc)
                    log.info("telegram: 429 for chat %s; waiting %.0f s", message.chat_id,
                             seconds)
                    chat.blocked_until = self._now() + float(seconds)
                    chat.queue.appendleft(message)  # first again once the wait is over
                    return
                except (BadRequest, Forbidden) as exc:
                    message.done.set_exception(ChannelSendError(
                        f"Telegram refused it: {exc.message}", retryable=False))
                    return
                except NetworkError as exc:  # includes TimedOut
                    if attempt == NETWORK_ATTEMPTS:
                        message.done.set_exception(ChannelSendError(
                            f"Telegram unreachable: {exc.message}", retryable=True))
                        return
                    await asyncio.sleep(0.5 * attempt)
                    continue
                except TelegramError as exc:
                    message.done.set_exception(ChannelSendError(
                        f"Telegram error: {exc.message}", retryable=False))
                    return
                message.done.set_result(result)
                return
        except asyncio.CancelledError:
            _stopped(message)
            raise
        finally:
            chat.busy = False
            self._wake.set()

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)

    def _forget_idle_chats(self) -> None:
        """Chats with nothing queued and a full bucket are dropped: memory stays bounded."""
        if len(self._chats) < 1000:
            return
        now = self._now()
        for chat_id, chat in list(self._chats.items()):
            if not chat.queue and not chat.busy and chat.bucket.wait(now) == 0 \
                    and chat.blocked_until <= now:
                del self._chats[chat_id]


def retry_after_seconds(error: RetryAfter) -> float:
    """`retry_after` is seconds in PTB 22 and becomes a timedelta later; both work."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB's notice about that change
        wait = error.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


def _settle(merged: list[Outgoing], done: asyncio.Future[Any]) -> None:
    for message in merged:
        if done.cancelled():
            message.done.cancel()
        elif done.exception() is not None:
            message.done.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            message.done.set_result(done.result())


def _stopped(message: Outgoing) -> None:
    if not message.done.done():
        message.done.set_exception(ChannelSendError("kefu is stopping", retryable=True))
