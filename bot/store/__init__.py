"""Conversation state, transcripts, agents and tickets behind one interface.

`SqliteStore` is the embedded default; a Redis backend implements the same `Store` protocol
and runs the same contract tests (tests/bot/store/test_contract.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from redis.exceptions import RedisError

from bot.messages import ConversationState, Kind, Role, StoredMessage

# What a store raises when it cannot be reached or written for now (Redis restarting or
# unreachable, a disk that is full or locked): the work it interrupted is left unsettled,
# for recovery to finish once the store is back.
STORE_OUTAGES: tuple[type[Exception], ...] = (RedisError, sqlite3.OperationalError)


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    channel: str
    user_id: str
    state: ConversationState
    lang: str
    created_at: float
    last_activity_at: float
    consecutive_misses: int = 0
    handoff_reason: str | None = None
    queued_at: float | None = None
    closed_at: float | None = None
    rating: int | None = None
    greeting_latency_ms: float | None = None
    greeting_breach: str | None = None  # why the greeting was late, when it was
    last_holding_at: float | None = None  # when the customer was last told to wait
    agent_id: str | None = None  # who holds the conversation in state `agent`
    priority: int = 0  # higher is served first in the queue (complaints)
    assigned_at: float | None = None
    awaiting_agent_since: float | None = None  # the customer's oldest message with no reply
    agent_read_seq: int = 0  # the agent has seen the transcript up to here
    close_reason: str | None = None  # resolved, abandoned, idle
    rating_requested_at: float | None = None
    offline_step: str | None = None  # leaving a message (留言): "question" or "contact"
    ticket_id: str | None = None  # the offline message this conversation left
    source: str | None = None  # where the customer came from: a deep link's payload, say


@dataclass(frozen=True, slots=True)
class NewMessage:
    role: Role
    kind: Kind
    text: str
    ts: float
    quick_replies: tuple[str, ...] = ()
    platform_msg_id: str | None = None  # inbound only: the key retries are dropped by
    meta: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # appending it again (a retried call) returns the first copy


@dataclass(frozen=True, slots=True)
class Received:
    """A customer's message as stored, and their messages of the same conversation that
    were still unsettled then, oldest first (a crash or a store outage left them)."""

    message: StoredMessage
    earlier: tuple[StoredMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class UnansweredQuestion:
    conversation_id: str
    text: str
    best_entry_id: str | None
    best_score: float | None
    ts: float


class AgentRole(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"  # may also act on other agents' chats


class Presence(StrEnum):
    ONLINE = "online"  # takes chats
    AWAY = "away"  # keeps their chats, gets no new ones
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str
    role: AgentRole
    max_chats: int
    password_hash: str
    created_at: float
    presence: Presence = Presence.OFFLINE
    last_seen_at: float | None = None
    disabled: bool = False  # a supervisor stopped the account: no login, no chats


@dataclass(frozen=True, slots=True)
class AgentSession:
    token_hash: str  # sha256 of the cookie or bearer token; the token itself is not kept
    agent_id: str
    csrf_token: str
    created_at: float
    expires_at: float


class Notice(StrEnum):
    """What the console tells an agent about with a sound and a desktop notification."""

    NEW_CHAT = "new_chat"  # a customer joined the queue
    CUSTOMER_MESSAGE = "customer_message"  # a customer wrote in one of my chats
    BREACH = "breach"  # one of my customers has waited past the 1-minute rule


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """An agent's own choices in the console, kept across devices."""

    agent_id: str
    lang: str = "zh"  # the console's language: zh or en
    muted: tuple[str, ...] = ()  # `Notice` values the agent silenced


@dataclass(frozen=True, slots=True)
class Note:
    """A private note on a conversation: agents read it, the customer never does."""

    id: str
    conversation_id: str
    agent_id: str
    text: str
    created_at: float


class TicketStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Ticket:
    """An offline message (留言): left when nobody was on duty, answered by its due time."""

    id: str
    conversation_id: str
    channel: str
    user_id: str
    lang: str
    question: str
    contact: str
    created_at: float
    due_at: float
    status: TicketStatus = TicketStatus.OPEN
    done_at: float | None = None
    done_by: str | None = None  # agent id
    note: str = ""
    overdue_told: bool = False  # other systems heard that it is overdue (ticket.overdue)


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """What happened to a conversation and when: the record reports are made from."""

    conversation_id: str
    ts: float
    type: str  # queued, assigned, transferred, handed_back, closed, abandoned, reply_breach...
    agent_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Customer:
    """A person, whatever channels they write on: their record for agents."""

    id: str
    created_at: float
    updated_at: float
    name: str = ""
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    verified: tuple[str, ...] = ()  # phones and emails an agent confirmed belong to them
    tags: tuple[str, ...] = ()
    notes: tuple[dict[str, Any], ...] = ()  # {"at", "by", "text"}, oldest first
    owner_id: str | None = None  # the agent who follows the customer up
    merged_into: str | None = None  # this record now lives on in another one


