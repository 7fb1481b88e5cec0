"""The message types every channel produces and consumes.

Adapters turn their wire format into one frozen `InboundMessage`; the router answers with
`OutboundReply` values, which the store turns into `StoredMessage` rows of the transcript.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ConversationState(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    AGENT = "agent"
    CLOSED = "closed"


class Role(StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class Kind(StrEnum):
    """What an outbound message is for; clients style and reports count by it."""

    TEXT = "text"  # a customer's or agent's plain message
    GREETING = "greeting"
    ANSWER = "answer"
    CLARIFY = "clarify"
    FALLBACK = "fallback"  # the bot says plainly it has no answer
    HANDOFF = "handoff"
    HOLDING = "holding"  # please wait: queue position, or an agent is checking
    NOTICE = "notice"  # an agent joined, a transfer, back to the bot
    OFFLINE = "offline"  # leaving a message (留言) while nobody is on duty
    RATING_REQUEST = "rating_request"
    RATING_THANKS = "rating_thanks"


class InboundEvent(StrEnum):
    MESSAGE = "message"
    OPEN = "open"  # the customer opened the chat (widget `open`, WeChat `subscribe`, ...)
    RATING = "rating"  # the customer rated the conversation


@dataclass(frozen=True, slots=True)
class Attachment:
    kind: str  # image, file, voice, ...
    url: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One normalised event from a customer, whatever the channel."""

    channel: str
    user_id: str  # the customer's id on that channel (web visitor id, openid, ...)
    platform_msg_id: str | None  # the channel's own id, used to drop retries and resends
    text: str
    received_at: float  # unix seconds, taken when the adapter first saw the payload
    event: InboundEvent = InboundEvent.MESSAGE
    lang: str | None = None  # a hint from the client, if it sent one
    rating: int | None = None  # 1..5 with InboundEvent.RATING
    attachments: tuple[Attachment, ...] = ()
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class OutboundReply:
    """What the bot (or an agent) says; each adapter renders it for its wire."""

    text: str
    kind: Kind
    role: Role = Role.BOT
    quick_replies: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)  # match scores, handoff reason, ...


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One line of a conversation's transcript, as the store keeps it."""

    id: str
    conversation_id: str
    seq: int  # 1, 2, 3... within the conversation; clients resume "after seq N"
    role: Role
    kind: Kind
    text: str
    ts: float
    quick_replies: tuple[str, ...] = ()
    platform_msg_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def render_quick_replies_as_text(reply: OutboundReply) -> str:
    """Fallback for channels without buttons: quick replies become numbered lines."""
    if not reply.quick_replies:
        return reply.text
    lines = [reply.text, *(f"{i}. {q}" for i, q in enumerate(reply.quick_replies, start=1))]
    return "\n".join(lines)


def split_text(text: str, max_chars: int) -> list[str]:
    """Split a long reply into parts a channel accepts, preferring line breaks."""
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    parts: list[str] = []
    rest = text
    while len(rest) > max_chars:
        cut = rest.rfind("\n", 0, max_chars + 1)
        if cut <= 0:
            cut = max_chars
        parts.append(rest[:cut].rstrip("\n"))
        rest = rest[cut:].lstrip("\n")
    if rest or not parts:
        parts.append(rest)
    return parts
