"""What goes first when work queues up: greeting a new customer, then storing (and so
acknowledging) what customers wrote and what they are told, then everything else.

The router and the channels mark work by the step it belongs to; the embedded store's SQL
thread takes the highest level waiting first, and ends a group of lower work early when
higher work arrives. Without the levels a crowd's questions, each stored at once, kept a
newcomer's greeting waiting behind all of them (5 s with 5,000 customers asking).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import IntEnum


class Priority(IntEnum):
    NORMAL = 0  # answers' figures, events, timers
    STORE = 1  # storing a customer's message (they wait for its ack) and each reply to them
    GREETING = 2  # the 5-second greeting rule: a new customer's conversation and greeting


_priority: ContextVar[Priority] = ContextVar("priority", default=Priority.NORMAL)


def current_priority() -> Priority:
    return _priority.get()


@contextmanager
def priority(level: Priority) -> Iterator[None]:
    """Work in this block has `level`; `Priority.NORMAL` for what follows the urgent part
    of a step (storing a greeting already sent) and must not delay other greetings."""
    token = _priority.set(level)
    try:
        yield
    finally:
        _priority.reset(token)
