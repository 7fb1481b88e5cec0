"""One typed configuration tree, validated once at start-up; each channel's part of it is
in the channel's package (channels/<name>/settings.py).

A wrong key or value stops start-up with a single line naming the file, the key path and
what was expected. Relative paths in the file are relative to the file's own folder.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import types
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.cluster import LeaseTiming
from bot.errors import ConfigError
from bot.settings import BridgeSettings, Seconds, Settings
from channels import ChannelsConfig
from handoff.bridges import BridgesConfig

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Score = Annotated[float, Field(ge=0, le=100)]


class _Model(Settings):
    """kefu's own settings; each channel's are in its package (channels.ChannelsConfig)."""


class TimeRange(_Model):
    start: time
    end: time


def _parse_ranges(value: Any) -> list[TimeRange]:
    if value in (None, "closed", "休息"):
        return []
    items = value if isinstance(value, list) else [value]
    ranges = []
    for item in items:
        if item in ("closed", "休息"):  # [closed]: as an environment variable gives it
            continue
        match = _RANGE.match(str(item))
        if not match:
            raise ValueError(f'expected "HH:MM-HH:MM", a list of them, or "closed"; got {item!r}')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if not (h1 < 24 and h2 <= 24 and m1 < 60 and m2 < 60):
            raise ValueError(f"not a time of day in {item!r}")
        start = time(h1, m1)
        end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
        if end <= start:
            raise ValueError(f"a range must end after it starts: {item!r}")
        ranges.append(TimeRange(start=start, end=end))
    return ranges


class BusinessConfig(_Model):
    name: str = "kefu"
    timezone: str = "Asia/Shanghai"
    default_language: Literal["zh", "en"] = "zh"
    hours: dict[str, list[TimeRange]] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)  # days off, whatever their weekday
    # make-up working days (调休: a weekend day worked for a holiday): open on workday_hours
    workdays: list[date] = Field(default_factory=list)
    workday_hours: list[TimeRange] | None = None  # default: the first of mon-fri with hours
    # "china": China's public holidays and make-up days too, from the chinese-calendar
    # package (pip install 'kefu[china]'); holidays and workdays above still win
    calendar: Literal["none", "china"] = "none"

    @field_validator("workday_hours", mode="before")
    @classmethod
    def _parse_workday_hours(cls, value: Any) -> list[TimeRange] | None:
        return None if value is None else _parse_ranges(value)

    @field_validator("calendar")
    @classmethod
    def _calendar_installed(cls, value: str) -> str:
        if value == "china" and importlib.util.find_spec("chinese_calendar") is None:
            raise ValueError("china needs the chinese-calendar package: "
                             "pip install 'kefu[china]'")
        return value

    @model_validator(mode="after")
    def _not_both(self) -> BusinessConfig:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"{', '.join(map(str, both))} is both in holidays and in workdays")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (use a name like Asia/Shanghai)") from exc
        return value

    @field_validator("hours", mode="before")
    @classmethod
    def _parse_hours(cls, value: Any) -> dict[str, list[TimeRange]]:
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of weekday (mon..sun) to opening hours")
        parsed = {}
        for day, ranges in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}")
            parsed[day] = _parse_ranges(ranges)
        return parsed


class GreetingConfig(_Model):
    templates: dict[str, str] = Field(
        default_factory=lambda: {
            "zh": "{{ time_greeting }}！欢迎光临{{ business }}，我是智能客服，请问有什么可以帮您？"
            "{% if not is_open %}（人工客服{{ back_at }}上班，您可以先留言。）{% endif %}",
            "en": "{{ time_greeting }}! Welcome to {{ business }}. I'm the virtual assistant; "
            "how can I help?{% if not is_open %} (Our team is back {{ back_at }}; you can "
            "leave a message.){% endif %}",
        }
    )
    breach_seconds: Seconds = 5.0


class ConversationConfig(_Model):
    idle_timeout_seconds: Seconds = 1800.0
    queued_reminder_seconds: Seconds = 60.0
    # WeChat and WeCom allow 5 messages per customer message: there the timed updates are
    # rare, and the customer hears their place whenever they write (in the passive reply)
    queued_reminder_seconds_with_quota: Seconds = 600.0
    recovery_after_seconds: Seconds = 15.0  # a message left half-done this long is finished
    recovery_at_once: Annotated[int, Field(ge=1)] = 64  # conversations recovery finishes together
    answers_at_once: Annotated[int, Field(ge=1)] = 16  # more wait, so greetings do not


Confidence = Annotated[float, Field(ge=0, le=1)]
# Settings of the score-threshold decision that the calibrated confidence replaced.
_REPLACED_MATCHING_KEYS = {"answer_threshold": "answer_confidence",
                           "clarify_threshold": "clarify_confidence", "clarify_margin": None}


class MatchingConfig(_Model):
    """How questions are matched to FAQ entries and when the bot answers (docs/matching.md)."""

    engine: Literal["hybrid", "lexical"] = "hybrid"  # hybrid: words and meaning
    model: str = "use-multilingual-v3"  # or package.module:factory for another model
    model_threads: Annotated[int, Field(ge=1, le=64)] = 1
    # Embeddings by question text, one file per model; null: kept in memory only.
    vector_cache: Path | None = Path("data/vectors")
    # The bot answers when it is at least this sure the best entry is what was asked (0-1);
    # between clarify_confidence and this it asks which was meant; below, it says so.
    answer_confidence: Confidence = 0.8
    clarify_confidence: Confidence = 0.3
    max_clarify_options: Annotated[int, Field(ge=2, le=5)] = 3
    misses_before_handoff: Annotated[int, Field(ge=1)] = 2
    # Processes that match questions beside kefu's own (bot/answering.py); 0: in its threads.
    processes: Annotated[int, Field(ge=0, le=16)] = 1
    process_start_seconds: Seconds = 60.0  # each loads the model

    @model_validator(mode="before")
    @classmethod
    def _replaced(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in _REPLACED_MATCHING_KEYS.items():
                if old in data:
                    raise ValueError(f"{old} is no longer used: the bot decides by a calibrated "
                                     "confidence" + (f"; set {new} (0-1) instead" if new else ""))
        return data

    @model_validator(mode="after")
    def _ordered(self) -> MatchingConfig:
        if self.clarify_confidence > self.answer_confidence:
            raise ValueError("clarify_confidence must not be above answer_confidence")
        return self


class HandoffConfig(_Model, BridgesConfig):
    request_phrases: list[str] = Field(
        default_factory=lambda: [
            "人工", "真人", "转接客服", "找客服", "human agent", "real person",
            "talk to a human", "speak to a human", "talk to someone", "speak to someone",
            "live agent", "customer service agent",
        ]
    )
    request_words: list[str] = Field(
        default_factory=lambda: ["客服", "agent", "human", "operator", "representative"]
    )
    complaint_phrases: list[str] = Field(
        default_factory=lambda: ["投诉", "举报", "complaint", "complain"]
    )
    # Who answers after a handoff: kefu's own desk (its console), or a helpdesk kefu bridges
    # to (handoff/bridges/, each with its settings under handoff.<name>), whose agents
    # answer in their own app.
    desk: str = "kefu"

    @model_validator(mode="after")
    def _bridge_configured(self) -> HandoffConfig:
        names = list(self.bridges())
        if self.desk != "kefu" and self.desk not in names:
            raise ValueError(f"desk: kefu, or a helpdesk kefu bridges to "
                             f"({', '.join(names)}); got {self.desk!r}")
        bridge = self.bridge()
        if bridge is not None and (missing := bridge.missing()):
            raise ValueError(f"desk is {self.desk}: set {self.desk}."
                             + f", {self.desk}.".join(missing))
        return self

    def bridge(self) -> BridgeSettings | None:
        """The settings of the helpdesk that is the desk; None for kefu's own."""
        return self.bridges().get(self.desk)


