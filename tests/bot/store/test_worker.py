"""The embedded store's SQL thread: a newcomer's greeting is not stored behind a crowd."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from bot.priority import Priority
from bot.store.worker import SqlWorker


async def open_worker(tmp_path: Path) -> SqlWorker:
    worker = SqlWorker("test-sql")

    def connect() -> None:
        worker.db = sqlite3.connect(tmp_path / "w.sqlite3", check_same_thread=False,
                                    isolation_level=None)
        worker.db.execute("CREATE TABLE done (what TEXT)")

    await worker.submit(connect, (), plain=True)
    return worker


async def test_work_of_a_higher_priority_runs_before_what_was_queued_earlier(
        tmp_path: Path) -> None:
    worker = await open_worker(tmp_path)
    running, release = threading.Event(), threading.Event()
    order: list[str] = []

    def record(what: str) -> None:
        assert worker.db is not None
        worker.db.execute("INSERT INTO done VALUES (?)", (what,))
        order.append(what)

    def blocking() -> None:  # holds the thread while the crowd queues up
        running.set()
        release.wait(10)

    first = worker.submit(blocking, ())
    await asyncio.to_thread(running.wait, 10)
    crowd = [worker.submit(record, (f"question {i}",), level=Priority.STORE)
             for i in range(300)]
    rest = [worker.submit(record, (f"figures {i}",)) for i in range(10)]
    greeting = worker.submit(record, ("greeting",), level=Priority.GREETING)
    release.set()
    await asyncio.gather(first, *crowd, *rest, greeting)
    assert order[0] == "greeting"
    assert order[1:301] == [f"question {i}" for i in range(300)]  # each level in order
    assert order[301:] == [f"figures {i}" for i in range(10)]
    assert worker.db is not None
    assert worker.db.execute("SELECT COUNT(*) FROM done").fetchone() == (311,)
    worker.stop()


async def test_higher_work_arriving_during_a_group_ends_the_group_early(tmp_path: Path
                                                                        ) -> None:
    worker = await open_worker(tmp_path)
    order: list[str] = []
    holding, held = threading.Event(), threading.Event()
    started, go_on = threading.Event(), threading.Event()

    def record(what: str) -> None:
        assert worker.db is not None
        worker.db.execute("INSERT INTO done VALUES (?)", (what,))
        order.append(what)

    def hold() -> None:  # while it runs, a group of 200 ordinary operations queues up
        holding.set()
        held.wait(10)

    def first_of_the_group() -> None:
        started.set()
        go_on.wait(10)
        record("ordinary 0")

    before = worker.submit(hold, ())
    await asyncio.to_thread(holding.wait, 10)
    group = [worker.submit(first_of_the_group, ())]
    group += [worker.submit(record, (f"ordinary {i}",)) for i in range(1, 200)]
    held.set()
    await asyncio.to_thread(started.wait, 10)  # the group of 200 has begun
    greeting = worker.submit(record, ("greeting",), level=Priority.GREETING)
    go_on.set()
    await asyncio.gather(before, *group, greeting)
    assert order.index("greeting") == 1  # right after the operation that was running
    assert [w for w in order if w != "greeting"] == [f"ordinary {i}" for i in range(200)]
    assert worker.db is not None
    assert worker.db.execute("SELECT COUNT(*) FROM done").fetchone() == (201,)
    worker.stop()
