"""Stopping in bounded time: a part of kefu's stop that takes longer than
`server.stop_timeout_seconds` is named in the log with where it is waiting, then cancelled,
and the stop goes on with the next part. A stop that waited for ever would hold up a
restart (and a CI run) with nothing said about why.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

RECANCEL_SECONDS = 1.0  # a part still running this long after a cancel gets another
CANCELS = 3  # ...up to this many; one that outlasts them is left behind, and logged
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Context = Callable[[web.Application], AsyncIterator[None]]


async def bounded(what: str, work: Awaitable[Any], seconds: float,
                  watch: object | None = None) -> None:
    """Run `work` (a part of the stop); past `seconds`, log where it waits and cancel it.
    `watch` is what to describe when `work` hides it (an async generator being resumed).
    The part's own error is raised, as without the bound."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait([task], timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        task.result()
        return
    log.error("stopping: %s still running after %.1f s, waiting in %s; cancelled", what,
              seconds, waiting_in(watch if watch is not None else task))
    for _ in range(CANCELS):
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=RECANCEL_SECONDS)
        if done:
            break
    else:
        log.error("stopping: %s ignored %d cancels; left behind, waiting in %s", what,
                  CANCELS, waiting_in(watch if watch is not None else task))
        return
    if not task.cancelled() and task.exception() is not None:
        log.error("stopping: %s failed once cancelled", what, exc_info=task.exception())


def bounded_context(context: Callable[[web.Application], Any], seconds: float,
                    what: str | None = None) -> Context:
    """An aiohttp clean-up context (an async generator, or a function returning an async
    context manager) whose part after `yield`, its stop, is bounded."""
    name = what or str(getattr(context, "__qualname__", repr(context)))

    async def run(app: web.Application) -> AsyncIterator[None]:
        lifetime = context(app)
        if isinstance(lifetime, AbstractAsyncContextManager):
            await lifetime.__aenter__()
            yield
            await bounded(name, lifetime.__aexit__(None, None, None), seconds)
            return
        await anext(lifetime)
        yield
        await bounded(name, _finish(lifetime, name), seconds, watch=lifetime)

    run.__qualname__ = f"bounded({name})"
    return run


async def _finish(lifetime: AsyncIterator[None], name: str) -> None:
    try:
        await anext(lifetime)
    except StopAsyncIteration:
        return
    raise RuntimeError(f"{name}: a clean-up context must yield once")


def waiting_in(awaiting: object) -> str:
    """Where a task, coroutine or async generator waits: its chain of awaits, innermost
    last, and what the innermost awaits."""
    places: list[str] = []
    current: Any = awaiting
    for _ in range(64):
        if isinstance(current, asyncio.Task):
            current = current.get_coro()
        frame = next((getattr(current, a) for a in ("cr_frame", "ag_frame", "gi_frame")
                      if getattr(current, a, None) is not None), None)
        if frame is None:
            if current is not None and current is not awaiting:
                places.append(f"awaiting {_short_repr(current)}")
            break
        code = frame.f_code
        places.append(f"{_short_path(code.co_filename)}:{frame.f_lineno} "
                      f"{getattr(code, 'co_qualname', code.co_name)}")
        current = next((getattr(current, a) for a in ("cr_await", "ag_await", "gi_yieldfrom")
                        if getattr(current, a, None) is not None), None)
        if current is None:
            break
    return " → ".join(places) or "(nothing: it is not waiting)"


def _short_path(path: str) -> str:
    if path.startswith(_ROOT + os.sep) and os.sep + "site-packages" + os.sep not in path:
        return os.path.relpath(path, _ROOT)
    marker = os.sep + "site-packages" + os.sep
    if marker in path:
        return path.split(marker, 1)[1]
    return os.sep.join(path.split(os.sep)[-2:])


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
