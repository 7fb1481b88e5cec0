"""Offline messages (留言): when they are due, and the contact a customer typed."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.config import TicketConfig
from bot.hours import BusinessHours
from handoff.contacts import contacts_in

SKIP_WORDS = frozenset(("跳过", "不用", "不用了", "算了", "没有", "取消", "skip", "no", "none",
                        "no thanks", "cancel"))


def extract_contact(text: str) -> str | None:
    """The first email address or phone number in `text`, as typed; None if there is none."""
    found = contacts_in(text)
    return found[0].typed if found else None


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