class TicketConfig(_Model):
    due_within_seconds: Seconds = 3600.0  # a message left while the desk is open
    overnight_due: time = time(10, 0)  # left outside hours: due then on the next working day


class ConsoleConfig(_Model):
    """The agents' console: what its inbox lists and what agents may add to a chat."""

    close_left_after_seconds: Seconds = 1800.0  # a held chat whose customer left: closed
    inbox_limit: Annotated[int, Field(ge=1)] = 200  # conversations listed per tab
    closed_days: Annotated[int, Field(ge=0)] = 7  # closed chats the inbox reaches back to
    max_note_chars: Annotated[int, Field(ge=1)] = 2000
    max_labels: Annotated[int, Field(ge=0)] = 10  # per conversation
    max_label_chars: Annotated[int, Field(ge=1)] = 20


class DeskConfig(_Model):
    """The service-desk rules: queue, agents, the 1-minute rule, offline messages."""

    agent_reply_seconds: Seconds = 60.0  # no agent reply in this long: a holding message
    auto_assign: bool = True  # give queued chats to the least busy online agent
    default_max_chats: Annotated[int, Field(ge=1)] = 5
    priorities: dict[str, int] = Field(default_factory=lambda: {"complaint": 1})
    abandon_after_seconds: Seconds = 60.0  # a queued web customer gone this long has left
    presence_timeout_seconds: Seconds = 90.0  # an online agent silent this long is offline
    session_hours: Seconds = 12.0
    # Wrong passwords: free tries per name and address together (so nobody can lock an agent
    # out from elsewhere), then a wait that doubles from login_backoff_seconds up to the
    # maximum; a looser count per address alone slows guessing many names. Shared through
    # the store by every process.
    login_free_attempts: Annotated[int, Field(ge=1)] = 5
    login_free_attempts_per_address: Annotated[int, Field(ge=1)] = 50
    login_backoff_seconds: Seconds = 2.0
    login_max_backoff_seconds: Seconds = 900.0
    secure_cookie: bool = False  # always mark the session cookie Secure (kefu behind TLS)
    tick_seconds: Seconds = 1.0  # how often timers are checked
    pace_window_seconds: Seconds = 1800.0  # queue updates estimate the wait from this long
    pace_min_assignments: Annotated[int, Field(ge=1)] = 3  # ...once this many were taken
    rating_window_seconds: Seconds = 1800.0  # a rating typed later than this is a new message
    max_reply_chars: Annotated[int, Field(ge=1)] = 4000
    banned_phrases: list[str] = Field(default_factory=lambda: ["差不多", "不清楚", "不知道"])
    curt_replies: list[str] = Field(  # banned as the whole reply
        default_factory=lambda: ["哦", "噢", "好吧", "嗯", "嗯嗯", "ok", "k"])
    quick_replies_path: Path = Path("quick_replies.yaml")
    tickets: TicketConfig = TicketConfig()
    console: ConsoleConfig = ConsoleConfig()


