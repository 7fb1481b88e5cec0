"""Everything said in a conversation goes through here: stored first, then delivered.

The transcript is written before a message is handed to the channel, so nothing a customer
was told is missing from it. Listeners (the agent console) hear about every message and
state change, inbound and outbound, without polling the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.channel import Channel
from bot.errors import ChannelSendError
from bot.messages import ConversationState, OutboundReply, StoredMessage
from bot.store import Conversation, ConversationEvent, NewMessage, Store

log = logging.getLogger(__name__)

# Called with the conversation and the message just stored, or None for a state change.
Listener = Callable[[Conversation, StoredMessage | None], None]


@dataclass(frozen=True, slots=True)
class Said:
    message: StoredMessage
    undelivered: str | None = None  # why the channel could not deliver it; it is kept


class Speaker:
    def __init__(self, store: Store, channels: Mapping[str, Channel],
                 clock: Callable[[], float]) -> None:
        self._store = store
        self._channels = channels
        self._clock = clock
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _notify(self, conversation: Conversation, message: StoredMessage | None) -> None:
        for listener in self._listeners:
            try:
                listener(conversation, message)
            except Exception:
                log.exception("listener failed on conversation %s", conversation.id)

    async def record(self, conversation: Conversation, message: NewMessage
                     ) -> StoredMessage | None:
        """Store a message without delivering it (what the customer said); None for a
        retry or resend of a message already stored."""
        stored = await self._store.append_message(conversation, message)
        if stored is not None:
            self._notify(conversation, stored)
        return stored

    async def say(self, conversation: Conversation, reply: OutboundReply) -> Said:
        """Store a reply in the transcript, then hand it to the conversation's channel."""
        stored = await self._store.append_message(conversation, NewMessage(
            role=reply.role, kind=reply.kind, text=reply.text, ts=self._clock(),
            quick_replies=reply.quick_replies, meta=reply.meta))
        if stored is None:  # only inbound messages carry a dedupe key
            raise RuntimeError("the store dropped an outbound message")
        undelivered = await self.deliver(conversation, stored)
        self._notify(conversation, stored)
        return Said(stored, undelivered)

    async def deliver(self, conversation: Conversation, message: StoredMessage) -> str | None:
        """Hand a stored message to the channel; what the channel refused is recorded as an
        `undelivered` event with the reason (the message stays in the transcript)."""
        channel = self._channels.get(conversation.channel)
        if channel is None:
            log.error("no channel %r for conversation %s", conversation.channel, conversation.id)
            return f"no channel {conversation.channel!r}"
        try:
            await channel.send(conversation, message)
        except ChannelSendError as exc:
            log.warning("conversation %s: message %d not delivered: %s", conversation.id,
                        message.seq, exc)
            await self._store.record_event(ConversationEvent(
                conversation.id, self._clock(), "undelivered", None,
                {"seq": message.seq, "reason": str(exc)}))
            return str(exc)
        return None

    async def typing(self, conversation: Conversation) -> None:
        """Show the customer that a person is writing, where the channel can."""
        channel = self._channels.get(conversation.channel)
        if channel is not None:
            await channel.typing(conversation)

    async def send_state(self, conversation: Conversation) -> None:
        """Tell the customer's client (with the queue position) and the listeners."""
        channel = self._channels.get(conversation.channel)
        if channel is not None:
            position = None
            if conversation.state is ConversationState.QUEUED:
                position = await self._store.queue_position(conversation.id)
            await channel.send_state(conversation, position)
        self._notify(conversation, None)

    def channel(self, name: str) -> Channel | None:
        return self._channels.get(name)