@dataclass(frozen=True, slots=True)
class Identity:
    """A customer's id on one channel (web visitor id, openid, QQ openid...)."""

    channel: str
    user_id: str
    customer_id: str
    display_name: str = ""
    first_seen_at: float = 0.0


class CaseStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"  # waiting for the follow-up (回访)
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Case:
    """A complaint, tracked until the customer is satisfied."""

    id: str
    customer_id: str
    conversation_id: str
    created_at: float
    due_at: float
    summary: str
    category: str = ""
    severity: str = "normal"
    owner_id: str | None = None  # the agent responsible
    department: str = ""
    status: CaseStatus = CaseStatus.OPEN
    repeat_of: str | None = None  # the same customer's earlier complaint, within the window
    timeline: tuple[dict[str, Any], ...] = ()  # {"at", "by", "what", "note"}, oldest first
    resolved_at: float | None = None
    follow_up_due_at: float | None = None
    follow_up_at: float | None = None
    satisfied: bool | None = None  # the follow-up's answer


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # to be sent (again) at `next_at`
    DELIVERED = "delivered"
    FAILED = "failed"  # given up after the last attempt; shown to supervisors


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event for one endpoint, kept until the endpoint took it or kefu gave up."""

    id: str
    event_id: str  # the same for every endpoint: receivers drop repeats by it
    endpoint: str
    type: str
    body: str  # the JSON as signed and sent, the same on every attempt
    created_at: float
    next_at: float
    attempts: int = 0
    status: DeliveryStatus = DeliveryStatus.PENDING
    last_error: str = ""
    delivered_at: float | None = None


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One look at, export of or change to personal data: who, what, when and from where.
    The access trail is append-only: no store method changes a record."""

    at: float
    actor: str  # the agent's name, or "cli:<user>" for the command line
    action: str  # opened_conversation, opened_transcript, opened_customer, exported, erased...
    subject: str  # the conversation's or customer's id, or what was exported
    address: str = ""  # the client's IP address; "local" for the command line
    detail: dict[str, Any] = field(default_factory=dict)


# What an anonymised message keeps besides role, kind and time: what reports count by.
ANONYMOUS_META = frozenset({"agent_id", "agent_name", "decision", "entry", "reason"})


def anonymous(message: StoredMessage) -> StoredMessage:
    """The message without anything the customer (or an agent, about them) wrote."""
    return replace(message, text="", quick_replies=(), platform_msg_id=None,
                   meta={k: v for k, v in message.meta.items() if k in ANONYMOUS_META})


def open_one(latest: Conversation | None) -> Conversation | None:
    """The customer's current conversation, from their newest: a new one begins only once
    the one before is closed (the router's rule), so no older one is open."""
    return latest if latest is not None and latest.state is not ConversationState.CLOSED \
        else None


def goes_on(latest: Conversation | None, idle_before: float) -> bool:
    """Whether a customer's newest conversation is the one their next event belongs to:
    open, and unless people have it, active after `idle_before` (else a new one begins)."""
    return latest is not None and latest.state is not ConversationState.CLOSED and (
        latest.state is not ConversationState.BOT or latest.last_activity_at > idle_before)


