"""Lanes: one customer's jobs in order; waiting for them never stops them."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot.cluster import LeaseUnavailable
from bot.lanes import Lanes


async def test_a_wait_for_idle_that_times_out_leaves_the_queued_jobs_to_run() -> None:
    # Shutdown waits for the lanes with a grace: when it runs out, the jobs behind the one
    # running must still run (before, the lane was cancelled with the wait, and whoever
    # waited for a queued job, a Telegram update waiting to be stored, waited for ever).
    lanes, release, ran = Lanes(), asyncio.Event(), []

    async def slow() -> None:
        await release.wait()
        ran.append("slow")

    async def queued() -> None:
        ran.append("queued")

    lanes.submit(("telegram", "1"), slow)
    behind = asyncio.ensure_future(lanes.run(("telegram", "1"), queued))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(lanes.idle(), 0.1)
    release.set()
    await asyncio.wait_for(behind, 2)
    assert ran == ["slow", "queued"]
    await asyncio.wait_for(lanes.idle(), 2)


async def test_a_cancelled_lane_refuses_the_jobs_behind_rather_than_stranding_them() -> None:
    lanes, started = Lanes(), asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async def queued() -> str:
        return "never"

    lanes.submit(("telegram", "2"), forever)
    behind = asyncio.ensure_future(lanes.run(("telegram", "2"), queued))
    await started.wait()
    (lane,) = lanes._lanes.values()
    assert lane.task is not None
    lane.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await lane.task
    with pytest.raises(LeaseUnavailable):
        await asyncio.wait_for(behind, 2)
    await asyncio.wait_for(lanes.idle(), 2)
    assert lanes._lanes == {}
