"""Stopping in bounded time: a part that would wait for ever is named, with where it waits,
and cancelled."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.stopping import bounded, bounded_context


async def wait_for_a_reply_that_never_comes() -> None:
    await asyncio.Event().wait()


async def test_a_part_that_waits_for_ever_is_cancelled_and_named(
        caplog: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()
    await asyncio.wait_for(bounded("the test part", wait_for_a_reply_that_never_comes(), 0.2),
                           5)
    assert time.monotonic() - started < 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "the test part still running after 0.2 s" in line
    assert "wait_for_a_reply_that_never_comes" in line and "Event.wait" in line


async def test_a_part_that_ignores_cancels_is_left_behind_in_bounded_time(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.stopping.RECANCEL_SECONDS", 0.05)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # swallowed

    started = time.monotonic()
    task = asyncio.ensure_future(stubborn())
    await asyncio.wait_for(bounded("stubborn", task, 0.1), 5)
    assert time.monotonic() - started < 2
    assert not task.done()
    assert any("stubborn ignored 3 cancels; left behind" in r.getMessage()
               for r in caplog.records)
    release.set()
    await task


async def test_a_part_that_ends_in_time_keeps_its_error() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await bounded("failing part", fails(), 1)


async def test_a_clean_up_context_whose_stop_hangs_is_bounded(
        caplog: pytest.LogCaptureFixture) -> None:
    stopped: list[str] = []

    async def lifetime(app: Any) -> AsyncIterator[None]:
        yield
        stopped.append("began")
        await wait_for_a_reply_that_never_comes()
        stopped.append("never")

    context = bounded_context(lifetime, 0.2)(None)  # type: ignore[arg-type]
    await anext(context)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(context), 5)
    assert stopped == ["began"]
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "lifetime" in line and "wait_for_a_reply_that_never_comes" in line
