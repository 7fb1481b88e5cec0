"""The service desk's figures for a period, worked out from what the store recorded.

Every figure is defined in docs/reports.md; the definitions below are the ones printed
there. A conversation belongs to the period in which it began (business time zone), and
everything that happened to it counts there, even what happened after the period ended.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.channel import held_by_platform, holder_name
from bot.config import Config
from bot.messages import Kind, Role, StoredMessage
from bot.store import Conversation, ConversationEvent, Store, Ticket, TicketStatus
from knowledge_base.gaps import group

# Upper bounds (seconds) of the greeting latency and queue wait histograms' bars.
GREETING_BARS = (0.1, 0.5, 1.0, 2.0, 5.0)
WAIT_BARS = (30.0, 60.0, 120.0, 300.0, 600.0)
# What answers a customer: the bot's replies that respond to what they said, and anything
# an agent sends (the one-click "I'm checking" included). Greetings, notices, queue updates
# and the bot's automatic holding message do not: the holding message means nobody replied.
BOT_REPLIES = frozenset({Kind.ANSWER, Kind.CLARIFY, Kind.FALLBACK, Kind.HANDOFF, Kind.OFFLINE,
                         Kind.RATING_THANKS, Kind.SMALL_TALK})
HANDOFF_EVENTS = frozenset({"queued", "offline_offered"})
PREVIOUS_COMPLAINT = "previous_complaint"  # an event: when the customer last complained


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days, first and last included, in the business's time zone."""

    first: date
    last: date
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the period ends ({self.last}) before it begins ({self.first})")

    @property
    def since(self) -> float:
        return datetime.combine(self.first, time(), self.zone).timestamp()

    @property
    def until(self) -> float:
        return datetime.combine(self.last + timedelta(days=1), time(), self.zone).timestamp()

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def day_of(self, ts: float) -> date:
        return datetime.fromtimestamp(ts, self.zone).date()

    @classmethod
    def parse(cls, first: str | None, last: str | None, zone: ZoneInfo, now: float,
              max_days: int) -> Period:
        """From YYYY-MM-DD dates as a person types them; by default the last 7 days, today
        included. ValueError says what is wrong."""
        today = datetime.fromtimestamp(now, zone).date()
        end = _date(last, "to") if last else today
        start = _date(first, "from") if first else end - timedelta(days=6)
        period = cls(start, end, zone)
        if (end - start).days + 1 > max_days:
            raise ValueError(f"the period is {(end - start).days + 1} days; reports cover at "
                             f"most {max_days} (reports.max_days in the config)")
        return period


