"""Offline messages (留言): when they are due, and the contact a customer typed."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from bot.config import TicketConfig
from bot.hours import BusinessHours

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Mainland mobile numbers (with or without +86), then landlines with an area code (0...) and
# international numbers (+...). Other runs of digits are order numbers and dates, not phones.
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
_PHONE = re.compile(r"(?<![\d.])(?:\+|0)\d[\d -]{5,18}\d(?![\d.])")
SKIP_WORDS = frozenset(("跳过", "不用", "不用了", "算了", "没有", "取消", "skip", "no", "none",
                        "no thanks", "cancel"))


def extract_contact(text: str) -> str | None:
    """The first email address or phone number in `text`, as typed; None if there is none."""
    for pattern in (_EMAIL, _MOBILE, _PHONE):
        match = pattern.search(text)
        if match and (pattern is not _PHONE or sum(c.isdigit() for c in match.group()) >= 7):
            return match.group().strip()
    return None


def is_skip(text: str) -> bool:
    return text.strip().strip("。.!！").casefold() in SKIP_WORDS


def due_time(now: datetime, hours: BusinessHours, config: TicketConfig) -> datetime:
    """Within `due_within_seconds` while the desk is open; otherwise by `overnight_due` on
    the next working day (never before that day's opening), e.g. 10:00 tomorrow."""
    if hours.is_open(now):
        return now + timedelta(seconds=config.due_within_seconds)
    opening = hours.next_opening(now)
    if opening is None:  # no staffed hours configured at all
        return now + timedelta(seconds=config.due_within_seconds)
    due = opening.replace(hour=config.overnight_due.hour, minute=config.overnight_due.minute,
                          second=0, microsecond=0)
    return max(due, opening)
