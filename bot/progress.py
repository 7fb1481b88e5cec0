"""Progress of a long job on stderr: a bar on a terminal, a line every few seconds in a log,
nothing for a job that is over quickly.

Hand-written rather than tqdm or rich: both draw frames with carriage returns on any
stream, so a log would still fill with redrawn bars (tqdm's alternative, `disable=None`, is
silence, and rich prints only the last frame), and kefu would need this module's log lines
all the same; the bar itself is a dozen lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

DELAY_SECONDS = 1.0  # a job over sooner shows nothing
LOG_EVERY_SECONDS = 5.0  # not a terminal: a line this often
REDRAW_SECONDS = 0.2  # a terminal's bar, at most this often (or when the percentage moves)
BAR = 25


def progress(items: Iterable[T], total: int, label: str, *, stream: TextIO | None = None,
             clock: Callable[[], float] = time.monotonic, delay: float = DELAY_SECONDS,
             every: float = LOG_EVERY_SECONDS) -> Iterator[T]:
    """Yield `items`, telling how far along they are (`total` of them expected)."""
    out = stream if stream is not None else sys.stderr
    terminal = out.isatty()
    started = clock()
    told_at: float | None = None  # when something was last written
    drawn = -1
    done = 0
    try:
        for done, item in enumerate(items, start=1):
            yield item
            now = clock()
            if now - started < delay:
                continue
            percent = min(100, done * 100 // max(total, 1))
            if terminal:
                if percent != drawn or told_at is None or now - told_at >= REDRAW_SECONDS:
                    out.write(_bar(label, done, total, percent, now - started))
                    out.flush()
                    drawn, told_at = percent, now
            elif now - (told_at if told_at is not None else started) >= every:
                out.write(f"  {label}: {done}/{total} ({percent}%), {now - started:.0f} s\n")
                out.flush()
                told_at = now
    finally:
        elapsed = clock() - started
        if terminal and told_at is not None:
            out.write(_bar(label, done, total, min(100, done * 100 // max(total, 1)), elapsed)
                      + "\n")
        elif not terminal and elapsed >= delay:
            out.write(f"  {label}: {done}/{total} in {elapsed:.1f} s\n")
        out.flush()


def _bar(label: str, done: int, total: int, percent: int, elapsed: float) -> str:
    left = ""
    if 0 < done < total:
        left = f", ~{elapsed / done * (total - done):.0f} s left"
    return (f"\r  {label:<34} [{'#' * (percent * BAR // 100):<{BAR}}] {percent:3d}%  "
            f"{elapsed:5.1f} s{left}\033[K")


def note(text: str) -> None:
    sys.stderr.write(f"  {text}\n")
    sys.stderr.flush()