def _date(text: str, which: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--{which} {text!r} is not a date like 2026-11-01") from None


@dataclass(frozen=True, slots=True)
class Spread:
    """A distribution of durations in seconds, with nearest-rank percentiles."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        return cls(tuple(sorted(values)))

    @property
    def count(self) -> int:
        return len(self.values)

    def percentile(self, p: float) -> float | None:
        if not self.values:
            return None
        rank = max(1, math.ceil(p / 100 * len(self.values)))
        return self.values[rank - 1]

    @property
    def median(self) -> float | None:
        return self.percentile(50)

    @property
    def worst(self) -> float | None:
        return self.values[-1] if self.values else None

    def share_within(self, seconds: float) -> float | None:
        if not self.values:
            return None
        return sum(1 for v in self.values if v <= seconds) / len(self.values)

    def bars(self, bounds: Sequence[float]) -> list[tuple[str, int]]:
        """Counts per bar: up to each bound (inclusive), and over the last."""
        labels = [f"≤ {_short(b)}" for b in bounds] + [f"> {_short(bounds[-1])}"]
        counts = [0] * (len(bounds) + 1)
        for value in self.values:
            counts[next((i for i, b in enumerate(bounds) if value <= b), len(bounds))] += 1
        return list(zip(labels, counts, strict=True))


def _short(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min"


@dataclass(frozen=True, slots=True)
class Tickets:
    left: int
    on_time: int  # answered by their due time
    late: int  # answered after it
    overdue: int  # still open, past due
    waiting: int  # still open, not yet due

    @property
    def on_time_share(self) -> float | None:
        judged = self.on_time + self.late + self.overdue
        return self.on_time / judged if judged else None


@dataclass
class AgentFigures:
    name: str
    chats: int = 0  # conversations they held (given from the queue or transferred to them)
    replies: int = 0
    first_responses: list[float] = field(default_factory=list)
    reply_breaches: int = 0  # times a customer of theirs waited over a minute
    closed: int = 0
    ratings: list[int] = field(default_factory=list)  # of the conversations they closed

    @property
    def first_response(self) -> Spread:
        return Spread.of(self.first_responses)

    @property
    def average_rating(self) -> float | None:
        return sum(self.ratings) / len(self.ratings) if self.ratings else None


@dataclass
class Report:
    period: Period
    made_at: float
    greeting_limit_seconds: float  # the greeting rule (5 s)
    reply_window_seconds: float  # the reply rule (1 minute)
    repeat_complaint_days: int
    channels: list[str]
    by_day: dict[date, Counter[str]]  # day -> channel -> conversations begun
    sources: Counter[str]  # where customers came from (a deep link's payload) -> conversations
    outcomes: Counter[str]  # bot_answered, handed_off, unanswered
    greeting: Spread
    greeting_breaches: Counter[str]  # cause -> count, for greetings over the limit
    first_response: Spread  # agent's first reply, from the moment they got the chat
    customer_messages: int
    answered_within_minute: int
    queue_waits: Spread  # every wait that ended with an agent or with the customer leaving
    abandoned: int
    still_queued: int
    tickets: Tickets
    complaints: int
    repeat_complaints: int  # the same customer complained within the previous 7 days
    ratings: Counter[int]  # score -> count
    rating_requests: int
    agents: list[AgentFigures]
    unanswered: list[tuple[int, str, list[str]]]  # times asked, example, other wordings

    @property
    def conversations(self) -> int:
        return sum(self.outcomes.values())

    @property
    def within_minute_share(self) -> float | None:
        if not self.customer_messages:
            return None
        return self.answered_within_minute / self.customer_messages

    @property
    def abandonment_share(self) -> float | None:
        left_queue = self.queue_waits.count
        return self.abandoned / left_queue if left_queue else None

    @property
    def greeting_compliance(self) -> float | None:
        return self.greeting.share_within(self.greeting_limit_seconds)

    @property
    def average_rating(self) -> float | None:
        rated = sum(self.ratings.values())
        return sum(s * n for s, n in self.ratings.items()) / rated if rated else None


def answered_within(messages: Sequence[StoredMessage], window: float) -> tuple[int, int]:
    """(customer messages, those answered within `window` seconds) of one transcript."""
    total = answered = 0
    waiting: list[float] = []  # customer messages not yet answered
    for message in messages:
        if message.role is Role.CUSTOMER:
            total += 1
            waiting.append(message.ts)
        elif waiting and (message.role is Role.AGENT or (
                message.role is Role.BOT and message.kind in BOT_REPLIES)):
            answered += sum(1 for ts in waiting if message.ts - ts <= window)
            waiting = []
    return total, answered


async def make_report(store: Store, period: Period, config: Config, *, now: float,
                      progress: Callable[[Iterable[Conversation], int],
                                                     Iterable[Conversation]] | None = None
                      ) -> Report:
    since, until = period.since, period.until
    greeting_limit = config.greeting.breach_seconds
    reply_window = config.desk.agent_reply_seconds
    repeat_days = config.reports.repeat_complaint_days
    lookback = since - repeat_days * 86400
    earlier_and_now = await store.conversations_created(lookback, until)
    conversations = [c for c in earlier_and_now if c.created_at >= since]
    in_period = {c.id for c in conversations}
    events: dict[str, list[ConversationEvent]] = defaultdict(list)
    for event in await store.events(None, since=lookback):
        events[event.conversation_id].append(event)
    agent_names = {a.id: a.name for a in await store.agents()}

    by_day: dict[date, Counter[str]] = {day: Counter() for day in period.days()}
    outcomes: Counter[str] = Counter({"bot_answered": 0, "handed_off": 0, "unanswered": 0})
    customer_messages = answered = 0
    agents: dict[str, AgentFigures] = {}

    def agent(agent_id: str) -> AgentFigures:
        if agent_id not in agents:
            agents[agent_id] = AgentFigures(agent_names.get(agent_id) or (
                holder_name(agent_id) if held_by_platform(agent_id) else agent_id))
        return agents[agent_id]

    listed: Iterable[Conversation] = conversations
    if progress is not None:
        listed = progress(conversations, len(conversations))
    for conversation in listed:
        by_day[period.day_of(conversation.created_at)][conversation.channel] += 1
        transcript = await store.messages(conversation.id)
        handed_off = any(e.type in HANDOFF_EVENTS for e in events[conversation.id])
        bot_answered = any(m.kind is Kind.ANSWER for m in transcript)
        outcomes["handed_off" if handed_off else
                 "bot_answered" if bot_answered else "unanswered"] += 1
        total, within = answered_within(transcript, reply_window)
        customer_messages += total
        answered += within
        for message in transcript:
            if message.role is Role.AGENT and message.meta.get("agent_id"):
                agent(str(message.meta["agent_id"])).replies += 1

    queue_waits: list[float] = []
    first_responses: list[float] = []
    abandoned = 0
    for conversation_id in in_period:
        for event in events[conversation_id]:
            waited = event.detail.get("waited_seconds")
            if event.type == "assigned" and event.agent_id:
                queue_waits.append(float(waited or 0.0))
                agent(event.agent_id).chats += 1
            elif event.type == "transferred" and event.detail.get("to"):
                agent(str(event.detail["to"])).chats += 1
            elif event.type == "abandoned":
                abandoned += 1
                queue_waits.append(float(waited or 0.0))
            elif event.type == "first_response" and event.agent_id:
                first_responses.append(float(event.detail["seconds"]))
                agent(event.agent_id).first_responses.append(float(event.detail["seconds"]))
            elif event.type == "reply_breach" and event.agent_id:
                agent(event.agent_id).reply_breaches += 1
    by_id = {c.id: c for c in conversations}
    for conversation_id in in_period:
        closes = [e for e in events[conversation_id] if e.type == "closed" and e.agent_id]
        if closes:
            closer = agent(str(closes[-1].agent_id))
            closer.closed += 1
            rating = by_id[conversation_id].rating
            if rating is not None:
                closer.ratings.append(rating)

    complaints, repeats = _complaints(earlier_and_now, events, since, repeat_days * 86400)
    questions = [q.text for q in await store.unanswered(since) if q.ts < until]
    return Report(
        period=period, made_at=now, greeting_limit_seconds=greeting_limit,
        reply_window_seconds=reply_window, repeat_complaint_days=repeat_days,
        channels=sorted({c.channel for c in conversations}),
        by_day=by_day, outcomes=outcomes,
        sources=Counter(c.source for c in conversations if c.source),
        greeting=Spread.of(c.greeting_latency_ms / 1000 for c in conversations
                           if c.greeting_latency_ms is not None),
        greeting_breaches=Counter(c.greeting_breach or "unknown" for c in conversations
                                  if c.greeting_latency_ms is not None
                                  and c.greeting_latency_ms / 1000 > greeting_limit),
        first_response=Spread.of(first_responses),
        customer_messages=customer_messages, answered_within_minute=answered,
        queue_waits=Spread.of(queue_waits), abandoned=abandoned,
        still_queued=sum(1 for c in conversations if c.state.value == "queued"),
        tickets=_tickets([t for t in await store.tickets() if since <= t.created_at < until],
                         now),
        complaints=complaints, repeat_complaints=repeats,
        ratings=Counter({s: 0 for s in range(1, 6)} | Counter(
            c.rating for c in conversations if c.rating is not None)),
        rating_requests=sum(1 for c in conversations if c.rating_requested_at is not None),
        agents=sorted(agents.values(), key=lambda a: a.name),
        unanswered=[_top_wording(g) for g in group(questions)[:config.reports.top_unanswered]],
    )


def is_complaint(events: Iterable[ConversationEvent]) -> bool:
    return any(e.type in HANDOFF_EVENTS and e.detail.get("reason") == "complaint"
               for e in events)


async def keep_complaint_history(store: Store, conversations: Iterable[Conversation]
                                 ) -> None:
    """Before conversations lose who had them (retention, erasure): note on each complaint
    when the same customer last complained before it, a time and nothing personal, so that
    reports over those days still count the repeats. `conversations`: those about to lose
    their customer, and their customers' others begun up to a repeat window later."""
    by_customer: dict[tuple[str, str], list[Conversation]] = defaultdict(list)
    for conversation in conversations:
        by_customer[(conversation.channel, conversation.user_id)].append(conversation)
    for theirs in by_customer.values():
        if len(theirs) < 2:
            continue  # nothing to repeat
        previous: float | None = None
        for conversation in sorted(theirs, key=lambda c: c.created_at):
            events = await store.events(conversation.id)
            if not is_complaint(events):
                continue
            if previous is not None and not any(e.type == PREVIOUS_COMPLAINT for e in events):
                await store.record_event(ConversationEvent(
                    conversation.id, conversation.created_at, PREVIOUS_COMPLAINT,
                    detail={"at": previous}))
            previous = conversation.created_at


def _complaints(conversations: list[Conversation], events: dict[str, list[ConversationEvent]],
                since: float, window: float) -> tuple[int, int]:
    """Complaints begun in the period, and how many of them came from a customer who had
    complained (in a conversation begun) within `window` seconds before: known from the
    customer's other conversations, or, once they are anonymised, from the time noted."""
    last_complaint: dict[tuple[str, str], float] = {}
    complaints = repeats = 0
    for conversation in conversations:  # oldest first, the days before the period included
        if not is_complaint(events[conversation.id]):
            continue
        customer = (conversation.channel, conversation.user_id)
        before = max((t for t in (last_complaint.get(customer), *(
            float(e.detail["at"]) for e in events[conversation.id]
            if e.type == PREVIOUS_COMPLAINT)) if t is not None), default=None)
        if conversation.created_at >= since:
            complaints += 1
            if before is not None and conversation.created_at - before <= window:
                repeats += 1
        last_complaint[customer] = conversation.created_at
    return complaints, repeats


def _tickets(tickets: list[Ticket], now: float) -> Tickets:
    done = [t for t in tickets if t.status is TicketStatus.DONE]
    open_ = [t for t in tickets if t.status is TicketStatus.OPEN]
    on_time = sum(1 for t in done if t.done_at is not None and t.done_at <= t.due_at)
    overdue = sum(1 for t in open_ if t.due_at < now)
    return Tickets(left=len(tickets), on_time=on_time, late=len(done) - on_time,
                   overdue=overdue, waiting=len(open_) - overdue)


def _top_wording(wordings: Counter[str]) -> tuple[int, str, list[str]]:
    ranked = [w for w, _ in wordings.most_common()]
    return sum(wordings.values()), ranked[0], ranked[1:4]
