"""Conversation state and transcripts behind one interface.

`SqliteStore` is the embedded default; a Redis backend implements the same `Store` protocol
and runs the same contract tests (tests/bot/store/test_contract.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.messages import ConversationState, Kind, Role, StoredMessage


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
    last_holding_at: float | None = None  # when a queued customer was last told to wait


@dataclass(frozen=True, slots=True)
class NewMessage:
    role: Role
    kind: Kind
    text: str
    ts: float
    quick_replies: tuple[str, ...] = ()
    platform_msg_id: str | None = None  # inbound only: the key retries are dropped by
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UnansweredQuestion:
    conversation_id: str
    text: str
    best_entry_id: str | None
    best_score: float | None
    ts: float


class Store(Protocol):
    async def current_conversation(self, channel: str, user_id: str) -> Conversation | None:
        """The customer's newest conversation that is not closed."""

    async def latest_conversation(self, channel: str, user_id: str) -> Conversation | None:
        """The customer's newest conversation, closed or not."""

    async def conversations_of(self, channel: str, user_id: str) -> list[Conversation]:
        """All of the customer's conversations, newest first."""

    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    async def save_conversation(self, conversation: Conversation) -> None:
        """Insert or replace the conversation."""

    async def append_message(
        self, conversation: Conversation, message: NewMessage
    ) -> StoredMessage | None:
        """Add to the transcript; None when `platform_msg_id` was already stored for this
        customer on this channel (a retry or resend), in which case nothing is written."""

    async def messages(self, conversation_id: str, after_seq: int = 0) -> list[StoredMessage]:
        """The transcript after `after_seq`, oldest first."""

    async def record_unanswered(self, question: UnansweredQuestion) -> None: ...

    async def unanswered(self, since: float = 0.0) -> list[UnansweredQuestion]: ...

    async def queue_position(self, conversation_id: str) -> int | None:
        """1 for the first in the queue; None when the conversation is not queued."""

    async def close(self) -> None: ...
