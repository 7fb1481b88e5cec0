"""Progress on stderr: a bar on a terminal, a line every few seconds in a log, nothing for a
quick job."""

from __future__ import annotations

import io
from collections.abc import Iterator

from bot.progress import progress


class Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def ticking(step: float) -> Iterator[float]:
    """A clock that moves `step` seconds each time it is read."""
    now = 0.0
    while True:
        yield now
        now += step


def run(items: int, step: float, terminal: bool) -> str:
    stream, clock = Stream(terminal), ticking(step)
    assert list(progress(range(items), items, "reading", stream=stream,
                         clock=lambda: next(clock))) == list(range(items))
    return stream.getvalue()


def test_a_quick_job_shows_nothing() -> None:
    assert run(4, 0.01, terminal=True) == ""
    assert run(4, 0.01, terminal=False) == ""


def test_a_terminal_gets_a_bar_redrawn_in_place() -> None:
    shown = run(200, 0.125, terminal=True)
    assert shown.count("\n") == 1 and shown.endswith("100%   25.1 s\x1b[K\n")
    frames = shown.split("\r")[1:]
    assert 50 < len(frames) <= 101  # when the percentage moves, not for every item
    assert "[############             ]  50%" in shown and "s left" in shown


def test_a_log_gets_a_line_every_few_seconds() -> None:
    lines = run(200, 0.125, terminal=False).splitlines()
    assert "\r" not in "".join(lines)
    assert lines == ["  reading: 40/200 (20%), 5 s", "  reading: 80/200 (40%), 10 s",
                     "  reading: 120/200 (60%), 15 s", "  reading: 160/200 (80%), 20 s",
                     "  reading: 200/200 (100%), 25 s", "  reading: 200/200 in 25.1 s"]
