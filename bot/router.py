"""The router: every inbound event goes through here, in order per conversation.

dedupe -> load or start the conversation -> greet (first, before anything slow) -> rules
-> knowledge base or the desk. Each event is a job on its customer's lane (bot/lanes.py),
so one conversation's messages are handled strictly in order while different
conversations run concurrently and a slow one never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from bot.answering import Answering, InThreads
from bot.cluster import LeaseLost
from bot.config import Config
from bot.greeting import Greeter, breach_cause
from bot.hours import BusinessHours
from bot.lanes import Lanes
from bot.logs import about, current_conversation
from bot.messages import (
    ConversationState,
    InboundEvent,
    InboundMessage,
    Kind,
    OutboundReply,
    Role,
    StoredMessage,
    attachments_text,
)
from bot.metrics import Metrics
from bot.priority import Priority, current_priority, priority
from bot.rules import HandoffTrigger
from bot.speaker import Speaker, replying_to
from bot.store import (
    STORE_OUTAGES,
    Conversation,
    NewMessage,
    Received,
    Store,
    UnansweredQuestion,
    WebhookDelivery,
    goes_on,
)
from bot.text import message_language
from bot.texts import Texts
from bot.understanding import Intent, Reading, reader_for
from knowledge_base.decide import Action
from knowledge_base.live import LiveKnowledgeBase
from knowledge_base.templates import AnswerTemplates

log = logging.getLogger(__name__)

# Small talk that the greeting has already answered when it opened the conversation.
GREETED_BY_THE_GREETING = frozenset({"greeting", "presence"})
_RATING = re.compile(r"^\s*([1-5])\s*(分|星|stars?|/\s*5)?\s*$", re.IGNORECASE)


class Desk(Protocol):
    """The human side (handoff/desk.py): what the router hands conversations to."""

    async def hand_off(self, conversation: Conversation, trigger: HandoffTrigger,
                       text_key: str | None, reason: str | None = None) -> Conversation:
        """Queue the conversation for a person, or take an offline message when nobody is on
        duty; `text_key` names what to tell the customer (None: the bot has said enough)."""

    async def customer_wrote(self, conversation: Conversation, message: StoredMessage
                             ) -> Conversation:
        """A message in a conversation the bot does not answer: queued, held by an agent,
        or leaving an offline message."""


class Publisher(Protocol):
    """Other systems hear what happens (handoff/webhooks.py): an event's deliveries are
    prepared, stored with the change they announce, then the sender is told."""

    def prepare(self, type_: str, data: dict[str, Any]) -> tuple[WebhookDelivery, ...]: ...

    def queued(self, deliveries: tuple[WebhookDelivery, ...]) -> None: ...

    def about(self, conversation: Conversation, **more: Any) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Accepted:
    """The inbound event is stored (or was already): the channel may acknowledge it.

    `handled` completes when everything the event caused has been said: a channel that
    answers in its webhook's response (WeChat) waits for it, up to its deadline."""

    conversation_id: str
    state: ConversationState
    handled: asyncio.Future[None] = field(compare=False)
    duplicate: bool = False
    seq: int | None = None  # the stored message's place in the transcript


