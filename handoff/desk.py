"""The service desk: queue, assignment, agents' actions and the rules a good desk keeps.

Every change to a conversation runs in its customer's lane (bot/lanes.py), whether it comes
from the router, an agent or a timer, so an agent's reply and the bot's holding message can
never overwrite each other's changes. Timers are one loop (`run`) that looks at the queued
and agent-held conversations every `desk.tick_seconds`:

- queued customers get their position, with an apology, every `queued_reminder_seconds`;
- a customer message with no agent reply for `agent_reply_seconds` gets a holding message
  and is recorded as a breach (the 1-minute rule);
- a web customer who left the queue is recorded as abandoned, with the time waited;
- when nobody is on duty any more, a waiting customer is offered to leave a message.

A channel whose platform has human agents of its own (WeCom's servicers, `platform_agents`)
gets its handoffs there instead of kefu's queue; kefu records what those agents do
(PlatformNews) in the same conversation, so the transcript, the 1-minute rule and the
reports cover them too. With a helpdesk bridge (`handoff.desk`, handoff/bridges/), the
helpdesk's agents are the desk: its hours decide who is on duty, kefu assigns nothing, and
their news comes the same way, with kefu delivering what they write.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ParamSpec, TypeVar

from bot.channel import (
    PlatformAgents,
    PlatformNews,
    WindowLimited,
    held_by_platform,
    holder_name,
    platform_holder,
)
from bot.cluster import Fanout, Leases
from bot.config import Config, DeskConfig
from bot.errors import ChannelSendError, KefuError
from bot.hours import BusinessHours, describe_moment
from bot.lanes import Lanes
from bot.logs import about
from bot.messages import ConversationState, Kind, OutboundReply, Role, StoredMessage
from bot.metrics import Metrics
from bot.rules import HandoffTrigger
from bot.speaker import Said, Speaker
from bot.store import (
    Agent,
    AgentRole,
    Conversation,
    ConversationEvent,
    NewMessage,
    Presence,
    Store,
    Ticket,
    TicketStatus,
)
from bot.tasks import BackgroundTasks
from bot.texts import Texts
from handoff.bridges import DeskBridge
from handoff.cases import CaseBook
from handoff.offline import due_time, extract_contact, is_skip
from handoff.replies import vague_phrases
from handoff.webhooks import Webhooks

log = logging.getLogger(__name__)

# The desk's events that other systems hear of (handoff/webhooks.py), by webhook type.
PUBLISHED = {"queued": "conversation.handed_off", "offline_offered": "conversation.handed_off",
             "assigned": "conversation.assigned", "closed": "conversation.closed",
             "abandoned": "conversation.closed", "ticket_created": "ticket.created"}
T = TypeVar("T")
P = ParamSpec("P")

DESK_NEWS = "desk"  # the fan-out topic of "tickets" and "agents" changes
QUEUED, AGENT, BOT, CLOSED = (ConversationState.QUEUED, ConversationState.AGENT,
                              ConversationState.BOT, ConversationState.CLOSED)


class DeskError(KefuError):
    """An agent action that cannot be done; `code` is for programs, the message for people."""

    def __init__(self, code: str, message: str, **detail: object) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Load:
    agent: Agent
    open_chats: int


def is_online(agent: Agent, now: float, config: DeskConfig) -> bool:
    """Online and heard from lately: a closed laptop stops getting chats."""
    return (agent.presence is Presence.ONLINE and agent.last_seen_at is not None
            and now - agent.last_seen_at <= config.presence_timeout_seconds)


def reply_overdue(conversation: Conversation, now: float, config: DeskConfig) -> bool:
    """The customer has waited `agent_reply_seconds` or more for an agent's reply: the
    console flags the chat until the agent answers."""
    since = conversation.awaiting_agent_since
    return since is not None and now - since >= config.agent_reply_seconds


def holding_due(conversation: Conversation, now: float, config: DeskConfig) -> bool:
    """The 1-minute rule: overdue, and not yet told to hold on during this wait."""
    return reply_overdue(conversation, now, config) and (
        conversation.last_holding_at is None
        or conversation.last_holding_at < (conversation.awaiting_agent_since or 0.0))


async def loads(store: Store) -> list[Load]:
    """Every agent with the number of chats they hold."""
    held = Counter(c.agent_id for c in await store.conversations_in_state(AGENT))
    return [Load(a, held[a.id]) for a in await store.agents()]


class Desk:
    def __init__(self, config: Config, store: Store, lanes: Lanes, speaker: Speaker,
                 leases: Leases, fanout: Fanout, metrics: Metrics, webhooks: Webhooks,
                 cases: CaseBook, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._webhooks = webhooks
        self._cases = cases
        self._metrics = metrics
        self._desk = config.desk
        self._store = store
        self._lanes = lanes
        self._speaker = speaker
        self._clock = clock
        self._hours = BusinessHours(config.business)
        self.texts = Texts(config)
        self._dispatching = asyncio.Lock()
        self._background = BackgroundTasks("desk")
        self._leases = leases
        self._fanout = fanout
        self.bridge: DeskBridge | None = None  # a helpdesk's agents answer instead (bot/app.py)

    def _changed(self, what: str) -> None:
        """Tell every process's consoles that "tickets" or "agents" changed."""
        self._background.spawn(self._fanout.publish(DESK_NEWS, {"what": what}))

    async def _event(self, conversation: Conversation, type_: str, agent_id: str | None = None,
                     **detail: object) -> None:
        published = PUBLISHED.get(type_)
        deliveries = self._webhooks.prepare(published, self._webhooks.about(
            conversation, event=type_, agent_id=agent_id, **detail)) if published else ()
        await self._store.record_event(ConversationEvent(
            conversation.id, self._clock(), type_, agent_id, dict(detail)), deliveries)
        self._webhooks.queued(deliveries)
        log.info("conversation %s: %s", conversation.id, type_, extra={
            "conversation_id": conversation.id, "event": type_,
            **({"agent_id": agent_id} if agent_id else {}), **detail})
        if type_ in ("queued", "offline_offered") and detail.get("reason") == "complaint":
            said = [m.text for m in await self._store.messages(conversation.id)
                    if m.role is Role.CUSTOMER and m.text]
            await self._cases.open(conversation, said[-1] if said else "", by="kefu")

    def _text(self, conversation: Conversation, key: str, **values: object) -> str:
        return self.texts.get(conversation.lang, key, **values)

    # who is on duty

    async def _nobody_on_duty(self, now: float) -> bool:
        if self.bridge is not None:
            return not await self.bridge.on_duty(now)
        if not self._hours.is_open(self._hours.local(now)):
            return True
        return not any(is_online(a, now, self._desk) for a in await self._store.agents())

    # from the router (in the conversation's lane)

    def _platform_agents(self, conversation: Conversation) -> PlatformAgents | None:
        channel = self._speaker.channel(conversation.channel)
        return getattr(channel, "platform_agents", None)

    async def hand_off(self, conversation: Conversation, trigger: HandoffTrigger,
                       text_key: str | None, reason: str | None = None) -> Conversation:
        now = self._clock()
        reason = reason or trigger.value
        platform = self._platform_agents(conversation)
        if platform is not None:
            return await self._hand_to_platform(conversation, platform, trigger, text_key,
                                                reason)
        if await self._nobody_on_duty(now):
            return await self._offer_offline_message(conversation, reason)
        return await self._queue(conversation, trigger, text_key, reason)

    async def _queue(self, conversation: Conversation, trigger: HandoffTrigger,
                     text_key: str | None, reason: str) -> Conversation:
        now = self._clock()
        conversation = replace(
            conversation, state=QUEUED, queued_at=now, handoff_reason=reason,
            consecutive_misses=0, priority=self._desk.priorities.get(trigger.value, 0),
        )
        await self._store.save_conversation(conversation)
        await self._event(conversation, "queued", reason=reason, priority=conversation.priority)
        self._metrics.handoffs.labels(reason).inc()
        await self._speaker.send_state(conversation)  # before the message: clients show both
        if text_key:
            await self._speaker.say(conversation, OutboundReply(
                self._text(conversation, text_key), Kind.HANDOFF, meta={"reason": reason}))
        self._background.spawn(self.dispatch())
        return conversation

    async def _hand_to_platform(self, conversation: Conversation, platform: PlatformAgents,
                                trigger: HandoffTrigger, text_key: str | None, reason: str
                                ) -> Conversation:
        """To the platform's own agents; the handoff message goes first, while kefu may
        still write to the customer. If the platform refuses, kefu's own queue takes it."""
        now = self._clock()
        if not self._hours.is_open(self._hours.local(now)) \
                or not await platform.on_duty(conversation):
            return await self._offer_offline_message(conversation, reason)
        if text_key:
            await self._speaker.say(conversation, OutboundReply(
                self._text(conversation, text_key), Kind.HANDOFF, meta={"reason": reason}))
        try:
            holder = await platform.hand_over(conversation)
        except ChannelSendError as exc:
            log.warning("conversation %s: %s refused the handoff (%s); kefu's agents take it",
                        conversation.id, conversation.channel, exc)
            return await self._queue(conversation, trigger, None, reason)
        conversation = replace(
            conversation, state=AGENT, agent_id=holder, queued_at=now, assigned_at=None,
            handoff_reason=reason, consecutive_misses=0, awaiting_agent_since=now,
            last_holding_at=None, priority=self._desk.priorities.get(trigger.value, 0))
        await self._store.save_conversation(conversation)
        await self._event(conversation, "queued", reason=reason, priority=conversation.priority,
                          to=holder)
        self._metrics.handoffs.labels(reason).inc()
        await self._speaker.send_state(conversation)
        return conversation

    async def platform_news(self, news: PlatformNews) -> None:
        """A platform's own agent took, passed on or ended a session, or wrote to the
        customer in the platform's app: recorded in the customer's conversation."""
        async def job() -> None:
            conversation = await self._store.latest_conversation(news.channel, news.user_id)
            if conversation is None:
                log.info("%s: %s about %s, who has no conversation in kefu", news.channel,
                         news.what, news.user_id)
                return
            with about(conversation.id):
                await self._platform_did(conversation, news)

        await self._lanes.run((news.channel, news.user_id), job)

    async def _platform_did(self, conversation: Conversation, news: PlatformNews) -> None:
        holder = platform_holder(news.desk or news.channel, news.agent)
        now = self._clock()
        held = conversation.state is AGENT and held_by_platform(conversation.agent_id)
        if news.what == "ended":
            if held or (news.desk and conversation.state is QUEUED):
                await self._end(conversation, holder, rate=news.can_tell)
            return
        if news.what == "wrote":
            taking = conversation.state is not AGENT or conversation.agent_id != holder
            if news.desk and taking:  # kefu delivers: "Bob has joined" comes first
                conversation, taking = await self._platform_took(conversation, holder,
                                                                 news), False
            stored = await self._speaker.record(conversation, NewMessage(
                role=Role.AGENT, kind=Kind.TEXT, text=news.text, ts=news.ts,
                platform_msg_id=news.platform_msg_id,
                meta={"via": news.desk or news.channel, "agent_id": holder,
                      "agent_name": news.agent}))
            if stored is None:
                return  # read twice
            if news.desk:
                await self._speaker.deliver(conversation, stored)
            else:
                await self._store.settle(conversation.id, stored.seq)  # the platform delivered
            if taking:
                conversation = await self._platform_took(conversation, holder, news)
            await self._answered(conversation, holder, stored)
            return
        if held and conversation.agent_id == holder:
            return  # read twice (a page of events read again): it is recorded already
        if news.what == "transferred" and held:
            moved = replace(conversation, agent_id=holder, assigned_at=now,
                            awaiting_agent_since=conversation.awaiting_agent_since or now)
            await self._store.save_conversation(moved)
            await self._event(moved, "transferred", conversation.agent_id, to=holder,
                              from_agent=conversation.agent_id)
            await self._speaker.send_state(moved)
            return
        await self._platform_took(conversation, holder, news)

    async def _platform_took(self, conversation: Conversation, holder: str, news: PlatformNews
                             ) -> Conversation:
        """A platform agent holds the session now: from its pool, or taken directly (the
        bot falls silent, as the platform would not let it write anyway)."""
        now = self._clock()
        waited = now - conversation.queued_at if conversation.queued_at else 0.0
        conversation = replace(conversation, state=AGENT, agent_id=holder, assigned_at=now,
                               awaiting_agent_since=conversation.awaiting_agent_since or now,
                               offline_step=None, closed_at=None, close_reason=None)
        await self._store.save_conversation(conversation)
        await self._event(conversation, "assigned", holder, waited_seconds=round(waited, 3))
        await self._speaker.send_state(conversation)
        if news.can_tell:
            await self._speaker.say(conversation, OutboundReply(
                self._text(conversation, "agent_joined", agent=news.agent), Kind.NOTICE,
                role=Role.SYSTEM, meta={"agent_id": holder, "agent_name": news.agent}))
        return conversation

    async def customer_wrote(self, conversation: Conversation, message: StoredMessage
                             ) -> Conversation:
        if conversation.offline_step:
            return await self._take_offline_message(conversation, message)
        if conversation.state is QUEUED:
            await self._speaker.send_state(conversation)
            return await self._queue_update(conversation, conversation.last_holding_at or 0,
                                            timed=False)
        if conversation.state is AGENT and conversation.awaiting_agent_since is None:
            return replace(conversation, awaiting_agent_since=message.ts)
        return conversation

    # offline messages (留言)

    def _due(self, now: float) -> datetime:
        return due_time(self._hours.local(now), self._hours, self._desk.tickets)

    def _describe(self, conversation: Conversation, moment: datetime) -> str:
        return describe_moment(moment, self._hours.local(self._clock()), conversation.lang)

    async def _offer_offline_message(self, conversation: Conversation, reason: str
                                     ) -> Conversation:
        now = self._clock()
        moment = self._hours.local(now)
        if self._hours.is_open(moment):
            why = self._text(conversation, "offline_nobody")
        else:
            why = self._text(conversation, "offline_closed",
                             back_at=self._hours.describe_opening(moment, conversation.lang))
        conversation = replace(conversation, state=BOT, offline_step="question",
                               handoff_reason=reason, consecutive_misses=0, queued_at=None)
        await self._store.save_conversation(conversation)
        await self._event(conversation, "offline_offered", reason=reason)
        self._metrics.handoffs.labels(reason).inc()
        await self._speaker.send_state(conversation)
        await self._speaker.say(conversation, OutboundReply(
            self._text(conversation, "offline_prompt", why=why,
                       due=self._describe(conversation, self._due(now))),
            Kind.OFFLINE, meta={"reason": reason}))
        return conversation

    async def _take_offline_message(self, conversation: Conversation, message: StoredMessage
                                    ) -> Conversation:
        contact = extract_contact(message.text)
        if conversation.offline_step == "question" and is_skip(message.text):
            await self._speaker.say(conversation, OutboundReply(
                self._text(conversation, "offline_cancelled"), Kind.OFFLINE))
            return replace(conversation, offline_step=None)
        if conversation.offline_step == "question" or conversation.ticket_id is None:
            now = self._clock()
            ticket = Ticket(
                id="T" + secrets.token_hex(4).upper(), conversation_id=conversation.id,
                channel=conversation.channel, user_id=conversation.user_id,
                lang=conversation.lang, question=message.text, contact=contact or "",
                created_at=now, due_at=self._due(now).timestamp())
            await self._event(conversation, "ticket_created", ticket=ticket.id,
                              due_at=ticket.due_at)
            conversation = replace(conversation, ticket_id=ticket.id)
            if contact is None:
                await self._store.save_ticket(ticket)
                self._changed("tickets")
                await self._speaker.say(conversation, OutboundReply(
                    self._text(conversation, "offline_ask_contact"), Kind.OFFLINE,
                    meta={"ticket": ticket.id}))
                return replace(conversation, offline_step="contact")
        else:
            found = await self._store.get_ticket(conversation.ticket_id)
            if found is None:
                raise RuntimeError(f"ticket {conversation.ticket_id} is missing")
            ticket = found
            if contact is not None:
                ticket = replace(ticket, contact=contact)
            elif not is_skip(message.text):
                ticket = replace(ticket, question=f"{ticket.question}\n{message.text}")
        await self._store.save_ticket(ticket)
        self._changed("tickets")
        how = (self._text(conversation, "offline_by_contact", contact=ticket.contact)
               if ticket.contact else self._text(conversation, "offline_here"))
        due = self._hours.local(ticket.due_at)
        await self._speaker.say(conversation, OutboundReply(
            self._text(conversation, "offline_received", ticket=ticket.id,
                       due=self._describe(conversation, due), how=how),
            Kind.OFFLINE, meta={"ticket": ticket.id}))
        return replace(conversation, offline_step=None)

    async def resolve_ticket(self, agent: Agent, ticket_id: str, note: str) -> Ticket:
        ticket = await self._store.get_ticket(ticket_id)
        if ticket is None:
            raise DeskError("not_found", f"no ticket {ticket_id}")
        if ticket.status is TicketStatus.DONE:
            raise DeskError("already_done", f"ticket {ticket_id} is already done")
        now = self._clock()
        ticket = replace(ticket, status=TicketStatus.DONE, done_at=now, done_by=agent.id,
                         note=note.strip())
        await self._store.save_ticket(ticket)
        await self._store.record_event(ConversationEvent(
            ticket.conversation_id, now, "ticket_done", agent.id,
            {"ticket": ticket.id, "late_seconds": max(0.0, now - ticket.due_at)}))
        self._changed("tickets")
        return ticket

    # the queue

    async def dispatch(self) -> None:
        """Give queued chats, in queue order, to the online agent with the fewest chats
        under their limit (the one who has waited longest for a chat breaks a tie)."""
        if not self._desk.auto_assign or self.bridge is not None:
            return  # with a bridge, the helpdesk assigns
        async with self._dispatching:
            now = self._clock()
            queue = await self._store.conversations_in_state(QUEUED)
            if not queue:
                return
            load_of = {ld.agent.id: ld for ld in await loads(self._store)
                       if is_online(ld.agent, now, self._desk)}
            assigned = False
            for conversation in queue:
                free = [ld for ld in load_of.values() if ld.open_chats < ld.agent.max_chats]
                if not free:
                    break
                chosen = min(free, key=lambda ld: (ld.open_chats, ld.agent.name))
                if await self._in_lane(conversation, self._assign, conversation.id, chosen.agent):
                    assigned = True
                    load_of[chosen.agent.id] = Load(chosen.agent, chosen.open_chats + 1)
            if assigned:
                await self._tell_positions()

    async def _tell_positions(self) -> None:
        """The queue moved: every waiting customer sees their new place."""
        for conversation in await self._store.conversations_in_state(QUEUED):
            await self._speaker.send_state(conversation)

    async def _in_lane(self, conversation: Conversation, action: Callable[P, Awaitable[T]],
                       *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `action(*args)` in the lane of the conversation's customer."""
        async def job() -> T:
            with about(conversation.id):
                return await action(*args, **kwargs)

        return await self._lanes.run((conversation.channel, conversation.user_id), job)

    async def _current(self, conversation_id: str) -> Conversation:
        conversation = await self._store.get_conversation(conversation_id)
        if conversation is None:
            raise DeskError("not_found", f"no conversation {conversation_id}")
        return conversation

    async def _assign(self, conversation_id: str, agent: Agent) -> bool:
        """In the lane: give a queued (or bot) conversation to `agent`."""
        conversation = await self._current(conversation_id)
        if conversation.state not in (QUEUED, BOT):
            return False
        now = self._clock()
        waited = now - conversation.queued_at if conversation.queued_at else 0.0
        conversation = replace(conversation, state=AGENT, agent_id=agent.id, assigned_at=now,
                               awaiting_agent_since=now, agent_read_seq=0, offline_step=None,
                               last_holding_at=None)
        await self._store.save_conversation(conversation)
        await self._event(conversation, "assigned", agent.id, waited_seconds=round(waited, 3))
        await self._speaker.send_state(conversation)
        await self._speaker.say(conversation, OutboundReply(
            self._text(conversation, "agent_joined", agent=agent.name), Kind.NOTICE,
            role=Role.SYSTEM, meta={"agent_id": agent.id, "agent_name": agent.name}))
        return True

    def _queue_update_due(self, conversation: Conversation, since: float,
                          timed: bool = True) -> bool:
        """Whether a queue update is due; a timed one (not an answer to the customer) is
        rarer where each costs one of a few messages."""
        config = self._config.conversation
        interval = config.queued_reminder_seconds_with_quota if timed and isinstance(
            self._speaker.channel(conversation.channel), WindowLimited) \
            else config.queued_reminder_seconds
        return self._clock() - since >= interval

    @staticmethod
    def _last_told(conversation: Conversation) -> float:
        return conversation.last_holding_at or conversation.queued_at or 0.0

    async def _queue_update(self, conversation: Conversation, since: float,
                            timed: bool = True) -> Conversation:
        """In the lane: tell a queued customer their position, with an apology for the wait,
        unless they were told less than `queued_reminder_seconds` after `since`."""
        now = self._clock()
        if not self._queue_update_due(conversation, since, timed):
            return conversation
        position = await self._store.queue_position(conversation.id) or 1
        text = self._text(conversation, "holding", ahead=position - 1) if position > 1 \
            else self._text(conversation, "holding_next")
        per_customer = await self._recent_pace(now)
        if per_customer is not None:
            minutes = max(1, math.ceil(position * per_customer / 60))
            text += self._text(conversation, "wait_estimate", minutes=minutes)
        await self._speaker.say(conversation, OutboundReply(
            text, Kind.HOLDING, meta={"position": position, "seconds_per_customer": per_customer}))
        return replace(conversation, last_holding_at=now)

    async def _recent_pace(self, now: float) -> float | None:
        """Seconds between customers taken from the queue lately (`desk.pace_window_seconds`),
        when enough were taken to say (`desk.pace_min_assignments`); else None."""
        window = self._desk.pace_window_seconds
        taken = [e.ts for e in await self._store.events(since=now - window)
                 if e.type == "assigned"]
        if len(taken) < self._desk.pace_min_assignments:
            return None
        return (now - min(taken)) / len(taken)

    # agents' actions (each checks, then changes the conversation in its lane)

    async def take(self, agent: Agent, conversation_id: str) -> Conversation:
        conversation = await self._current(conversation_id)
        if conversation.state not in (QUEUED, BOT):
            raise DeskError("not_available", "this chat is not waiting for a person")
        held = sum(1 for c in await self._store.conversations_in_state(AGENT)
                   if c.agent_id == agent.id)
        if held >= agent.max_chats:
            raise DeskError("at_limit", f"you already hold {held} chats (your limit)")
        if not await self._in_lane(conversation, self._assign, conversation_id, agent):
            raise DeskError("not_available", "someone else took this chat")
        await self._tell_positions()
        return await self._current(conversation_id)

    def _check_holder(self, agent: Agent, conversation: Conversation, ending: bool = False
                      ) -> None:
        """`agent` may act on the chat; a supervisor may also end (`ending`) a session a
        platform's own agent holds."""
        if conversation.state is not AGENT:
            raise DeskError("not_held", "this chat is not held by an agent")
        if held_by_platform(conversation.agent_id):
            if ending and agent.role is AgentRole.SUPERVISOR:
                return
            raise DeskError("platform_agent", f"{holder_name(conversation.agent_id or '')} "
                            "holds this chat and answers in the platform's app; a supervisor "
                            "may end it or hand it back to the bot")
        if conversation.agent_id != agent.id and agent.role is not AgentRole.SUPERVISOR:
            raise DeskError("not_yours", "this chat is held by another agent")

    async def _held(self, agent: Agent, conversation_id: str, ending: bool = False
                    ) -> Conversation:
        conversation = await self._current(conversation_id)
        self._check_holder(agent, conversation, ending)
        return conversation

    def _bridged(self, agent_id: str | None) -> bool:
        """Held by an agent of the helpdesk kefu bridges to."""
        return self.bridge is not None and (agent_id or "").startswith(self.bridge.name + ":")

    def _may_write(self, agent_id: str | None) -> bool:
        """kefu may write to the customer while this holder has the chat (WeCom's servicers
        forbid it; a bridged helpdesk's agents reply through kefu)."""
        return not held_by_platform(agent_id) or self._bridged(agent_id)

    async def _end_on_platform(self, conversation: Conversation) -> None:
        """A session a platform's own agent holds is ended there first, so that the bot
        (or nobody) holds it when kefu does."""
        platform: PlatformAgents | DeskBridge | None = self._platform_agents(conversation)
        if self._bridged(conversation.agent_id):
            platform = self.bridge
        if conversation.state is not AGENT or not held_by_platform(conversation.agent_id) \
                or platform is None:
            return
        try:
            await platform.end(conversation)
        except ChannelSendError as exc:
            raise DeskError("platform_refused", f"{conversation.channel} refused to end the "
                            f"session: {exc}") from None

    async def typing(self, agent: Agent, conversation_id: str) -> None:
        """The agent is writing: the customer sees it where the channel can show it."""
        await self._speaker.typing(await self._held(agent, conversation_id))

    async def reply(self, agent: Agent, conversation_id: str, text: str,
                    confirmed: bool = False, via: str = "console") -> Said:
        """Send the agent's reply; a vague or curt one is refused unless `confirmed`.
        `via` names where the agent wrote it (the console, the Telegram bridge)."""
        text = text.strip()
        if not text:
            raise DeskError("empty_text", "the reply is empty")
        if len(text) > self._desk.max_reply_chars:
            raise DeskError("text_too_long",
                            f"replies are limited to {self._desk.max_reply_chars} characters")
        vague = vague_phrases(text, self._desk)
        if vague and not confirmed:
            raise DeskError("vague_reply", "this reply may read as vague or curt: "
                            + ", ".join(vague), phrases=vague)
        conversation = await self._held(agent, conversation_id)
        reply = OutboundReply(text, Kind.TEXT, role=Role.AGENT, meta={"via": via})
        return await self._in_lane(conversation, self._send_reply, conversation_id, agent, reply)

    async def hold(self, agent: Agent, conversation_id: str) -> Said:
        """One click: 'I'm checking, one moment' from the agent; counts as a reply."""
        conversation = await self._held(agent, conversation_id)
        reply = OutboundReply(self._text(conversation, "agent_holding"), Kind.HOLDING,
                              role=Role.AGENT)
        return await self._in_lane(conversation, self._send_reply, conversation_id, agent, reply)

    async def _send_reply(self, conversation_id: str, agent: Agent, reply: OutboundReply
                          ) -> Said:
        conversation = await self._current(conversation_id)
        self._check_holder(agent, conversation)  # again: it may have changed while queued
        reply = replace(reply, meta={**reply.meta, "agent_id": agent.id,
                                     "agent_name": agent.name})
        said = await self._speaker.say(conversation, reply)
        await self._answered(conversation, agent.id, said.message)
        return said

    async def _answered(self, conversation: Conversation, agent_id: str,
                        message: StoredMessage) -> None:
        """In the lane: an agent (kefu's or a platform's) wrote `message`. The first
        response is timed once, and the customer no longer waits (the 1-minute rule)."""
        events = await self._store.events(conversation.id)
        if not any(e.type == "first_response" for e in events):
            await self._event(conversation, "first_response", agent_id, seconds=round(
                message.ts - (conversation.assigned_at or message.ts), 3))
        await self._store.save_conversation(replace(
            conversation, awaiting_agent_since=None, agent_read_seq=message.seq,
            last_activity_at=message.ts))

    async def mark_read(self, agent: Agent, conversation_id: str, seq: int) -> None:
        conversation = await self._held(agent, conversation_id)

        async def mark() -> None:
            current = await self._current(conversation_id)
            if seq > current.agent_read_seq:
                await self._store.save_conversation(replace(current, agent_read_seq=seq))

        await self._in_lane(conversation, mark)

    async def transfer(self, agent: Agent, conversation_id: str, to_name: str) -> Conversation:
        target = await self._store.agent_by_name(to_name)
        if target is None:
            raise DeskError("not_found", f"no agent named {to_name!r}")
        conversation = await self._held(agent, conversation_id)
        if target.id == conversation.agent_id:
            raise DeskError("same_agent", f"{to_name} already holds this chat")
        if not is_online(target, self._clock(), self._desk):
            raise DeskError("not_online", f"{to_name} is not online")
        load = next(ld for ld in await loads(self._store) if ld.agent.id == target.id)
        if load.open_chats >= target.max_chats:
            raise DeskError("at_limit", f"{to_name} already holds {load.open_chats} chats")

        async def move() -> Conversation:
            current = await self._current(conversation_id)
            self._check_holder(agent, current)
            now = self._clock()
            moved = replace(current, agent_id=target.id, assigned_at=now, agent_read_seq=0,
                            awaiting_agent_since=current.awaiting_agent_since or now)
            await self._store.save_conversation(moved)
            await self._event(moved, "transferred", agent.id, to=target.id,
                              from_agent=current.agent_id)
            await self._speaker.say(moved, OutboundReply(
                self._text(moved, "transferred", agent=target.name), Kind.NOTICE,
                role=Role.SYSTEM, meta={"agent_id": target.id, "agent_name": target.name}))
            return moved

        return await self._in_lane(conversation, move)

    async def requeue_chats_of(self, agent_id: str, why: str) -> int:
        """The open chats of an agent who was disabled or removed go back to the queue,
        ahead of later arrivals (they keep their place), for the next free agent; how many.
        `why` is "disabled" or "removed", for the transcript's event line."""
        return await self._requeue_all(
            [c for c in await self._store.conversations_in_state(AGENT)
             if c.agent_id == agent_id], {agent_id: why})

    async def _requeue_all(self, held: list[Conversation], why: dict[str, str]) -> int:
        """`held` (chats in AGENT) whose agent is in `why` back to the queue; then the
        queue hears its positions and is dispatched, once."""
        moved = 0
        for conversation in held:
            agent_id = conversation.agent_id
            if agent_id in why:
                moved += await self._in_lane(conversation, self._requeue, conversation.id,
                                             agent_id, why[agent_id])
        if moved:
            await self._tell_positions()
            self._background.spawn(self.dispatch())
        return moved

    async def _requeue(self, conversation_id: str, agent_id: str, why: str) -> bool:
        """In the lane: the chat, still held by `agent_id`, is queued again."""
        current = await self._current(conversation_id)
        if current.state is not AGENT or current.agent_id != agent_id:
            return False
        now = self._clock()
        queued = replace(current, state=QUEUED, agent_id=None, assigned_at=None,
                         queued_at=current.queued_at or now, agent_read_seq=0,
                         awaiting_agent_since=None, last_holding_at=None)
        await self._store.save_conversation(queued)
        await self._event(queued, "requeued", agent_id, from_agent=agent_id, why=why)
        await self._speaker.send_state(queued)
        await self._speaker.say(queued, OutboundReply(
            self._text(queued, "requeued"), Kind.NOTICE, role=Role.SYSTEM))
        log.warning("conversation %s: back in the queue, its agent %s was %s",
                    conversation_id, agent_id, why)
        return True

    async def _release_departed(self, held: list[Conversation]) -> set[str]:
        """Of `held` (chats in AGENT), those of an account that is gone (`kefu agent
        remove`, another process) or disabled go back to the queue: nobody would ever
        answer them. Their ids."""
        holders = {c.agent_id for c in held if c.agent_id and not held_by_platform(c.agent_id)}
        if not holders:
            return set()
        accounts = {a.id: a for a in await self._store.agents()}
        why = {agent_id: "removed" if accounts.get(agent_id) is None else "disabled"
               for agent_id in holders
               if accounts.get(agent_id) is None or accounts[agent_id].disabled}
        if not why:
            return set()
        await self._requeue_all(held, why)
        return {c.id for c in held if c.agent_id in why}

    async def hand_back(self, agent: Agent, conversation_id: str) -> Conversation:
        conversation = await self._held(agent, conversation_id, ending=True)

        async def back() -> Conversation:
            current = await self._current(conversation_id)
            self._check_holder(agent, current, ending=True)
            await self._end_on_platform(current)
            bot = replace(current, state=BOT, agent_id=None, awaiting_agent_since=None,
                          consecutive_misses=0, queued_at=None)
            await self._store.save_conversation(bot)
            await self._event(bot, "handed_back", agent.id)
            await self._speaker.send_state(bot)
            await self._speaker.say(bot, OutboundReply(
                self._text(bot, "handed_back"), Kind.NOTICE, role=Role.SYSTEM))
            return bot

        return await self._in_lane(conversation, back)

    async def close(self, agent: Agent, conversation_id: str) -> Conversation:
        """End the chat and ask the customer for a 1-5 rating."""
        conversation = await self._current(conversation_id)
        if conversation.state is AGENT:
            self._check_holder(agent, conversation, ending=True)
        elif agent.role is not AgentRole.SUPERVISOR:
            raise DeskError("not_held", "only a supervisor may close a chat no agent holds")

        async def end() -> Conversation:
            current = await self._current(conversation_id)
            if current.state is CLOSED:
                raise DeskError("closed", "this chat is already closed")
            await self._end_on_platform(current)
            return await self._end(current, agent.id)

        closed = await self._in_lane(conversation, end)
        await self._tell_positions()
        self._background.spawn(self.dispatch())  # a slot is free
        return closed

    async def _end(self, conversation: Conversation, by: str, rate: bool = True,
                   reason: str = "resolved") -> Conversation:
        """In the lane: close the chat, asking the customer for a 1-5 rating when `rate`."""
        now = self._clock()
        closed = replace(conversation, state=CLOSED, closed_at=now, close_reason=reason,
                         rating_requested_at=now if rate else None, awaiting_agent_since=None)
        await self._store.save_conversation(closed)
        await self._event(closed, "closed", by, reason=reason)
        await self._speaker.send_state(closed)
        if rate:
            await self._speaker.say(closed, OutboundReply(
                self._text(closed, "rating_request"), Kind.RATING_REQUEST, role=Role.SYSTEM,
                quick_replies=tuple(self._text(closed, "rating_options").split("|"))))
        return closed

    async def set_presence(self, agent: Agent, presence: Presence) -> None:
        await self._store.update_agent(agent.id, presence=presence, last_seen_at=self._clock())
        self._changed("agents")
        if presence is Presence.ONLINE:
            self._background.spawn(self.dispatch())

    # timers

    async def run(self) -> None:
        """Check the timers every `tick_seconds`, until cancelled; with several processes,
        only the one holding the timers' lease does, so each timer fires once."""
        while True:
            await asyncio.sleep(self._desk.tick_seconds)
            try:
                if await self._leases.try_lead("timers"):
                    await self.tick()
            except Exception:
                log.exception("desk timers failed; trying again next tick")

    async def tick(self) -> None:
        now = self._clock()
        queued = await self._store.conversations_in_state(QUEUED)
        # with a bridge, the queued are in the helpdesk's inbox, waiting for its agents
        nobody = bool(queued) and self.bridge is None and await self._nobody_on_duty(now)
        left = False
        for conversation in queued:
            channel = self._speaker.channel(conversation.channel)
            gone = await channel.absent_since(conversation.user_id) if channel else None
            cid = conversation.id
            if gone is not None and now - gone >= self._desk.abandon_after_seconds:
                left = await self._in_lane(conversation, self._abandon, cid) or left
            elif nobody:
                await self._in_lane(conversation, self._to_offline, cid)
            elif self._queue_update_due(conversation, self._last_told(conversation)):
                await self._in_lane(conversation, self._timed_queue_update, cid)
        if left:
            await self._tell_positions()
        held = await self._store.conversations_in_state(AGENT)
        released = await self._release_departed(held)
        closed_any = False
        for conversation in held:
            if conversation.id in released:
                continue
            if holding_due(conversation, now, self._desk):
                await self._in_lane(conversation, self._hold_for_agent, conversation.id)
            elif await self._left_long_ago(conversation, now):
                closed_any = await self._in_lane(conversation, self._close_left,
                                                 conversation.id) or closed_any
        if closed_any:
            self._background.spawn(self.dispatch())  # their agents have room again
        if queued and not nobody:
            await self.dispatch()
        await self._tell_overdue_tickets(now)

    async def _tell_overdue_tickets(self, now: float) -> None:
        """Once per offline message past its due time: `ticket.overdue` for other systems."""
        for ticket in await self._store.tickets(TicketStatus.OPEN):
            if ticket.due_at >= now:
                break  # soonest due first: the rest are not due either
            if ticket.overdue_told:
                continue
            conversation = await self._store.get_conversation(ticket.conversation_id)
            data = self._webhooks.about(conversation) if conversation else {}
            deliveries = self._webhooks.prepare("ticket.overdue", {
                **data, "ticket": ticket.id, "due_at": ticket.due_at, "contact": ticket.contact,
                "question": ticket.question})
            await self._store.save_ticket(replace(ticket, overdue_told=True), deliveries)
            self._webhooks.queued(deliveries)

    async def _timed_queue_update(self, conversation_id: str) -> None:
        conversation = await self._current(conversation_id)
        if conversation.state is QUEUED:
            updated = await self._queue_update(conversation, self._last_told(conversation))
            if updated is not conversation:
                await self._store.save_conversation(updated)

    async def _hold_for_agent(self, conversation_id: str) -> None:
        """The 1-minute rule: the customer hears from us, and the breach is recorded."""
        conversation = await self._current(conversation_id)
        now = self._clock()
        if conversation.state is not AGENT or not holding_due(conversation, now, self._desk):
            return
        waited = now - (conversation.awaiting_agent_since or now)
        conversation = replace(conversation, last_holding_at=now)
        await self._store.save_conversation(conversation)
        await self._event(conversation, "reply_breach", conversation.agent_id,
                          waited_seconds=round(waited, 3))
        self._metrics.sla_breaches.labels("agent_reply").inc()
        if not self._may_write(conversation.agent_id):
            log.warning("1-minute rule: conversation %s waited %.1f s for %s, who answers in "
                        "the platform's app (kefu cannot write to the customer meanwhile)",
                        conversation.id, waited, holder_name(conversation.agent_id or ""))
            return
        await self._speaker.say(conversation, OutboundReply(
            self._text(conversation, "agent_holding"), Kind.HOLDING,
            meta={"reason": "agent_reply_timeout", "waited_seconds": round(waited, 1)}))
        log.warning("1-minute rule: conversation %s waited %.1f s for agent %s",
                    conversation.id, waited, conversation.agent_id)

    async def _left_long_ago(self, conversation: Conversation, now: float) -> bool:
        """The customer of a held chat left `console.close_left_after_seconds` ago: the
        chat would only linger in the agent's list and count against their limit."""
        channel = self._speaker.channel(conversation.channel)
        gone = await channel.absent_since(conversation.user_id) if channel else None
        return gone is not None and now - gone >= self._desk.console.close_left_after_seconds

    async def _close_left(self, conversation_id: str) -> bool:
        conversation = await self._current(conversation_id)
        if conversation.state is not AGENT:
            return False
        await self._end(conversation, conversation.agent_id or "", rate=False, reason="left")
        log.info("conversation %s closed: the customer left", conversation.id)
        return True

    async def _abandon(self, conversation_id: str) -> bool:
        conversation = await self._current(conversation_id)
        if conversation.state is not QUEUED:
            return False
        now = self._clock()
        waited = now - (conversation.queued_at or now)
        conversation = replace(conversation, state=CLOSED, closed_at=now,
                               close_reason="abandoned")
        await self._store.save_conversation(conversation)
        await self._event(conversation, "abandoned", waited_seconds=round(waited, 3))
        self._metrics.abandoned.inc()
        await self._speaker.send_state(conversation)
        log.info("conversation %s left the queue after %.0f s", conversation.id, waited)
        return True

    async def _to_offline(self, conversation_id: str) -> None:
        conversation = await self._current(conversation_id)
        if conversation.state is QUEUED:
            conversation = await self._offer_offline_message(
                conversation, conversation.handoff_reason or "queued")
            await self._store.save_conversation(conversation)
