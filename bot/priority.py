"""Urgent work, such as greeting a new customer, goes ahead of everything waiting.

The router marks the steps of the 5-second greeting rule as urgent; the embedded store's
SQL thread runs urgent work before the writes that answers queue up under load.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_urgent: ContextVar[bool] = ContextVar("urgent", default=False)


def is_urgent() -> bool:
    return _urgent.get()


@contextmanager
def urgent(really: bool = True) -> Iterator[None]:
    """Work in this block is urgent; `urgent(False)` for what follows the urgent part
    of a step (storing a greeting already sent) and must not delay other greetings."""
    token = _urgent.set(really)
    try:
        yield
    finally:
        _urgent.reset(token)