class Router:
    def __init__(
        self,
        config: Config,
        store: Store,
        knowledge_base: LiveKnowledgeBase,
        lanes: Lanes,
        speaker: Speaker,
        desk: Desk,
        metrics: Metrics,
        webhooks: Publisher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._webhooks = webhooks
        self._store = store
        self._kb = knowledge_base
        self._lanes = lanes
        self._speaker = speaker
        self._desk = desk
        self._clock = clock
        self.greeter = Greeter(config, BusinessHours(config.business))
        self.texts = Texts(config)
        self.reader = reader_for(config)
        # Where questions are matched (bot/answering.py): create_app sets it.
        self.answering: Answering = InThreads(self.reader, AnswerTemplates(
            config.knowledge_base.answer_templates), self.greeter)
        # Answers worked on at once: beyond this they wait their turn, which keeps the event
        # loop's queue short, so a new customer's greeting is not stuck behind them.
        self._answering = asyncio.Semaphore(config.conversation.answers_at_once)

    # entry point for adapters

    async def submit(self, inbound: InboundMessage) -> Accepted:
        """Queue the event on its conversation's lane; return once it is stored."""
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[Accepted] = loop.create_future()
        handled: asyncio.Future[None] = loop.create_future()

        def finish() -> None:  # whatever happened, nobody waits for ever
            if not accepted.done():
                accepted.set_exception(RuntimeError("message could not be stored"))
            if not handled.done():
                handled.set_result(None)

        async def job() -> None:
            try:
                with about(None):
                    await self._process(inbound, accepted, handled)
            except LeaseLost as exc:  # the process that took the lease does the work
                log.warning("%s event from %s/%s: %s", inbound.event, inbound.channel,
                            inbound.user_id, exc)
            except STORE_OUTAGES as exc:
                # Stored (and acknowledged) or not: an unsettled message is recovery's to
                # answer once the store is back; one that was not stored is the customer's
                # to send again.
                log.warning("store unavailable while handling %s event from %s/%s (%s): %s",
                            inbound.event, inbound.channel, inbound.user_id, exc,
                            "left for recovery" if accepted.done() else "not stored")
            except Exception:
                # The boundary: log with the conversation key, and never leave the customer
                # without a word.
                log.exception("failed to handle %s event from %s/%s", inbound.event,
                              inbound.channel, inbound.user_id)
                if accepted.done():
                    await self._apologise(inbound, accepted.result())
            finally:
                finish()

        self._lanes.submit((inbound.channel, inbound.user_id), job,
                           refused=lambda exc: finish())
        return await asyncio.shield(accepted)

    async def idle(self) -> None:
        """Wait until every lane has finished its work (tests and shutdown)."""
        await self._lanes.idle()

    async def _apologise(self, inbound: InboundMessage, accepted: Accepted) -> None:
        """After a failure that is not the store's (a bug): a word to the customer, and
        the message settled, so recovery does not run into the same failure again and
        again."""
        try:
            if accepted.seq is not None:
                await self._store.settle(accepted.conversation_id, accepted.seq)
            conversation = await self._store.current_conversation(inbound.channel,
                                                                  inbound.user_id)
            if conversation is not None:
                await self._speaker.say(conversation, OutboundReply(
                    self.texts.get(conversation.lang, "error"), Kind.FALLBACK,
                    quick_replies=(self.texts.get(conversation.lang, "human_option"),)))
        except Exception:
            log.exception("could not apologise to %s/%s either", inbound.channel,
                          inbound.user_id)

    # one event

    async def _process(self, inbound: InboundMessage, accepted: asyncio.Future[Accepted],
                       handled: asyncio.Future[None]) -> None:
        # opening the chat is on the greeting's path; storing a message, on its ack's
        with priority(Priority.STORE if inbound.event is InboundEvent.MESSAGE
                      else Priority.GREETING):
            conversation, received = await self._store_and_greet(inbound, accepted, handled)
        if conversation is None:
            return  # a retry of a message stored before
        rating = self._rating_in(conversation, inbound)
        if rating is not None:
            await self._rate(conversation, rating)
            if received is not None:
                await self._store.settle(conversation.id, received.message.seq)
        elif received is not None:
            if received.earlier:  # a crash left them: answered first, so answers keep order
                conversation = await self._finish(conversation, list(received.earlier))
            await self._handle(replace(conversation, last_activity_at=inbound.received_at),
                               inbound, received.message)
        elif conversation.last_activity_at != inbound.received_at:  # a new one is saved
            await self._store.save_conversation(
                replace(conversation, last_activity_at=inbound.received_at))

    async def _store_and_greet(self, inbound: InboundMessage,
                               accepted: asyncio.Future[Accepted], handled: asyncio.Future[None]
                               ) -> tuple[Conversation | None, Received | None]:
        started = self._clock()
        greeting: StoredMessage | None = None
        if inbound.event is InboundEvent.OPEN:
            conversation, is_new, greeting = await self._open(inbound)
        else:
            conversation, is_new = await self._conversation_for(inbound)
        current_conversation.set(conversation.id)  # for the log lines from here on
        loaded = self._clock()
        # a newcomer's first words and greeting: ahead of the crowd's messages
        with priority(Priority.GREETING if is_new else current_priority()):
            received = None
            if inbound.event is InboundEvent.MESSAGE:
                meta: dict[str, Any] = {"attachments": [asdict(a) for a in inbound.attachments]} \
                    if inbound.attachments else {}
                if inbound.display_name:  # for the customer's record (handoff/customers.py)
                    meta["display_name"] = inbound.display_name
                receiving = self._speaker.receive(conversation, NewMessage(
                    role=Role.CUSTOMER, kind=Kind.TEXT, ts=inbound.received_at,
                    text=inbound.text or attachments_text(inbound.attachments),
                    platform_msg_id=inbound.platform_msg_id, meta=meta,
                ))
                if is_new:  # one round trip to the store for both
                    _, received = await asyncio.gather(self._store.save_conversation(conversation),
                                                       receiving)
                else:
                    received = await receiving
                accepted.set_result(Accepted(conversation.id, conversation.state, handled,
                                             duplicate=received is None,
                                             seq=received.message.seq if received else None))
                if received is None:
                    return None, None
            else:
                accepted.set_result(Accepted(conversation.id, conversation.state, handled))
            if is_new:
                phases = {
                    "waiting behind earlier events of this customer": started - inbound.received_at,
                    "loading the conversation from the store" + (
                        " and storing the greeting" if greeting else ""): loaded - started,
                }
                conversation = await self._greet(conversation, inbound.received_at, phases,
                                                 greeting)
            return conversation, received

    async def _handle(self, conversation: Conversation, inbound: InboundMessage,
                      stored: StoredMessage) -> Conversation:
        """Answer a stored customer message (or pass it to the desk), then mark it handled."""
        answering = replying_to.set(stored.seq)  # what is said now answers it
        try:
            async with self._speaker.settling_with_the_save() as delivered:
                if conversation.state is ConversationState.BOT \
                        and not conversation.offline_step:
                    conversation = await self._respond(conversation, inbound)
                    self._metrics.answer_latency.labels(conversation.channel).observe(
                        max(0.0, self._clock() - inbound.received_at))
                else:
                    conversation = await self._desk.customer_wrote(conversation, stored)
                replies = await self._speaker.settled_here(conversation.id, delivered)
                await self._store.save_conversation(conversation,
                                                    settled=(stored.seq, *replies))
        finally:
            replying_to.reset(answering)
        return conversation

    async def resume(self, left: list[StoredMessage]) -> None:
        """Handle one conversation's customer messages that were stored but never handled
        (their process died), oldest first. Recovery calls this; what was handled
        meanwhile is left alone."""
        conversation_id = left[0].conversation_id
        conversation = await self._store.get_conversation(conversation_id)
        if conversation is None:
            for message in left:
                await self._store.settle(conversation_id, message.seq)
            return

        async def job() -> None:
            with about(conversation_id):
                current = await self._store.get_conversation(conversation_id)
                still = {m.seq for m in await self._store.unsettled(math.inf, conversation_id)}
                if current is None:
                    for message in left:
                        await self._store.settle(conversation_id, message.seq)
                elif unhandled := [m for m in left if m.seq in still]:
                    await self._finish(current, unhandled)

        await self._lanes.run((conversation.channel, conversation.user_id), job)

    async def _finish(self, conversation: Conversation, left: list[StoredMessage]
                      ) -> Conversation:
        """Handle customer messages a crash left unhandled, oldest first, greeting first if
        the crash came before the greeting was stored; in the customer's lane."""
        transcript = await self._store.messages(conversation.id)
        if not any(m.kind is Kind.GREETING for m in transcript):
            conversation = await self._greet(conversation, left[0].ts, {
                "a crash before the greeting was stored": self._clock() - left[0].ts})
        for message in left:
            if conversation.state is ConversationState.CLOSED or any(
                    m.meta.get("reply_to") == message.seq for m in transcript):
                await self._store.settle(conversation.id, message.seq)
                continue  # closed, or answered before the crash: only settling was left
            log.info("answering message %d of conversation %s, left unhandled", message.seq,
                     conversation.id)
            inbound = InboundMessage(channel=conversation.channel,
                                     user_id=conversation.user_id,
                                     platform_msg_id=message.platform_msg_id,
                                     text=message.text, received_at=message.ts)
            conversation = await self._handle(conversation, inbound, message)
        return conversation

    async def _conversation_for(self, inbound: InboundMessage) -> tuple[Conversation, bool]:
        # One read: a customer's conversations follow one another (a new one begins only
        # once the one before is closed), so the latest is the current one unless closed.
        latest = await self._store.latest_conversation(inbound.channel, inbound.user_id)
        if latest is not None and goes_on(latest, self._idle_before(inbound)):
            return latest, False
        latest = await self._close_if_idle(latest, inbound)
        if latest is not None and self._rating_in(latest, inbound) is not None:
            return latest, False  # rating a closed conversation starts nothing new
        return self._new_conversation(inbound), True  # saved by the caller, with its message

    async def _open(self, inbound: InboundMessage
                    ) -> tuple[Conversation, bool, StoredMessage | None]:
        """Opening the chat: the current conversation, or a new one with its greeting
        stored in the same operation of the store (an open event rates nothing)."""
        new = self._new_conversation(inbound)
        latest, greeting = await self._store.begin_unless_open(
            new, self._greeting(new.lang, inbound.received_at), self._idle_before(inbound))
        if greeting is None:
            assert latest is not None  # it goes on
            return latest, False, None
        await self._close_if_idle(latest, inbound)
        return new, True, greeting

    def _greeting(self, lang: str, received_at: float) -> NewMessage:
        return NewMessage(role=Role.BOT, kind=Kind.GREETING,
                          text=self.greeter.render(lang, received_at), ts=self._clock())

    def _idle_before(self, inbound: InboundMessage) -> float:
        return inbound.received_at - self._config.conversation.idle_timeout_seconds

    async def _close_if_idle(self, latest: Conversation | None, inbound: InboundMessage
                             ) -> Conversation | None:
        """The latest conversation, closed for being idle if it was still open."""
        if latest is None or latest.state is ConversationState.CLOSED:
            return latest
        closed = replace(latest, state=ConversationState.CLOSED,
                         closed_at=inbound.received_at, close_reason="idle")
        await self._store.save_conversation(closed)
        await self._speaker.send_state(closed)
        return closed

    def _new_conversation(self, inbound: InboundMessage) -> Conversation:
        # The page's language, unless the customer's first words are in another.
        page = inbound.lang if inbound.lang in self.greeter_languages else None
        lang = message_language(inbound.text, page or self._config.business.default_language)
        if lang not in self.greeter_languages:
            lang = page or self._config.business.default_language
        return Conversation(
            id=uuid.uuid4().hex, channel=inbound.channel, user_id=inbound.user_id,
            state=ConversationState.BOT, lang=lang, created_at=inbound.received_at,
            last_activity_at=inbound.received_at, source=inbound.source,
        )

    @property
    def greeter_languages(self) -> frozenset[str]:
        return frozenset(self._config.greeting.templates)

    async def _greet(self, conversation: Conversation, received_at: float,
                     phases: dict[str, float], greeting: StoredMessage | None = None
                     ) -> Conversation:
        """Store the greeting (unless stored already, with the conversation's start), then
        send it: a crash cannot lose a greeting the customer never saw (recovery delivers
        it), nor give its `seq` to another message."""
        before_render = self._clock()
        stored_now = greeting is None
        if greeting is None:
            greeting = await self._store.append_message(
                conversation, self._greeting(conversation.lang, received_at))
        if greeting is None:  # only inbound messages carry a dedupe key
            raise RuntimeError("the store dropped the greeting")
        async with self._speaker.settling_with_the_save() as delivered:
            await self._speaker.deliver(conversation, greeting)
        handed_over = self._clock()  # the channel has it: settling it is not the customer's wait
        for conversation_id, seq in delivered:
            await self._store.settle(conversation_id, seq)
        phases["storing and handing over the greeting" if stored_now
               else "handing over the greeting"] = handed_over - before_render
        latency = handed_over - received_at
        self._metrics.greeting_latency.labels(conversation.channel).observe(max(0.0, latency))
        breach = None
        log.info("greeted %s/%s in %.1f ms", conversation.channel, conversation.user_id,
                 latency * 1000, extra={"event": "greeted", "latency_ms": round(latency * 1000, 3)})
        if latency > self._config.greeting.breach_seconds:
            self._metrics.sla_breaches.labels("greeting").inc()
            breach = breach_cause(phases)
            log.warning("greeting breach: conversation %s greeted after %.2f s (%s)",
                        conversation.id, latency, breach)
        conversation = replace(conversation, greeting_latency_ms=round(latency * 1000, 3),
                               greeting_breach=breach)
        started = self._webhooks.prepare("conversation.started", self._webhooks.about(
            conversation, lang=conversation.lang))
        with priority(Priority.NORMAL):  # sent: saving its figures must not delay others
            await self._store.save_conversation(conversation, deliveries=started)
            self._webhooks.queued(started)
        return conversation

    # ratings

    def _rating_in(self, conversation: Conversation, inbound: InboundMessage) -> int | None:
        """The score, when the event rates the conversation: a rating frame, or a typed or
        tapped answer to the rating request of a conversation an agent closed."""
        if inbound.event is InboundEvent.RATING:
            return inbound.rating
        if (conversation.state is not ConversationState.CLOSED
                or conversation.rating_requested_at is None or conversation.rating is not None
                or inbound.received_at - conversation.rating_requested_at
                > self._config.desk.rating_window_seconds):
            return None
        text = inbound.text.strip()
        options = self.texts.get(conversation.lang, "rating_options").split("|")
        if text in options:
            return int(text[0])
        if text and set(text) == {"★"} and len(text) <= 5:
            return len(text)
        match = _RATING.match(text)
        return int(match.group(1)) if match else None

    async def _rate(self, conversation: Conversation, score: int) -> None:
        conversation = replace(conversation, rating=score)
        rated = self._webhooks.prepare("rating.received",
                                       self._webhooks.about(conversation, rating=score))
        await self._store.save_conversation(conversation, deliveries=rated)
        self._webhooks.queued(rated)
        await self._speaker.say(conversation, OutboundReply(
            self.texts.get(conversation.lang, "rating_thanks"), Kind.RATING_THANKS,
            meta={"rating": score}))

    # the bot's answers

    async def _respond(self, conversation: Conversation, inbound: InboundMessage) -> Conversation:
        kb = self._kb.current
        answer = None
        reading = self.reader.urgent(inbound.text, conversation.lang)  # skips the queue
        if reading is None:
            async with self._answering:  # greetings never wait behind a crowd of answers
                reading, answer = await self.answering.read(
                    kb, inbound.text, conversation.lang, inbound.received_at)
        if reading.lang != conversation.lang:  # the customer writes in another language
            conversation = replace(conversation, lang=reading.lang)
        lang = reading.lang
        if reading.intent is Intent.NOT_TEXT:  # a picture, a voice message, a location...
            await self._speaker.say(conversation, OutboundReply(
                self.texts.get(lang, "unsupported"), Kind.FALLBACK,
                quick_replies=(self.texts.get(lang, "human_option"),)))
            return conversation
        if reading.trigger is not None:
            return await self._desk.hand_off(conversation, reading.trigger,
                                             f"handoff_{reading.trigger.value}")
        if reading.small_talk is not None:
            opened_it = conversation.created_at == inbound.received_at
            if not (opened_it and reading.small_talk in GREETED_BY_THE_GREETING):
                await self._speaker.say(conversation, OutboundReply(
                    self.texts.get(lang, f"smalltalk_{reading.small_talk}"), Kind.SMALL_TALK,
                    meta={"small_talk": reading.small_talk}))
            return conversation
        return await self._answer(conversation, inbound, reading, answer)

    async def _answer(
        self, conversation: Conversation, inbound: InboundMessage, reading: Reading,
        answer: str | None,
    ) -> Conversation:
        lang = reading.lang
        result, decision = reading.result, reading.decision
        assert result is not None and decision is not None  # a question, matched
        meta = {
            "decision": decision.action.value,
            "why": decision.reason,
            "scores": [{"entry": c.entry.id, "score": c.score, "question": c.question}
                       for c in result.candidates],
        }
        if decision.answer is not None and answer is not None:
            entry = decision.answer.entry
            await self._speaker.say(conversation, OutboundReply(
                answer, Kind.ANSWER, meta={**meta, "entry": entry.id}))
            conversation = replace(conversation, consecutive_misses=0)
            if entry.handoff:
                return await self._desk.hand_off(conversation, HandoffTrigger.ENTRY, None,
                                                 reason=f"entry {entry.id}")
            return conversation
        if decision.action is Action.CLARIFY:
            options = (*(c.question for c in decision.options),
                       self.texts.get(lang, "human_option"))
            await self._speaker.say(conversation, OutboundReply(
                self.texts.get(lang, "clarify"), Kind.CLARIFY, quick_replies=options, meta=meta))
            return conversation
        best = result.best
        await self._store.record_unanswered(UnansweredQuestion(
            conversation.id, inbound.text, best.entry.id if best else None,
            best.score if best else None, inbound.received_at))
        conversation = replace(conversation, consecutive_misses=conversation.consecutive_misses + 1)
        if conversation.consecutive_misses >= self._config.matching.misses_before_handoff:
            return await self._desk.hand_off(conversation, HandoffTrigger.MISSES,
                                             "handoff_misses")
        await self._speaker.say(conversation, OutboundReply(
            self.texts.get(lang, "fallback"), Kind.FALLBACK,
            quick_replies=(self.texts.get(lang, "human_option"),), meta=meta))
        return conversation
