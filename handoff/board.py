"""What agents look at: the queue, their chats, a conversation in full, the hand-over list.

Read-only views over the store, shared by the console's API and the `kefu handover` and
`kefu transcript` commands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from bot.channel import Channel, SeesPresence, delivery_window, held_by_platform, holder_name
from bot.config import DeskConfig
from bot.messages import ConversationState, Role, StoredMessage
from bot.store import Agent, AgentRole, Conversation, Customer, Store, TicketStatus
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


def _last_message(messages: list[StoredMessage]) -> dict[str, Any] | None:
    if not messages:
        return None
    last = messages[-1]
    return {"role": last.role.value, "kind": last.kind.value,
            "text": last.text[:PREVIEW_CHARS], "ts": last.ts}


class Tab(StrEnum):
    MINE = "mine"  # the chats I hold
    UNASSIGNED = "unassigned"  # the queue
    ALL = "all"  # every chat waiting or in progress: supervisors


@dataclass(frozen=True, slots=True)
class InboxFilter:
    channel: str | None = None
    state: ConversationState | None = None  # queued, agent, or closed (the last days)
    label: str | None = None
    waiting_seconds: float | None = None  # the customer has waited at least this long
    search: str = ""  # in the customer's name, contacts and id, and in what was said

    def keeps(self, summary: dict[str, Any], said: list[str]) -> bool:
        waited = summary["awaiting_seconds"] or (
            summary["waited_seconds"] if summary["state"] == "queued" else None)
        if self.channel and summary["channel"] != self.channel:
            return False
        if self.state and summary["state"] != self.state.value:
            return False
        if self.label and self.label not in summary["labels"]:
            return False
        if self.waiting_seconds is not None and (waited or 0) < self.waiting_seconds:
            return False
        if self.search:
            wanted = self.search.casefold()
            haystack = [summary["title"], summary["user_id"], *summary["contacts"], *said]
            return any(wanted in text.casefold() for text in haystack)
        return True


class Board:
    def __init__(self, store: Store, config: DeskConfig, clock: Callable[[], float],
                 customers: CustomerBook | None = None,
                 channels: Mapping[str, Channel] | None = None) -> None:
        self._store = store
        self._channels = channels or {}
        self._customers = customers
        self._config = config
        self._clock = clock

    async def _customer(self, conversation: Conversation) -> Customer | None:
        """The customer's record, if one was made (reading never makes one)."""
        identity = await self._store.identity(conversation.channel, conversation.user_id)
        if identity is None or self._customers is None:
            return None
        return await self._customers.get(identity.customer_id)

    async def _presence(self, conversation: Conversation) -> dict[str, Any]:
        """Whether the customer is there: online, left (and when), or unknown (None)."""
        channel = self._channels.get(conversation.channel)
        if conversation.state is ConversationState.CLOSED or not isinstance(
                channel, SeesPresence):
            return {"customer_online": None, "customer_left_at": None}
        if await channel.is_present(conversation.user_id):
            return {"customer_online": True, "customer_left_at": None}
        return {"customer_online": False,
                "customer_left_at": await channel.absent_since(conversation.user_id)}

    async def _summary(self, conversation: Conversation, names: dict[str, str],
                       labels: dict[str, tuple[str, ...]] | None = None,
                       messages: list[StoredMessage] | None = None) -> dict[str, Any]:
        now = self._clock()
        if messages is None:
            messages = await self._store.messages(conversation.id)
        if labels is None:
            labels = await self._store.labels([conversation.id])
        unread = sum(1 for m in messages
                     if m.role is Role.CUSTOMER and m.seq > conversation.agent_read_seq)
        waiting = conversation.awaiting_agent_since
        customer = await self._customer(conversation)
        contacts = [*customer.phones, *customer.emails] if customer else []
        return {
            **conversation_json(conversation),
            # the customer's name, else a way to reach them; the console falls back to the id
            "title": (customer.name if customer else "") or (contacts[0] if contacts else ""),
            "contacts": contacts,
            "labels": list(labels.get(conversation.id, ())),
            "last_message": _last_message(messages),
            **await self._presence(conversation),
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

    async def inbox(self, agent: Agent, tab: Tab, wanted: InboxFilter) -> dict[str, Any]:
        """One tab of the inbox, longest waiting first (the queue in queue order), and how
        many conversations each tab holds under the same filter."""
        console = self._config.console
        supervisor = agent.role is AgentRole.SUPERVISOR
        if tab is Tab.ALL and not supervisor:
            raise PermissionError("the All tab is for supervisors")
        conversations = [*await self._store.conversations_in_state(ConversationState.QUEUED),
                         *await self._store.conversations_in_state(ConversationState.AGENT)]
        if wanted.state is ConversationState.CLOSED:
            now = self._clock()
            conversations = [c for c in await self._store.conversations_created(
                now - console.closed_days * 86400, now) if c.state is ConversationState.CLOSED]
            conversations.reverse()  # newest first
        names = await self._names()
        labels = await self._store.labels([c.id for c in conversations])
        tabs: dict[Tab, list[dict[str, Any]]] = {t: [] for t in Tab}
        for conversation in conversations:
            messages = await self._store.messages(conversation.id)
            summary = await self._summary(conversation, names, labels, messages)
            if not wanted.keeps(summary, [m.text for m in messages]):
                continue
            tabs[Tab.ALL].append(summary)
            if conversation.agent_id == agent.id:
                tabs[Tab.MINE].append(summary)
            elif conversation.state is ConversationState.QUEUED:
                tabs[Tab.UNASSIGNED].append(summary)
        if wanted.state is not ConversationState.CLOSED:
            for listed in (tabs[Tab.MINE], tabs[Tab.ALL]):
                listed.sort(key=lambda s: -(s["awaiting_seconds"] or 0))
        return {"tab": tab.value,
                "labels": sorted({label for found in labels.values() for label in found}),
                "counts": {t.value: len(tabs[t]) for t in Tab if t is not Tab.ALL or supervisor},
                "conversations": tabs[tab][:console.inbox_limit]}

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
            "notes": [{**asdict(n), "agent_name": names.get(n.agent_id, "")}
                      for n in await self._store.notes(conversation.id)],
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
