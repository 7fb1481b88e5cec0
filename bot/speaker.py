"""Everything said in a conversation goes through here: stored first, then delivered.

The transcript is written before a message is handed to the channel, so nothing a customer
was told is missing from it; a reply stays unsettled in the store until its channel took it,
so recovery can deliver what a crash interrupted. Listeners hear about every message and
state change: `listen` in every process (agents' consoles, wherever they are connected),
`listen_here` only in the process that made the change (the Telegram bridge, which must
post once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from bot.channel import Channel
from bot.cluster import Fanout
from bot.errors import ChannelSendError
from bot.messages import ConversationState, OutboundReply, StoredMessage
from bot.metrics import Metrics
from bot.priority import Priority, current_priority, priority
from bot.store import Conversation, ConversationEvent, NewMessage, Received, Store
from bot.store.records import from_json, to_json

log = logging.getLogger(__name__)

# The customer message being handled in this task, if any: replies say which they answer,
# so recovery can tell an answered message from one a crash interrupted.
replying_to: ContextVar[int | None] = ContextVar("replying_to", default=None)

# Inside `Speaker.settling_with_the_save`: the task whose step it is, and what it delivered,
# (conversation id, seq), for the save of the conversation that ends the step to settle,
# instead of a write each. Tasks started inside (a dispatch, another lane) inherit the
# variable but are not that task: they settle their own deliveries.
_delivered: ContextVar[tuple[asyncio.Task[Any] | None, list[tuple[str, int]]] | None] = \
    ContextVar("delivered", default=None)

# Called with the conversation and the message just stored, or None for a state change.
Listener = Callable[[Conversation, StoredMessage | None], None]
TOPIC = "conversation"


@dataclass(frozen=True, slots=True)
class Said:
    message: StoredMessage
    undelivered: str | None = None  # why the channel could not deliver it; it is kept


class Speaker:
    def __init__(self, store: Store, channels: Mapping[str, Channel],
                 clock: Callable[[], float], fanout: Fanout, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics
        self._channels = channels
        self._clock = clock
        self._fanout = fanout
        self._listeners: list[Listener] = []
        self._local_listeners: list[Listener] = []
        fanout.subscribe(TOPIC, self._heard)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def listen_here(self, listener: Listener) -> None:
        self._local_listeners.append(listener)

    async def _notify(self, conversation: Conversation, message: StoredMessage | None) -> None:
        _call(self._local_listeners, conversation, message)
        if self._fanout.in_process:  # one process: every listener is here
            _call(self._listeners, conversation, message)
            return
        await self._fanout.publish(TOPIC, {
            "conversation": to_json(conversation),
            "message": to_json(message) if message is not None else None})

    async def _heard(self, news: dict[str, Any]) -> None:
        message = news["message"]
        _call(self._listeners, from_json(Conversation, news["conversation"]),
              from_json(StoredMessage, message) if message is not None else None)

    async def receive(self, conversation: Conversation, message: NewMessage
                      ) -> Received | None:
        """Store what the customer said, with their earlier messages still unsettled; None
        for a retry or resend of a message already stored."""
        received = await self._store.append_inbound(conversation, message)
        if received is not None:
            self._metrics.messages.labels(conversation.channel, "in").inc()
            await self._notify(conversation, received.message)
        return received

    async def record(self, conversation: Conversation, message: NewMessage
                     ) -> StoredMessage | None:
        """Store what a platform's own agent wrote in its app, without delivering it; None
        when it was read before."""
        stored = await self._store.append_message(conversation, message)
        if stored is not None:
            await self._notify(conversation, stored)
        return stored

    async def say(self, conversation: Conversation, reply: OutboundReply) -> Said:
        """Store a reply in the transcript, then hand it to the conversation's channel."""
        answering = replying_to.get()
        meta = reply.meta if answering is None else {**reply.meta, "reply_to": answering}
        # The customer waits for it: stored with their messages, ahead of background work
        # (the bookkeeping of everyone's earlier answers, under a crowd).
        with priority(max(current_priority(), Priority.STORE)):
            stored = await self._store.append_message(conversation, NewMessage(
                role=reply.role, kind=reply.kind, text=reply.text, ts=self._clock(),
                quick_replies=reply.quick_replies, meta=meta))
        if stored is None:  # only inbound messages carry a dedupe key
            raise RuntimeError("the store dropped an outbound message")
        undelivered = await self.deliver(conversation, stored)
        await self._notify(conversation, stored)
        return Said(stored, undelivered)

    @contextlib.asynccontextmanager
    async def settling_with_the_save(self) -> AsyncIterator[list[tuple[str, int]]]:
        """Messages this task delivers inside are settled by the caller's save of the
        conversation that ends its step (`settled_here`, called inside the block), not one
        write each; if the step (or that save) fails, they are settled on the way out, so
        recovery does not send them twice."""
        delivered: list[tuple[str, int]] = []
        token = _delivered.set((asyncio.current_task(), delivered))
        try:
            yield delivered
        except BaseException:
            _delivered.reset(token)
            for conversation_id, seq in delivered:
                with contextlib.suppress(Exception):  # at worst recovery sends it again
                    await self._store.settle(conversation_id, seq)
            raise
        _delivered.reset(token)

    async def settled_here(self, conversation_id: str, delivered: list[tuple[str, int]]
                           ) -> tuple[int, ...]:
        """The seqs of `conversation_id` among `delivered`, for its save to settle; any
        other conversation's are settled now."""
        for other, seq in delivered:
            if other != conversation_id:
                await self._store.settle(other, seq)
        return tuple(seq for other, seq in delivered if other == conversation_id)

    async def _settle(self, conversation_id: str, seq: int) -> None:
        later = _delivered.get()
        if later is not None and later[0] is asyncio.current_task():
            later[1].append((conversation_id, seq))
        else:
            await self._store.settle(conversation_id, seq)

    async def deliver(self, conversation: Conversation, message: StoredMessage) -> str | None:
        """Hand a stored message to the channel and settle it; what the channel refused
        for good is recorded as an `undelivered` event with the reason (the message stays
        in the transcript). A passing failure leaves it unsettled: recovery tries again."""
        channel = self._channels.get(conversation.channel)
        if channel is None:
            log.error("no channel %r for conversation %s", conversation.channel, conversation.id)
            await self._settle(conversation.id, message.seq)
            return f"no channel {conversation.channel!r}"
        try:
            await channel.send(conversation, message)
        except ChannelSendError as exc:
            log.warning("conversation %s: message %d not delivered: %s", conversation.id,
                        message.seq, exc)
            if exc.retryable:
                return f"{exc} (kefu will try again)"
            await self._settle(conversation.id, message.seq)
            await self._store.record_event(ConversationEvent(
                conversation.id, self._clock(), "undelivered", None,
                {"seq": message.seq, "reason": str(exc)}))
            self._metrics.undelivered.labels(conversation.channel).inc()
            return str(exc)
        self._metrics.messages.labels(conversation.channel, "out").inc()
        await self._settle(conversation.id, message.seq)
        return None

    async def send_state(self, conversation: Conversation) -> None:
        """Tell the customer's client (with the queue position) and the listeners."""
        channel = self._channels.get(conversation.channel)
        if channel is not None:
            position = None
            if conversation.state is ConversationState.QUEUED:
                position = await self._store.queue_position(conversation.id)
            await channel.send_state(conversation, position)
        await self._notify(conversation, None)

    async def typing(self, conversation: Conversation) -> None:
        """Show the customer that a person is writing, where the channel can."""
        channel = self._channels.get(conversation.channel)
        if channel is not None:
            await channel.typing(conversation)

    def channel(self, name: str) -> Channel | None:
        return self._channels.get(name)


def _call(listeners: list[Listener], conversation: Conversation,
          message: StoredMessage | None) -> None:
    for listener in listeners:
        try:
            listener(conversation, message)
        except Exception:
            log.exception("listener failed on conversation %s", conversation.id)
