"""Everything said in a conversation goes through here: stored first, then delivered.

The transcript is written before a message is handed to the channel, so nothing a customer
was told is missing from it. Listeners (the agent console) hear about every message and
state change, inbound and outbound, without polling the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from bot.channel import Channel
from bot.messages import ConversationState, OutboundReply, StoredMessage
from bot.store import Conversation, NewMessage, Store

log = logging.getLogger(__name__)

# Called with the conversation and the message just stored, or None for a state change.
Listener = Callable[[Conversation, StoredMessage | None], None]


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

    async def say(self, conversation: Conversation, reply: OutboundReply) -> StoredMessage:
        """Store a reply in the transcript, then hand it to the conversation's channel."""
        stored = await self._store.append_message(conversation, NewMessage(
            role=reply.role, kind=reply.kind, text=reply.text, ts=self._clock(),
            quick_replies=reply.quick_replies, meta=reply.meta))
        if stored is None:  # only inbound messages carry a dedupe key
            raise RuntimeError("the store dropped an outbound message")
        await self.deliver(conversation, stored)
        self._notify(conversation, stored)
        return stored

    async def deliver(self, conversation: Conversation, message: StoredMessage) -> None:
        channel = self._channels.get(conversation.channel)
        if channel is None:
            log.error("no channel %r for conversation %s", conversation.channel, conversation.id)
            return
        await channel.send(conversation, message)

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
