"""A progress bar on stderr, without a dependency."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    started = time.monotonic()
    shown = -1
    for done, item in enumerate(items, start=1):
        yield item
        percent = done * 100 // max(total, 1)
        if percent != shown:
            shown = percent
            bar = "#" * (percent // 4)
            elapsed = time.monotonic() - started
            sys.stderr.write(f"\r  {label:<34} [{bar:<25}] {percent:3d}%  {elapsed:5.1f} s")
            sys.stderr.flush()
    sys.stderr.write("\n")


def note(text: str) -> None:
    sys.stderr.write(f"  {text}\n")
    sys.stderr.flush()