class AnswerTemplateLimits(_Model):
    """What an answer's jinja2 template may cost (knowledge_base/templates.py)."""

    render_ms: Annotated[float, Field(gt=0)] = 50.0  # at load time; slower fails the load
    loop_items: Annotated[int, Field(ge=1)] = 1000  # the most numbers range() may give
    output_chars: Annotated[int, Field(ge=1)] = 10000  # an answer longer than this is cut


class KnowledgeBaseConfig(_Model):
    path: Path = Path("kb")
    reload_interval_seconds: Seconds = 2.0
    regressions: Path = Path("regressions.yaml")  # questions whose answers must not change
    vocabulary: Path = Path("vocabulary.yaml")  # the shop's synonyms and small talk
    answer_templates: AnswerTemplateLimits = AnswerTemplateLimits()


class MetricsConfig(_Model):
    """Prometheus at /metrics. Served to `allow` only, or to whoever has the `token`."""

    enabled: bool = True
    allow: list[str] = Field(default_factory=lambda: [
        "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])
    token: str | None = None  # when set: `Authorization: Bearer <token>`, from any address

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return networks(value)


class LoggingConfig(_Model):
    format: Literal["text", "json"] = "text"  # json: one object per line, for log shippers
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    mask_personal_data: bool = True  # phones, emails, ID-card and bank-card numbers


class OwnerRule(_Model):
    """New customers matching this get `owner` (an agent's name) for follow-ups."""

    owner: str
    channel: str | None = None
    tag: str | None = None


class CrmConfig(_Model):
    """Customer records and complaint cases; see docs/crm.md."""

    owner_rules: list[OwnerRule] = Field(default_factory=list)  # the first that matches
    case_categories: list[str] = Field(default_factory=lambda: [
        "delivery", "product", "refund", "service", "other"])
    departments: list[str] = Field(default_factory=list)  # who a case can be given to
    case_due_hours: dict[str, float] = Field(default_factory=lambda: {
        "low": 72.0, "normal": 24.0, "high": 4.0, "urgent": 1.0})  # by severity
    follow_up_after_hours: Annotated[float, Field(gt=0)] = 24.0  # 回访 after a resolution
    repeat_days: Annotated[int, Field(ge=1)] = 7  # a complaint again within: a repeat

    @field_validator("case_due_hours")
    @classmethod
    def _has_normal(cls, value: dict[str, float]) -> dict[str, float]:
        if "normal" not in value:
            raise ValueError("needs a due time for severity 'normal'")
        return value


WEBHOOK_EVENTS = ("conversation.started", "conversation.handed_off", "conversation.assigned",
                  "conversation.closed", "rating.received", "ticket.created", "ticket.overdue",
                  "case.opened",
                  "case.resolved", "case.reopened", "follow_up.due")


class WebhookEndpoint(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    url: Annotated[str, Field(pattern=r"^https?://")]
    secret: Annotated[str, Field(min_length=16)]  # the HMAC-SHA256 key the receiver checks
    events: list[str] = Field(default_factory=lambda: ["*"])  # "*": all of them

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e != "*" and e not in WEBHOOK_EVENTS]
        if unknown:
            raise ValueError(f"unknown events {unknown}; known: {', '.join(WEBHOOK_EVENTS)}")
        return value


class WebhooksConfig(_Model):
    """Signed JSON events to other systems (a CRM...); see docs/webhooks.md."""

    endpoints: list[WebhookEndpoint] = Field(default_factory=list)
    public_url: str = ""  # kefu's address, for transcript links (https://kefu.example.com)
    timeout_seconds: Seconds = 5.0  # a slower endpoint counts as failed
    max_attempts: Annotated[int, Field(ge=1)] = 10
    first_retry_seconds: Seconds = 10.0  # doubled after each failure...
    max_retry_seconds: Seconds = 3600.0  # ...up to this
    tick_seconds: Seconds = 1.0
    batch: Annotated[int, Field(ge=1)] = 20  # deliveries sent at once


class ReportsConfig(_Model):
    max_days: Annotated[int, Field(ge=1)] = 366  # the longest period one report covers
    repeat_complaint_days: Annotated[int, Field(ge=1)] = 7  # a complaint again within: repeat
    top_unanswered: Annotated[int, Field(ge=1)] = 10  # unanswered questions listed


class StoreConfig(_Model):
    type: Literal["sqlite", "redis"] = "sqlite"
    path: Path = Path("data/kefu.sqlite3")  # sqlite
    synchronous: Literal["full", "normal"] = "full"  # sqlite
    url: str = "redis://127.0.0.1:6379/0"  # redis; rediss:// for TLS
    prefix: str = "kefu:"  # redis: every key starts with this ({kefu}: for Cluster)
    dedupe_seconds: Annotated[int, Field(ge=60)] = 7 * 86400  # redis: retries dropped this long
    sentinels: list[str] = Field(default_factory=list)  # redis: ["host:26379", ...]
    sentinel_master: str = "mymaster"
    cluster: bool = False  # redis: url names a Redis Cluster node
    max_connections: Annotated[int, Field(ge=2)] = 1000  # redis: a process's pool
    pool_timeout_seconds: Seconds = 15.0  # redis: a request waits this long for a connection
    lease_seconds: Annotated[float, Field(ge=1)] = 10.0  # redis: a dead process's leases last
    lease_poll_seconds: Seconds = 0.02  # redis: a busy lease is looked at again after this,
    lease_poll_max_seconds: Seconds = 0.5  # then twice as long each time, up to this
    lease_wait_seconds: Seconds = 30.0  # redis: a message that waits longer: not_stored
    catch_up_seconds: Seconds = 30.0  # redis: news missed in a break is looked for this long

    @model_validator(mode="after")
    def _one_slot_on_cluster(self) -> StoreConfig:
        if self.type == "redis" and self.cluster and not re.match(r"^[^{]*\{[^}]+\}",
                                                                  self.prefix):
            raise ValueError(f"prefix {self.prefix!r} has no hash tag: with cluster: true "
                             "give it one, such as \"{kefu}:\", so every key kefu's scripts "
                             "touch together lives in one slot")
        return self

    @model_validator(mode="after")
    def _leases_outlive_their_owner(self) -> StoreConfig:
        if self.lease_wait_seconds <= self.lease_seconds:
            raise ValueError("lease_wait_seconds must be longer than lease_seconds, or a "
                             "dead process's lease refuses every message until it runs out")
        return self

    def lease_timing(self) -> LeaseTiming:
        return LeaseTiming(self.lease_seconds, self.lease_poll_seconds,
                           self.lease_poll_max_seconds, self.lease_wait_seconds)


class RetentionConfig(_Model):
    """Days each kind of personal data is kept; 0 keeps it for ever (docs/privacy.md)."""

    transcripts: Annotated[int, Field(ge=0)] = 365  # closed conversations' messages
    customers: Annotated[int, Field(ge=0)] = 730  # records left with no conversation
    offline_messages: Annotated[int, Field(ge=0)] = 365
    cases: Annotated[int, Field(ge=0)] = 730  # closed complaint cases
    webhook_deliveries: Annotated[int, Field(ge=0)] = 30  # delivered or given up
    logs: Annotated[int, Field(ge=0)] = 365  # the access trail kefu writes in its store


class PrivacyConfig(_Model):
    """Customers' personal data: who sees it, what leaves masked, how long it is kept."""

    agents_read: Literal["held_or_offered", "all"] = "all"  # held_or_offered: least seen
    agents_see_contacts: Literal["full", "masked"] = "full"
    mask_webhooks: bool = True  # phones, emails, ID-card and bank-card numbers in payloads
    retention_days: RetentionConfig = RetentionConfig()
    purge_hour: Annotated[int, Field(ge=0, le=23)] = 3  # the daily purge, business time
    purge_check_seconds: Seconds = 300.0  # how often a process looks whether it is due


def networks(value: list[str]) -> list[str]:
    """Addresses settings like 10.0.0.0/8, each checked to be a network."""
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is not a network like 10.0.0.0/8") from None
    return value


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    workers: Annotated[int, Field(ge=1)] = 1  # processes on this machine (> 1: store redis)
    # uvloop (libuv) runs the sockets, timers and callbacks of `kefu serve` in C; asyncio is
    # Python's own loop, for debugging or a platform without uvloop wheels
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # The longest one part of stopping may take (a channel, a background loop, the store):
    # past it, kefu logs what that part is still waiting for and cancels it.
    stop_timeout_seconds: Seconds = 30.0
    # Proxies whose X-Forwarded-Proto is believed (the console's cookie is Secure when it
    # says https); networks like 127.0.0.1/32. Anyone else could send the header.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Python's garbage collector (gc.set_threshold). With Python's defaults (700, 10, 10),
    # kefu under 5,000 customers spent a quarter of its CPU in full collections, each one
    # pausing every customer for about 0.25 s; full ones are ten times rarer with these.
    gc_thresholds: tuple[PositiveInt, PositiveInt, PositiveInt] = (10_000, 20, 100)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return networks(value)

    @field_validator("gc_thresholds", mode="before")
    @classmethod
    def _three(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) != 3:
            raise ValueError("expected three whole numbers, like [10000, 20, 100] "
                             "(generations 0, 1 and 2)")
        return value


class Config(_Model):
    server: ServerConfig = ServerConfig()
    business: BusinessConfig = BusinessConfig()
    greeting: GreetingConfig = GreetingConfig()
    conversation: ConversationConfig = ConversationConfig()
    matching: MatchingConfig = MatchingConfig()
    handoff: HandoffConfig = HandoffConfig()
    texts: dict[str, dict[str, str]] = Field(default_factory=dict)
    knowledge_base: KnowledgeBaseConfig = KnowledgeBaseConfig()
    store: StoreConfig = StoreConfig()
    desk: DeskConfig = DeskConfig()
    reports: ReportsConfig = ReportsConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    crm: CrmConfig = CrmConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    channels: ChannelsConfig = ChannelsConfig()

    @model_validator(mode="after")
    def _greeting_for_default_language(self) -> Config:
        if self.business.default_language not in self.greeting.templates:
            raise ValueError(
                f"greeting.templates has no template for the default language "
                f"{self.business.default_language!r}"
            )
        return self

    @model_validator(mode="after")
    def _one_desk_per_channel(self) -> Config:
        """A channel whose platform's agents answer its handoffs (WeCom's servicers) and a
        bridged helpdesk as the desk would both claim them: refused, not guessed."""
        if self.handoff.desk == "kefu":
            return self
        for name, settings in self.channels.enabled().items():
            if (own := settings.own_agents()) is not None:
                raise ValueError(
                    f"channels.{name}.{own} and handoff.desk: {self.handoff.desk} both say who "
                    f"answers {name}'s handoffs; choose one (channels.{name}.agents: kefu "
                    f"sends them to {self.handoff.desk} with the other channels')")
        return self

    def resolve_paths(self, base: Path) -> Config:
        """Make relative paths relative to `base` (the config file's folder)."""
        kb = self.knowledge_base.model_copy(update={
            "path": base / self.knowledge_base.path,
            "regressions": base / self.knowledge_base.regressions,
            "vocabulary": base / self.knowledge_base.vocabulary})
        matching = self.matching.model_copy(update={"vector_cache": (
            base / self.matching.vector_cache if self.matching.vector_cache else None)})
        store = self.store.model_copy(update={"path": base / self.store.path})
        desk = self.desk.model_copy(
            update={"quick_replies_path": base / self.desk.quick_replies_path})
        return self.model_copy(update={"knowledge_base": kb, "store": store, "desk": desk,
                                       "matching": matching})


_SECRET_KEY = re.compile(r"secret|token|password|key")
_SECRET_SETTING = re.compile(r"(^|_)(secret|token|password|key)$")  # not token_url


def secrets_in(settings: BaseModel) -> frozenset[str]:
    """Every secret configured under `settings` (bot tokens, app secrets, AES keys, webhook
    secrets): what must never reach a log line."""
    found: set[str] = set()

    def walk(value: Any, name: str) -> None:
        if isinstance(value, BaseModel):
            for field in type(value).model_fields:
                walk(getattr(value, field), field)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, name)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, name)
        elif isinstance(value, str) and value and _SECRET_SETTING.search(name):
            found.add(value)

    walk(settings, "")
    return frozenset(found)


