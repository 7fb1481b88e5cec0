"""A week of generated service-desk traffic, written to a store as kefu writes it.

Each conversation comes from a scenario (the bot answers, the bot cannot answer, a person
takes over, the customer leaves the queue, a complaint, an offline message...) with random
timings, and says what it must add to the report: the tests add these declarations up and
compare with what `make_report` works out from the raw records.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.messages import ConversationState, Kind, Role
from bot.store import (
    Agent,
    AgentRole,
    Conversation,
    ConversationEvent,
    NewMessage,
    Store,
    Ticket,
    TicketStatus,
    UnansweredQuestion,
)
from handoff.report import Period

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEK = Period(date(2026, 11, 2), date(2026, 11, 8), SHANGHAI)
# The report is made on the last evening: some offline messages are not due yet.
NOW = datetime.combine(WEEK.last, time(23, 0), SHANGHAI).timestamp()
CHANNELS = ("webchat", "wechat", "telegram")
AGENTS = {"a-wang": "王芳", "a-li": "李雷", "a-sam": "Sam"}
GREETINGS = (0.004, 0.02, 0.08, 0.3, 0.7, 1.4, 3.5)  # seconds; plus a few late ones
LATE_GREETING = (6.2, "the store")  # over the 5-second rule, and why
# Wordings of the questions the bot could not answer: each group asks one thing.
UNANSWERED = {
    "points": ["积分怎么兑换", "积分怎么兑换礼品", "怎么用积分兑换"],
    "store": ["你们的实体店在哪里", "实体店在哪里", "实体店地址在哪里"],
    "canada": ["do you ship to canada", "can you ship to canada"],
}


@dataclass
class Declared:
    """What one conversation must add to the report."""

    day: date
    channel: str
    in_period: bool = True
    outcome: str = "unanswered"
    greeting_s: float | None = None
    greeting_late_cause: str | None = None
    customer_messages: int = 0
    answered_within: int = 0
    queue_wait: float | None = None
    abandoned: bool = False
    still_queued: bool = False
    first_response: tuple[str, float] | None = None  # agent, seconds
    held_by: list[str] = field(default_factory=list)
    replies: Counter[str] = field(default_factory=Counter)
    breaches: Counter[str] = field(default_factory=Counter)
    closed_by: str | None = None
    rating: int | None = None
    rating_requested: bool = False
    complaint: bool = False
    repeat_complaint: bool = False
    ticket: str | None = None  # on_time, late, overdue, waiting
    unanswered: str | None = None  # the group of the question the bot could not answer


class Talk:
    """One conversation, written as it unfolds."""

    def __init__(self, rng: random.Random, cid: str, channel: str, user: str, start: float,
                 declared: Declared) -> None:
        self.rng = rng
        self.now = start
        self.declared = declared
        self.conversation = Conversation(
            id=cid, channel=channel, user_id=user, state=ConversationState.BOT, lang="zh",
            created_at=start, last_activity_at=start)
        self.messages: list[NewMessage] = []
        self.events: list[ConversationEvent] = []
        self.ticket: Ticket | None = None
        self.unanswered: list[UnansweredQuestion] = []

    def wait(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def say(self, role: Role, kind: Kind, text: str, **meta: object) -> None:
        self.messages.append(NewMessage(role, kind, text, self.now, meta=dict(meta)))

    def customer(self, text: str, after: float = 4.0) -> None:
        self.wait(after)
        self.say(Role.CUSTOMER, Kind.TEXT, text)

    def event(self, type_: str, agent: str | None = None, **detail: object) -> None:
        self.events.append(ConversationEvent(self.conversation.id, self.now, type_, agent,
                                             dict(detail)))

    def change(self, **fields: object) -> None:
        self.conversation = replace(self.conversation, **fields)  # type: ignore[arg-type]

    async def write(self, store: Store) -> None:
        await store.save_conversation(self.conversation)
        for message in self.messages:
            await store.append_message(self.conversation, message)
        for event in self.events:
            await store.record_event(event)
        if self.ticket is not None:
            await store.save_ticket(self.ticket)
        for question in self.unanswered:
            await store.record_unanswered(question)


# scenarios


def greet(talk: Talk, first_message: str | None = None) -> None:
    """The greeting, on opening the chat or on the first message (answered after it)."""
    late = talk.rng.random() < 0.06
    latency = LATE_GREETING[0] if late else talk.rng.choice(GREETINGS)
    talk.change(greeting_latency_ms=round(latency * 1000, 3),
                greeting_breach=LATE_GREETING[1] if late else None)
    talk.declared.greeting_s = latency
    talk.declared.greeting_late_cause = LATE_GREETING[1] if late else None
    if first_message is not None:
        talk.say(Role.CUSTOMER, Kind.TEXT, first_message)
    talk.wait(latency)
    talk.say(Role.BOT, Kind.GREETING, "您好，欢迎光临！")


def bot_answers(talk: Talk) -> None:
    greet(talk)
    talk.customer("怎么退货")
    talk.wait(0.2)
    talk.say(Role.BOT, Kind.ANSWER, "七天内可以无理由退货……", entry="returns")
    asked = 1
    if talk.rng.random() < 0.5:
        talk.customer("发票")
        talk.wait(0.2)
        talk.say(Role.BOT, Kind.CLARIFY, "您想问的是：1. 开发票 2. 发票抬头")
        talk.customer("1")
        talk.wait(0.2)
        talk.say(Role.BOT, Kind.ANSWER, "下单时可以选择开发票……", entry="invoice")
        asked = 3
    talk.declared.outcome = "bot_answered"
    talk.declared.customer_messages += asked
    talk.declared.answered_within += asked


def bot_cannot_answer(talk: Talk) -> None:
    group = talk.rng.choice(sorted(UNANSWERED))
    text = talk.rng.choice(UNANSWERED[group])
    greet(talk, first_message=text)
    talk.wait(0.3)
    talk.say(Role.BOT, Kind.FALLBACK, "抱歉，这个问题我还不会回答，可以转人工。")
    talk.unanswered.append(UnansweredQuestion(talk.conversation.id, text, None, None,
                                              talk.now))
    talk.declared.unanswered = group
    talk.declared.customer_messages += 1
    talk.declared.answered_within += 1


def only_opened(talk: Talk) -> None:
    greet(talk)


def ask_for_person(talk: Talk, text: str, reason: str) -> None:
    greet(talk)
    talk.customer(text)
    talk.wait(0.2)
    talk.change(state=ConversationState.QUEUED, queued_at=talk.now, handoff_reason=reason,
                priority=1 if reason == "complaint" else 0)
    talk.event("queued", reason=reason, priority=talk.conversation.priority)
    talk.say(Role.BOT, Kind.HANDOFF, "正在为您转接人工客服，请稍候。")
    talk.declared.outcome = "handed_off"
    talk.declared.customer_messages += 1
    talk.declared.answered_within += 1
    if reason == "complaint":
        talk.declared.complaint = True


def served(talk: Talk, reason: str = "request") -> None:
    """A person takes over: the first reply is quick or slow, maybe a transfer, a rating."""
    rng, declared = talk.rng, talk.declared
    ask_for_person(talk, "我要投诉，快递三天没动" if reason == "complaint" else "转人工", reason)
    wait = rng.choice((3.0, 20.0, 45.0, 90.0, 240.0, 700.0))
    agent = rng.choice(sorted(AGENTS))
    talk.wait(wait)
    talk.change(state=ConversationState.AGENT, agent_id=agent, assigned_at=talk.now)
    talk.event("assigned", agent, waited_seconds=wait)
    talk.say(Role.SYSTEM, Kind.NOTICE, f"客服{AGENTS[agent]}为您服务", agent_id=agent)
    assigned_at = talk.now
    declared.queue_wait = wait
    declared.held_by.append(agent)
    talk.customer("订单 12345 还没发货", after=5.0)
    first = rng.choice((8.0, 30.0, 55.0, 75.0, 130.0))
    if first > 60:  # the 1-minute rule: a holding message, which is no reply
        talk.wait(60.0)
        talk.event("reply_breach", agent, waited_seconds=60.0)
        talk.say(Role.BOT, Kind.HOLDING, "客服正在查看，请稍候。", reason="agent_reply_timeout")
        talk.wait(first - 60.0)
        declared.breaches[agent] += 1
    else:
        talk.wait(first)
    talk.say(Role.AGENT, Kind.TEXT, "您好，我帮您查一下物流。", agent_id=agent,
             agent_name=AGENTS[agent])
    seconds = round(talk.now - assigned_at, 3)
    talk.event("first_response", agent, seconds=seconds)
    declared.first_response = (agent, seconds)
    declared.replies[agent] += 1
    declared.customer_messages += 1
    declared.answered_within += first <= 60
    holder = agent
    if rng.random() < 0.25:
        holder = rng.choice([a for a in sorted(AGENTS) if a != agent])
        talk.wait(10.0)
        talk.event("transferred", agent, to=holder, from_agent=agent)
        talk.say(Role.SYSTEM, Kind.NOTICE, "已转给其他客服", agent_id=holder)
        talk.change(agent_id=holder, assigned_at=talk.now)
        declared.held_by.append(holder)
        talk.customer("好的，还要等多久", after=3.0)
        talk.wait(12.0)
        talk.say(Role.AGENT, Kind.TEXT, "明天上午十点前发出，单号会短信通知您。",
                 agent_id=holder, agent_name=AGENTS[holder])
        declared.replies[holder] += 1
        declared.customer_messages += 1
        declared.answered_within += 1
    talk.wait(30.0)
    talk.change(state=ConversationState.CLOSED, closed_at=talk.now, close_reason="resolved",
                rating_requested_at=talk.now)
    talk.event("closed", holder, reason="resolved")
    talk.say(Role.BOT, Kind.RATING_REQUEST, "请为本次服务打分（1-5）")
    declared.closed_by = holder
    declared.rating_requested = True
    if rng.random() < 0.7:
        score = rng.choice((1, 3, 4, 5, 5))
        talk.customer(str(score), after=8.0)
        talk.wait(0.1)
        talk.say(Role.BOT, Kind.RATING_THANKS, "感谢您的评价！", rating=score)
        talk.change(rating=score)
        declared.rating = score
        declared.customer_messages += 1
        declared.answered_within += 1


def complains(talk: Talk) -> None:
    served(talk, "complaint")


def leaves_queue(talk: Talk) -> None:
    ask_for_person(talk, "转人工", "request")
    wait = talk.rng.choice((40.0, 150.0, 400.0))
    talk.customer("还要多久", after=20.0)
    talk.wait(0.1)
    talk.say(Role.BOT, Kind.HOLDING, "您前面还有 2 位，请稍候。")  # no reply: a queue update
    talk.wait(wait - 20.1)
    talk.change(state=ConversationState.CLOSED, closed_at=talk.now, close_reason="abandoned")
    talk.event("abandoned", waited_seconds=wait)
    talk.declared.customer_messages += 1
    talk.declared.queue_wait = wait
    talk.declared.abandoned = True


def still_waiting(talk: Talk) -> None:
    ask_for_person(talk, "转人工", "request")
    talk.declared.still_queued = True


def leaves_a_message(talk: Talk, outcome: str) -> None:
    """Nobody on duty: an offline message (留言), answered on time, late, or not yet."""
    greet(talk)
    talk.customer("转人工")
    talk.wait(0.2)
    talk.change(offline_step="question", handoff_reason="request")
    talk.event("offline_offered", reason="request")
    talk.say(Role.BOT, Kind.OFFLINE, "现在没有客服在线，请留言，我们会在明天10:00前回复。")
    talk.customer("发票开错了，电话 13812345678", after=30.0)
    talk.wait(0.2)
    due = talk.now + (3600.0 if outcome != "waiting" else 11 * 3600)
    done_at = {"on_time": talk.now + 1800, "late": due + 900}.get(outcome)
    talk.ticket = Ticket(
        id="T" + talk.conversation.id, conversation_id=talk.conversation.id,
        channel=talk.conversation.channel, user_id=talk.conversation.user_id, lang="zh",
        question="发票开错了", contact="13812345678", created_at=talk.now, due_at=due,
        status=TicketStatus.DONE if done_at else TicketStatus.OPEN, done_at=done_at,
        done_by="a-wang" if done_at else None)
    talk.event("ticket_created", ticket=talk.ticket.id, due_at=due)
    talk.say(Role.BOT, Kind.OFFLINE, "已收到您的留言。")
    talk.change(offline_step=None, ticket_id=talk.ticket.id)
    talk.declared.outcome = "handed_off"
    talk.declared.customer_messages += 2
    talk.declared.answered_within += 2
    talk.declared.ticket = outcome


@dataclass
class Week:
    talks: list[Talk]

    @property
    def declared(self) -> list[Declared]:
        return [t.declared for t in self.talks if t.declared.in_period]


def at(day: date, hour: float) -> float:
    return (datetime.combine(day, time(), SHANGHAI) + timedelta(hours=hour)).timestamp()


def generate(seed: int = 20261102, per_day: int = 24) -> Week:
    rng = random.Random(seed)
    talks: list[Talk] = []

    def talk(day: date, hour: float, user: str | None = None, channel: str | None = None
             ) -> Talk:
        channel = channel or rng.choice(CHANNELS)
        made = Talk(rng, f"c{len(talks):04d}", channel, user or f"u{len(talks):04d}",
                    at(day, hour), Declared(day, channel))
        talks.append(made)
        return made

    everyday = (bot_answers, bot_answers, bot_answers, bot_cannot_answer, only_opened,
                served, served, complains, leaves_queue)
    for day in WEEK.days():
        for i in range(per_day):
            rng.choice(everyday)(talk(day, 9 + i * 10 / per_day))
    # Offline messages, one of each fate; the one not yet due is left the last evening.
    for outcome, day in (("on_time", WEEK.first), ("late", WEEK.first + timedelta(days=2)),
                         ("overdue", WEEK.first + timedelta(days=4))):
        leaves_a_message(talk(day, 20.5), outcome)
    leaves_a_message(talk(WEEK.last, 22.5), "waiting")
    still_waiting(talk(WEEK.last, 21.0))
    # Complaints from the same customer: 7 days apart or less is a repeat, counting one
    # made before the period began; 8 days apart is not.
    outside = talk(WEEK.first - timedelta(days=1), 23.5, user="angry", channel="wechat")
    complains(outside)
    outside.declared.in_period = False
    complains(talk(WEEK.first, 0.5, user="angry", channel="wechat"))  # 2026-11-01 16:30 UTC
    talks[-1].declared.repeat_complaint = True
    complains(talk(WEEK.first + timedelta(days=6), 0.2, user="angry", channel="wechat"))
    talks[-1].declared.repeat_complaint = True  # 6 days after the one before
    long_ago = talk(WEEK.first - timedelta(days=7), 12.0, user="rare", channel="telegram")
    complains(long_ago)
    long_ago.declared.in_period = False
    complains(talk(WEEK.first + timedelta(days=1), 12.0, user="rare", channel="telegram"))
    # the same customer id on another channel is another customer
    complains(talk(WEEK.first + timedelta(days=2), 12.0, user="angry", channel="telegram"))
    # the week after is not in the report
    after = talk(WEEK.last + timedelta(days=1), 0.1)
    bot_cannot_answer(after)
    after.declared.in_period = False
    return Week(talks)


async def seed(store: Store, week: Week) -> None:
    for agent_id, name in AGENTS.items():
        await store.save_agent(Agent(agent_id, name, AgentRole.AGENT, 5, "-", WEEK.since))
    for talk in week.talks:
        await talk.write(store)
