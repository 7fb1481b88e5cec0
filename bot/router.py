"""The router: every inbound event goes through here, in order per conversation.

dedupe -> load or start the conversation -> greet (first, before anything slow) -> rules
-> knowledge base or human. Each conversation has its own lane (a queue and a worker task),
so one conversation's messages are handled strictly in order while different conversations
run concurrently and a slow one never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from bot.config import Config
from bot.greeting import Greeter, breach_cause
from bot.hours import BusinessHours
from bot.messages import (
    ConversationState,
    InboundEvent,
    InboundMessage,
    Kind,
    OutboundReply,
    Role,
    StoredMessage,
)
from bot.rules import HandoffTrigger, detect_handoff
from bot.store import Conversation, NewMessage, Store, UnansweredQuestion
from bot.text import detect_language
from bot.texts import Texts
from knowledge_base.base import LiveKnowledgeBase
from knowledge_base.decide import Action, decide
from knowledge_base.matcher import MatchResult

log = logging.getLogger(__name__)


class Channel(Protocol):
    """What the router needs of a channel adapter."""

    name: str

    async def send(self, conversation: Conversation, message: StoredMessage) -> None: ...

    async def send_state(self, conversation: Conversation, position: int | None) -> None: ...


@dataclass(frozen=True, slots=True)
class Accepted:
    """The inbound event is stored (or was already): the channel may acknowledge it."""

    conversation_id: str
    state: ConversationState
    duplicate: bool = False
    seq: int | None = None  # the stored message's place in the transcript


@dataclass
class _Job:
    inbound: InboundMessage
    accepted: asyncio.Future[Accepted]


@dataclass
class _Lane:
    queue: asyncio.Queue[_Job] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class Router:
    def __init__(
        self,
        config: Config,
        store: Store,
        knowledge_base: LiveKnowledgeBase,
        channels: Mapping[str, Channel],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self._kb = knowledge_base
        self._channels = channels
        self._clock = clock
        self._hours = BusinessHours(config.business)
        self.greeter = Greeter(config, self._hours)
        self.texts = Texts(config)
        self._lanes: dict[tuple[str, str], _Lane] = {}

    # entry point for adapters

    async def submit(self, inbound: InboundMessage) -> Accepted:
        """Queue the event on its conversation's lane; return once it is stored."""
        key = (inbound.channel, inbound.user_id)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
            lane.task = asyncio.create_task(self._drain(key, lane), name=f"lane {key}")
        job = _Job(inbound, asyncio.get_running_loop().create_future())
        lane.queue.put_nowait(job)
        return await asyncio.shield(job.accepted)

    async def idle(self) -> None:
        """Wait until every lane has finished its work (tests and shutdown)."""
        while self._lanes:
            await asyncio.gather(*(lane.task for lane in list(self._lanes.values()) if lane.task))

    async def _drain(self, key: tuple[str, str], lane: _Lane) -> None:
        while not lane.queue.empty():
            job = lane.queue.get_nowait()
            try:
                await self._process(job)
            except Exception:
                # The boundary: log with the conversation key, keep the lane alive, and
                # never leave the customer without a word.
                log.exception("failed to handle %s event from %s/%s",
                              job.inbound.event, *key)
                if not job.accepted.done():
                    job.accepted.set_exception(RuntimeError("message could not be stored"))
                else:
                    await self._apologise(job.inbound)
        del self._lanes[key]

    async def _apologise(self, inbound: InboundMessage) -> None:
        try:
            conversation = await self._store.current_conversation(inbound.channel,
                                                                  inbound.user_id)
            if conversation is not None:
                await self.say(conversation, OutboundReply(
                    self.texts.get(conversation.lang, "error"), Kind.FALLBACK,
                    quick_replies=(self.texts.get(conversation.lang, "human_option"),)))
        except Exception:
            log.exception("could not apologise to %s/%s either", inbound.channel,
                          inbound.user_id)

    # one event

    async def _process(self, job: _Job) -> None:
        inbound = job.inbound
        started = self._clock()
        conversation, is_new = await self._conversation_for(inbound)
        loaded = self._clock()
        if inbound.event is InboundEvent.MESSAGE:
            stored = await self._store.append_message(conversation, NewMessage(
                role=Role.CUSTOMER, kind=Kind.TEXT, text=inbound.text, ts=inbound.received_at,
                platform_msg_id=inbound.platform_msg_id,
            ))
            job.accepted.set_result(Accepted(conversation.id, conversation.state,
                                             duplicate=stored is None,
                                             seq=stored.seq if stored else None))
            if stored is None:
                return
        else:
            job.accepted.set_result(Accepted(conversation.id, conversation.state))
        if is_new:
            phases = {
                "waiting behind earlier events of this customer": started - inbound.received_at,
                "loading the conversation from the store": loaded - started,
            }
            conversation = await self._greet(conversation, inbound, phases)
        if inbound.event is InboundEvent.RATING:
            await self._rate(inbound)
            return
        conversation = replace(conversation, last_activity_at=inbound.received_at)
        if inbound.event is InboundEvent.MESSAGE:
            conversation = await self._respond(conversation, inbound)
        await self._store.save_conversation(conversation)

    async def _conversation_for(self, inbound: InboundMessage) -> tuple[Conversation, bool]:
        current = await self._store.current_conversation(inbound.channel, inbound.user_id)
        idle_limit = self._config.conversation.idle_timeout_seconds
        if current is not None:
            idle = inbound.received_at - current.last_activity_at
            if current.state is not ConversationState.BOT or idle < idle_limit:
                return current, False
            await self._store.save_conversation(replace(
                current, state=ConversationState.CLOSED, closed_at=inbound.received_at))
        if inbound.event is InboundEvent.RATING:
            latest = await self._store.latest_conversation(inbound.channel, inbound.user_id)
            if latest is not None:
                return latest, False
        lang = inbound.lang if inbound.lang in self.greeter_languages else None
        if lang is None:
            lang = detect_language(inbound.text, self._config.business.default_language)
        conversation = Conversation(
            id=uuid.uuid4().hex, channel=inbound.channel, user_id=inbound.user_id,
            state=ConversationState.BOT, lang=lang, created_at=inbound.received_at,
            last_activity_at=inbound.received_at,
        )
        await self._store.save_conversation(conversation)
        return conversation, True

    @property
    def greeter_languages(self) -> frozenset[str]:
        return frozenset(self._config.greeting.templates)

    async def _greet(
        self, conversation: Conversation, inbound: InboundMessage, phases: dict[str, float]
    ) -> Conversation:
        before_render = self._clock()
        text = self.greeter.render(conversation.lang, inbound.received_at)
        stored = await self._store.append_message(conversation, NewMessage(
            role=Role.BOT, kind=Kind.GREETING, text=text, ts=self._clock()))
        handed_over = self._clock()
        phases["rendering and storing the greeting"] = handed_over - before_render
        assert stored is not None  # outbound messages carry no dedupe key
        await self._deliver(conversation, stored)
        latency = handed_over - inbound.received_at
        breach = None
        if latency > self._config.greeting.breach_seconds:
            breach = breach_cause(phases)
            log.warning("greeting breach: conversation %s greeted after %.2f s (%s)",
                        conversation.id, latency, breach)
        conversation = replace(conversation, greeting_latency_ms=round(latency * 1000, 3),
                               greeting_breach=breach)
        await self._store.save_conversation(conversation)
        return conversation

    async def _rate(self, inbound: InboundMessage) -> None:
        conversation = await self._store.latest_conversation(inbound.channel, inbound.user_id)
        if conversation is None or inbound.rating is None:
            return
        conversation = replace(conversation, rating=inbound.rating)
        await self._store.save_conversation(conversation)
        await self.say(conversation, OutboundReply(
            self.texts.get(conversation.lang, "rating_thanks"), Kind.RATING_THANKS,
            meta={"rating": inbound.rating}))

    async def _respond(self, conversation: Conversation, inbound: InboundMessage) -> Conversation:
        if conversation.state is ConversationState.QUEUED:
            return await self._remind_queued(conversation, inbound.received_at)
        if conversation.state is not ConversationState.BOT:
            return conversation  # an agent holds the conversation
        trigger = detect_handoff(inbound.text, self._config.handoff)
        if trigger is not None:
            return await self.hand_off(conversation, trigger, f"handoff_{trigger.value}")
        kb = self._kb.current
        result = await asyncio.to_thread(
            kb.matcher.match, inbound.text, self._config.matching.max_clarify_options)
        return await self._answer(conversation, inbound, result)

    async def _answer(
        self, conversation: Conversation, inbound: InboundMessage, result: MatchResult
    ) -> Conversation:
        lang = conversation.lang
        decision = decide(result, self._config.matching)
        meta = {
            "decision": decision.action.value,
            "why": decision.reason,
            "scores": [{"entry": c.entry.id, "score": c.score, "question": c.question}
                       for c in result.candidates],
        }
        if decision.answer is not None:
            entry = decision.answer.entry
            context = self.greeter.context(lang, inbound.received_at)
            await self.say(conversation, OutboundReply(
                entry.render(context), Kind.ANSWER, meta={**meta, "entry": entry.id}))
            conversation = replace(conversation, consecutive_misses=0)
            if entry.handoff:
                return await self.hand_off(conversation, HandoffTrigger.ENTRY, None,
                                           reason=f"entry {entry.id}")
            return conversation
        if decision.action is Action.CLARIFY:
            options = (*(c.question for c in decision.options),
                       self.texts.get(lang, "human_option"))
            await self.say(conversation, OutboundReply(
                self.texts.get(lang, "clarify"), Kind.CLARIFY, quick_replies=options, meta=meta))
            return conversation
        best = result.best
        await self._store.record_unanswered(UnansweredQuestion(
            conversation.id, inbound.text, best.entry.id if best else None,
            best.score if best else None, inbound.received_at))
        conversation = replace(conversation, consecutive_misses=conversation.consecutive_misses + 1)
        if conversation.consecutive_misses >= self._config.matching.misses_before_handoff:
            return await self.hand_off(conversation, HandoffTrigger.MISSES, "handoff_misses")
        await self.say(conversation, OutboundReply(
            self.texts.get(lang, "fallback"), Kind.FALLBACK,
            quick_replies=(self.texts.get(lang, "human_option"),), meta=meta))
        return conversation

    # handoff

    async def hand_off(
        self,
        conversation: Conversation,
        trigger: HandoffTrigger,
        text_key: str | None,
        reason: str | None = None,
    ) -> Conversation:
        """Move the conversation to the queue, tell the customer, and record why.

        `text_key` names what to say; None says nothing while the desk is open (an FAQ
        entry marked `handoff: true` has already said a person will follow up)."""
        now = self._clock()
        conversation = replace(
            conversation, state=ConversationState.QUEUED, queued_at=now,
            handoff_reason=reason or trigger.value, consecutive_misses=0,
        )
        await self._store.save_conversation(conversation)
        await self._send_state(conversation)  # before the message: clients show both
        moment = self._hours.local(now)
        text = self.texts.get(conversation.lang, text_key) if text_key else ""
        if not self._hours.is_open(moment):
            back_at = self._hours.describe_opening(moment, conversation.lang)
            text = self.texts.get(conversation.lang, "handoff_closed", back_at=back_at)
        if text:
            await self.say(conversation, OutboundReply(
                text, Kind.HANDOFF, meta={"reason": conversation.handoff_reason}))
        return conversation

    async def _remind_queued(self, conversation: Conversation, now: float) -> Conversation:
        """Answer a waiting customer with their place in the queue, at most once a
        `queued_reminder_seconds`; in between they still get the position as state."""
        position = await self._store.queue_position(conversation.id)
        await self._send_state(conversation, position)
        last = conversation.last_holding_at or 0.0
        if now - last < self._config.conversation.queued_reminder_seconds:
            return conversation
        ahead = max((position or 1) - 1, 0)
        await self.say(conversation, OutboundReply(
            self.texts.get(conversation.lang, "holding", ahead=ahead), Kind.HOLDING))
        return replace(conversation, last_holding_at=now)

    # sending

    async def say(self, conversation: Conversation, reply: OutboundReply) -> StoredMessage:
        """Store a reply in the transcript, then hand it to the conversation's channel."""
        stored = await self._store.append_message(conversation, NewMessage(
            role=reply.role, kind=reply.kind, text=reply.text, ts=self._clock(),
            quick_replies=reply.quick_replies, meta=reply.meta))
        assert stored is not None  # outbound messages carry no dedupe key
        await self._deliver(conversation, stored)
        return stored

    async def _deliver(self, conversation: Conversation, message: StoredMessage) -> None:
        channel = self._channels.get(conversation.channel)
        if channel is None:
            log.error("no channel %r for conversation %s", conversation.channel, conversation.id)
            return
        await channel.send(conversation, message)

    async def _send_state(self, conversation: Conversation, position: int | None = None) -> None:
        channel = self._channels.get(conversation.channel)
        if channel is None:
            return
        if position is None and conversation.state is ConversationState.QUEUED:
            position = await self._store.queue_position(conversation.id)
        await channel.send_state(conversation, position)