def _describe(error: Any) -> str:
    path = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling)"
    elif error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    secret = any(isinstance(p, str) and _SECRET_KEY.search(p) for p in error["loc"][-1:])
    if error["type"] not in ("missing", "extra_forbidden") and not secret and isinstance(
            error.get("input"), str | int | float | bool):  # never a whole section: secrets
        message += f" (got {error['input']!r:.60})"
    return f"{path}: {message}"


def load_config(path: Path) -> Config:
    """Read and validate `path`; every failure is a one-line `ConfigError`, naming the file
    or, for a value from the environment, the variable."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    variables = _apply_environment(raw, os.environ)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        line = f"{_blame(errors[0]['loc'], path, variables)}: {_describe(errors[0])}"
        if len(errors) > 1:
            line += f" (and {len(errors) - 1} more problem(s))"
        raise ConfigError(line) from None
    return config.resolve_paths(path.parent)


def _blame(loc: tuple[Any, ...], path: Path, variables: dict[tuple[str, ...], str]) -> str:
    """Where a wrong value came from: the variable that set it, or the file; for a
    section-wide problem, the file and the variables that set something in the section."""
    for keys, name in variables.items():
        if tuple(loc[:len(keys)]) == keys:
            return name
    inside = [name for keys, name in variables.items() if keys[:len(loc)] == tuple(loc)]
    return " and ".join([str(path), *inside])


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]
                       ) -> dict[tuple[str, ...], str]:
    """KEFU_SERVER__PORT=9000 overrides server.port: secrets and deploy settings stay out of
    git. A value takes the type of the setting it sets: text stays exactly as written
    (`abc #def`, `*secret`, `12345678`, `kefu2:`), numbers and true/false are read as the
    setting needs, a list is `a,b` or `[a, b]`, a mapping `{a: 1}`. Returns the key paths
    set, with the variable that set each."""
    variables: dict[tuple[str, ...], str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith("KEFU_") or "__" not in name:
            continue
        keys = tuple(name[len("KEFU_"):].lower().split("__"))
        node = raw
        for depth, key in enumerate(keys[:-1]):
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {'.'.join(keys[:depth + 1])} is a value, not a "
                                  "section of settings")
        node[keys[-1]] = _from_environment(name, value, _setting_type(keys))
        variables[keys] = name
    return variables


def _setting_type(keys: tuple[str, ...]) -> Any:
    """The type of the setting at `keys`, without constraints; None if there is none."""
    kind: Any = Config
    for key in keys:
        kind = _bare(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(key)
            if field is None:
                return None
            kind = field.annotation
        elif get_origin(kind) is dict:
            kind = get_args(kind)[1]
        else:
            return None
    return _bare(kind)


def _bare(kind: Any) -> Any:
    """`Annotated[int, ...]` is int; `str | None` is str."""
    if get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    if get_origin(kind) in (Union, types.UnionType):
        others = [k for k in get_args(kind) if k is not type(None)]
        kind = str if str in others else others[0] if len(others) == 1 else kind
    return kind


def _from_environment(name: str, text: str, kind: Any) -> Any:
    """Text for every scalar setting (pydantic reads numbers, true/false, times and dates
    from text as the setting needs); lists and mappings parsed, their items left as text."""
    structured = get_origin(kind) or kind
    is_list = structured in (list, tuple, set, frozenset)
    is_mapping = structured is dict or (isinstance(kind, type) and issubclass(kind, BaseModel))
    if not (is_list or is_mapping):
        return text
    if is_list and not text.lstrip().startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        value = yaml.load(text, Loader=yaml.BaseLoader)  # every scalar stays text
    except yaml.YAMLError:
        value = None
    if not isinstance(value, list if is_list else dict):
        raise ConfigError(f"{name}: expected {'a list: a,b or [a, b]' if is_list else 'a mapping'}"
                          f"{' like {a: 1}' if is_mapping else ''}")
    return value
