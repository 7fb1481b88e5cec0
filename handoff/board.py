"""What agents look at: the queue, their chats, a conversation in full, the hand-over list.

Read-only views over the store, shared by the console's API and the `kefu handover` and
`kefu transcript` commands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.channel import Channel, delivery_window, held_by_platform, holder_name
from bot.config import DeskConfig
from bot.messages import ConversationState, Role, StoredMessage
from bot.store import Agent, AgentRole, Conversation, Store, TicketStatus
from handoff.customers import CustomerBook
from handoff.desk import is_online, loads, reply_overdue
from handoff.transcript import (
    agent_json,
    conversation_json,
    event_json,
    message_json,
    ticket_json,
)

EARLIER_CONVERSATIONS = 10  # how many of a customer's earlier conversations an agent sees
PREVIEW_CHARS = 80


def _preview(messages: list[StoredMessage]) -> str:
    said = [m for m in messages if m.role is Role.CUSTOMER]
    return said[-1].text[:PREVIEW_CHARS] if said else ""


class Board:
    def __init__(self, store: Store, config: DeskConfig, clock: Callable[[], float],
                 customers: CustomerBook | None = None,
                 channels: Mapping[str, Channel] | None = None) -> None:
        self._store = store
        self._channels = channels or {}
        self._customers = customers
        self._config = config
        self._clock = clock

    async def _summary(self, conversation: Conversation, names: dict[str, str]
                       ) -> dict[str, Any]:
        now = self._clock()
        messages = await self._store.messages(conversation.id)
        unread = sum(1 for m in messages
                     if m.role is Role.CUSTOMER and m.seq > conversation.agent_read_seq)
        waiting = conversation.awaiting_agent_since
        return {
            **conversation_json(conversation),
            "agent_name": names.get(conversation.agent_id or "") or (
                holder_name(conversation.agent_id)
                if held_by_platform(conversation.agent_id) and conversation.agent_id else None),
            # a platform's own agent (a WeCom servicer) answers in the platform's app
            "held_by_platform": held_by_platform(conversation.agent_id),
            "preview": _preview(messages),
            "unread": unread,
            "last_seq": messages[-1].seq if messages else 0,
            "waited_seconds": round(now - conversation.queued_at, 1)
            if conversation.queued_at else None,
            "awaiting_seconds": round(now - waiting, 1) if waiting else None,
            "flagged": reply_overdue(conversation, now, self._config),
            # WeChat and WeCom: the messages left in the customer's window, and until when
            "delivery_window": window.as_json() if (window := await delivery_window(
                self._channels, conversation, now)) else None,
        }

    async def _names(self) -> dict[str, str]:
        return {a.id: a.name for a in await self._store.agents()}

    async def queue(self) -> list[dict[str, Any]]:
        names = await self._names()
        queued = await self._store.conversations_in_state(ConversationState.QUEUED)
        return [{**await self._summary(c, names), "position": i}
                for i, c in enumerate(queued, start=1)]

    async def chats(self, agent: Agent) -> list[dict[str, Any]]:
        """The chats the agent holds; a supervisor sees every chat in progress."""
        names = await self._names()
        held = await self._store.conversations_in_state(ConversationState.AGENT)
        return [await self._summary(c, names) for c in held
                if c.agent_id == agent.id or agent.role is AgentRole.SUPERVISOR]

    async def detail(self, conversation_id: str) -> dict[str, Any] | None:
        """Everything about a conversation: the full transcript with the bot's scores and
        reasons, what happened to it, and the customer's earlier conversations."""
        conversation = await self._store.get_conversation(conversation_id)
        if conversation is None:
            return None
        names = await self._names()
        earlier = []
        for other in await self._store.conversations_of(conversation.channel,
                                                       conversation.user_id):
            if other.created_at < conversation.created_at:
                earlier.append({**conversation_json(other), "messages": [
                    message_json(m) for m in await self._store.messages(other.id)]})
            if len(earlier) == EARLIER_CONVERSATIONS:
                break
        customer = await self._customers.of(conversation.channel, conversation.user_id) \
            if self._customers else None
        return {
            "customer_id": customer.id if customer else None,
            "conversation": await self._summary(conversation, names),
            "messages": [message_json(m) for m in await self._store.messages(conversation.id)],
            "events": [event_json(e) for e in await self._store.events(conversation.id)],
            "earlier": earlier,
        }

    async def tickets(self, status: TicketStatus | None = TicketStatus.OPEN
                      ) -> list[dict[str, Any]]:
        """Soonest due first, so the overdue ones lead."""
        now = self._clock()
        return [ticket_json(t, now) for t in await self._store.tickets(status)]

    async def agents(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [{**agent_json(ld.agent), "online": is_online(ld.agent, now, self._config),
                 "open_chats": ld.open_chats} for ld in await loads(self._store)]

    async def handover(self) -> dict[str, Any]:
        """What the next shift inherits: the queue, chats in progress, overdue tickets."""
        names = await self._names()
        in_progress = await self._store.conversations_in_state(ConversationState.AGENT)
        tickets = await self.tickets()
        return {
            "queued": await self.queue(),
            "in_progress": [await self._summary(c, names) for c in in_progress],
            "overdue_tickets": [t for t in tickets if t["overdue"]],
            "open_tickets": len(tickets),
        }
