"""The message types every channel produces and consumes.

Adapters turn their wire format into one frozen `InboundMessage`; the router answers with
`OutboundReply` values, which the store turns into `StoredMessage` rows of the transcript.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    SMALL_TALK = "small_talk"  # a polite word back to hello, thanks, goodbye...
    HANDOFF = "handoff"
    HOLDING = "holding"  # please wait: queue position, or an agent is checking
    NOTICE = "notice"  # an agent joined, a transfer, back to the bot
    OFFLINE = "offline"  # leaving a message (留言) while nobody is on duty
    RATING_REQUEST = "rating_request"
    RATING_THANKS = "rating_thanks"


# What kefu says by itself while the customer waits: on a channel with a quota of messages
# these never take the last ones (channels/tencent/window.py).
AUTOMATIC_KINDS = frozenset({Kind.HOLDING, Kind.NOTICE})


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
    display_name: str = ""  # the name the channel shows for the customer, if it gives one
    source: str | None = None  # where the customer came from (a Telegram deep link's payload)
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


def render_quick_replies_as_text(text: str, quick_replies: Sequence[str]) -> str:
    """Fallback for channels without buttons: quick replies become numbered lines."""
    if not quick_replies:
        return text
    return "\n".join([text, *(f"{i}. {q}" for i, q in enumerate(quick_replies, start=1))])


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def split_text(text: str, limit: int, size: Callable[[str], int] = len) -> list[str]:
    """Split a long reply into parts a channel accepts, preferring line breaks.

    `size` measures a part: characters by default, `utf8_size` for channels whose limit is
    in bytes (WeChat: 2048 bytes, about 680 Chinese characters)."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    parts: list[str] = []
    rest = text
    while size(rest) > limit:
        fits = _longest_prefix(rest, limit, size)
        cut = rest.rfind("\n", 0, fits + 1)
        if cut <= 0:
            cut = fits
        parts.append(rest[:cut].rstrip("\n"))
        rest = rest[cut:].lstrip("\n")
    if rest or not parts:
        parts.append(rest)
    return parts


def _longest_prefix(text: str, limit: int, size: Callable[[str], int]) -> int:
    """The number of characters of `text` whose size is at most `limit` (at least 1)."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if size(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def attachments_text(attachments: tuple[Attachment, ...]) -> str:
    """How a message that is only attachments reads in the transcript: '[image] [voice]'."""
    return " ".join(f"[{a.kind}]" for a in attachments)