class Store(Protocol):
    # conversations

    async def current_conversation(self, channel: str, user_id: str) -> Conversation | None:
        """The customer's newest conversation, unless it is closed (`open_one`)."""

    async def latest_conversation(self, channel: str, user_id: str) -> Conversation | None:
        """The customer's newest conversation, closed or not."""

    async def begin_unless_open(self, new: Conversation, greeting: NewMessage,
                                idle_before: float
                                ) -> tuple[Conversation | None, StoredMessage | None]:
        """The customer's newest conversation (`new`'s channel and user), and, unless it
        goes on (`goes_on`), `greeting` appended to `new`: a newcomer opening the chat is
        greeted after one operation of the store, not two (the embedded store's one SQL
        operation; on Redis a read, then the append)."""

    async def conversations_of(self, channel: str, user_id: str) -> list[Conversation]:
        """All of the customer's conversations, newest first."""

    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    async def save_conversation(self, conversation: Conversation,
                                settled: Sequence[int] = (),
                                deliveries: Sequence[WebhookDelivery] = ()) -> None:
        """Insert or replace the conversation; its messages of the `settled` seqs are
        settled in the same write (a customer message handled and the replies delivered:
        one round trip, not one each), and `deliveries` are queued in it too (see
        `save_ticket`)."""

    async def conversations_in_state(self, state: ConversationState) -> list[Conversation]:
        """Queued ones in queue order (priority, then time queued); others oldest first.
        Not for `closed`, which grows without bound."""

    async def conversations_created(self, since: float, until: float) -> list[Conversation]:
        """Conversations begun at or after `since` and before `until`, oldest first: what
        reports count."""

    async def queue_position(self, conversation_id: str) -> int | None:
        """1 for the first in the queue; None when the conversation is not queued."""

    # transcript

    async def append_message(
        self, conversation: Conversation, message: NewMessage
    ) -> StoredMessage | None:
        """Add to the transcript; None when `platform_msg_id` was already stored for this
        customer on this channel (a retry or resend), in which case nothing is written. A
        message whose `id` was appended already (within the hour, for Redis) is returned as
        stored then: a call run twice, after its first reply was lost, adds one copy."""

    async def append_inbound(
        self, conversation: Conversation, message: NewMessage
    ) -> Received | None:
        """`append_message` for what a customer said, telling in the same step which of
        their messages before it are unsettled: the router answers those first, and in the
        usual case (none) that costs no second trip to the store."""

    async def messages(self, conversation_id: str, after_seq: int = 0) -> list[StoredMessage]:
        """The transcript after `after_seq`, oldest first."""

    async def settle(self, conversation_id: str, seq: int) -> None:
        """The message is done with: a customer's handled, a reply delivered (or refused
        for good). Every appended message is unsettled until then."""

    async def unsettled(self, before: float, conversation_id: str | None = None
                        ) -> list[StoredMessage]:
        """Messages appended before `before` and not settled, oldest first: what a crash
        left half-done, for recovery to finish; of one conversation when given."""

    async def record_unanswered(self, question: UnansweredQuestion) -> None: ...

    async def unanswered(self, since: float = 0.0) -> list[UnansweredQuestion]: ...

    # agents and their sessions

    async def save_agent(self, agent: Agent) -> None:
        """Insert or replace; names are unique (ValueError for a name taken by another id)."""

    async def update_agent(self, agent_id: str, *, presence: Presence | None = None,
                           last_seen_at: float | None = None, password_hash: str | None = None,
                           disabled: bool | None = None) -> None:
        """Change only these fields, so a presence change and activity never undo each
        other; nothing happens for an unknown id."""

    async def delete_agent(self, agent_id: str) -> None:
        """The account and its sessions go; conversations keep the agent's id."""

    async def get_agent(self, agent_id: str) -> Agent | None: ...

    async def agent_by_name(self, name: str) -> Agent | None: ...

    async def agents(self) -> list[Agent]:
        """Every agent, by name."""

    async def save_session(self, session: AgentSession) -> None: ...

    async def get_session(self, token_hash: str) -> AgentSession | None: ...

    async def delete_session(self, token_hash: str) -> None: ...

    async def end_sessions(self, agent_id: str, keep: str | None = None) -> None:
        """Every session of the agent ends, except the one whose hash is `keep` (a
        password changed: whoever knew the old one is logged out)."""

    async def save_agent_settings(self, settings: AgentSettings) -> None: ...

    async def agent_settings(self, agent_id: str) -> AgentSettings:
        """The agent's settings; the defaults for one who never chose."""

    # what agents add to conversations: private notes and labels

    async def add_note(self, note: Note) -> None: ...

    async def notes(self, conversation_id: str) -> list[Note]:
        """The conversation's notes, oldest first."""

    async def set_labels(self, conversation_id: str, labels: Sequence[str]) -> None:
        """Replace the conversation's labels."""

    async def labels(self, conversation_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Each conversation's labels, sorted; conversations without any are left out."""

    # offline messages and the event record

    async def save_ticket(self, ticket: Ticket, deliveries: Sequence[WebhookDelivery] = ()
                          ) -> None:
        """Insert or replace; `deliveries` (the webhooks that announce the change) are
        queued in the same write, so a crash keeps both or neither. So for events and cases."""

    async def get_ticket(self, ticket_id: str) -> Ticket | None: ...

    async def tickets(self, status: TicketStatus | None = None) -> list[Ticket]:
        """Tickets by due time, soonest first; only those of `status` when given."""

    async def record_event(self, event: ConversationEvent,
                           deliveries: Sequence[WebhookDelivery] = ()) -> None: ...

    # customers and their complaints

    async def save_customer(self, customer: Customer) -> None: ...

    async def get_customer(self, customer_id: str) -> Customer | None: ...

    async def save_identity(self, identity: Identity) -> None:
        """Insert or replace (moving an identity to another customer replaces it)."""

    async def claim_identity(self, identity: Identity) -> Identity:
        """Insert unless the channel identity already belongs to a customer; the identity
        that holds (another process's, when it claimed it first)."""

    async def identity(self, channel: str, user_id: str) -> Identity | None: ...

    async def identities_of(self, customer_id: str) -> list[Identity]:
        """The customer's identities, first seen first."""

    async def customers_with_contact(self, contact: str) -> list[Customer]:
        """Customers (not merged away) who gave this phone number or email."""

    async def customers(self, since: float = 0.0) -> list[Customer]:
        """Customers (not merged away) created since `since`, oldest first."""

    async def save_case(self, case: Case, deliveries: Sequence[WebhookDelivery] = ()
                        ) -> None: ...

    async def get_case(self, case_id: str) -> Case | None: ...

    async def cases(self, customer_id: str | None = None) -> list[Case]:
        """Cases by due time, soonest first; of one customer when given."""

    # outbound webhooks

    async def save_delivery(self, delivery: WebhookDelivery) -> None:
        """Insert or replace."""

    async def due_deliveries(self, now: float, limit: int) -> list[WebhookDelivery]:
        """Pending deliveries whose time has come, soonest first."""

    async def deliveries(self, status: DeliveryStatus | None = None, limit: int = 100
                         ) -> list[WebhookDelivery]:
        """The newest deliveries first; only those of `status` when given."""

    # channel state (access tokens, delivery windows, sync cursors)

    async def load_state(self, key: str) -> dict[str, Any] | None:
        """What a channel saved under `key`, shared by every kefu process."""

    async def save_state(self, key: str, value: dict[str, Any]) -> None: ...

    async def count_failure(self, key: str, now: float, forget_after: float) -> int:
        """Count one more failure under `key` (a login's name and address) and return the
        count; a count is forgotten `forget_after` seconds after its last failure. Atomic,
        so processes sharing the store share the count."""
        ...

    async def failures(self, key: str, now: float) -> tuple[int, float]:
        """The failures counted under `key` and when the last was (0, 0.0: none)."""
        ...

    async def clear_failures(self, key: str) -> None: ...

    async def events(self, conversation_id: str | None = None, since: float = 0.0
                     ) -> list[ConversationEvent]:
        """Events in time order, of one conversation or of all."""

    # personal data: the access trail, erasure and retention (docs/privacy.md)

    async def record_access(self, record: AccessRecord) -> None:
        """Append to the access trail."""

    async def access_trail(self, since: float = 0.0, until: float = float("inf"),
                           limit: int = 1000) -> list[AccessRecord]:
        """The trail from `since` (included) to `until` (excluded), oldest first, at most
        `limit` records (the newest of them)."""

    async def forget_access_before(self, before: float) -> int:
        """Retention: records older than `before` go; how many went."""

    async def anonymise_conversation(self, conversation_id: str, pseudonym: str) -> bool:
        """The conversation stays for the figures under `pseudonym` instead of the customer's
        channel id; its messages keep their role, kind, time and the agent who wrote them,
        not their text; its dedupe keys, unsettled marks and unanswered questions go. False
        for an unknown conversation."""

    async def delete_customer(self, customer_id: str) -> list[str]:
        """The record, every record merged into it, their identities and contact index;
        the ids of the records deleted."""

    async def delete_case(self, case_id: str) -> None: ...

    async def delete_deliveries(self, delivery_ids: Sequence[str]) -> None: ...

    async def state_keys(self) -> list[str]:
        """Every key of `save_state`, for erasure to find a customer's."""

    async def delete_state(self, key: str) -> None: ...

    async def close(self) -> None: ...
