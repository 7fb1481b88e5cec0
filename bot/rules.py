"""Rules that move a conversation to a person: an explicit request or a complaint."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from bot.config import HandoffConfig
from bot.text import normalize


class HandoffTrigger(StrEnum):
    REQUEST = "request"  # the customer asked for a person
    COMPLAINT = "complaint"
    MISSES = "misses"  # the bot could not answer, twice in a row
    ENTRY = "entry"  # an FAQ entry marked `handoff: true` was answered


@lru_cache(maxsize=32)
def _normalized(phrases: tuple[str, ...]) -> tuple[str, ...]:
    """The configured phrases, normalized once rather than for every message."""
    return tuple(normalize(p) for p in phrases)


def detect_handoff(text: str, config: HandoffConfig) -> HandoffTrigger | None:
    """Complaint phrases and request phrases count anywhere in the message; request words
    (客服, agent...) only as the whole message, so '客服电话是多少' stays an FAQ question."""
    normalized = normalize(text)
    if any(p in normalized for p in _normalized(tuple(config.complaint_phrases))):
        return HandoffTrigger.COMPLAINT
    if any(p in normalized for p in _normalized(tuple(config.request_phrases))):
        return HandoffTrigger.REQUEST
    if normalized in _normalized(tuple(config.request_words)):
        return HandoffTrigger.REQUEST
    return None
