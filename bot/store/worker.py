"""The embedded store's one SQL thread: group commit, and urgent work first.

Every statement runs on one thread, so the event loop never blocks on disk and writes need
no locks. What is waiting when the thread comes round runs as one transaction, each
operation in a savepoint of its own (one failing rolls back only itself): with
`synchronous=FULL` that is one fsync for the whole group instead of one per write, which is
what lets a loaded kefu keep up. The group's callers hear back together, in one wake-up of
their event loop, and only after the commit: acknowledged still means on disk. Work of a
higher priority (bot/priority.py: the greeting rule's, then storing customers' messages)
is taken first, and higher work that arrives while a group of lower work runs ends that
group early (it commits what ran; the rest runs next, in order): under load each operation
on this thread can wait milliseconds for the interpreter lock, so a whole group would keep
a greeting waiting for seconds.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.priority import Priority

MAX_GROUP = 256  # operations in one transaction
HIGHEST_FIRST = sorted(Priority, reverse=True)


@dataclass
class _Operation:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    plain: bool  # outside any transaction (opening, closing)
    done: asyncio.Future[Any]
    level: Priority = Priority.NORMAL


Outcome = tuple[_Operation, Any, BaseException | None]


class SqlWorker:
    def __init__(self, name: str) -> None:
        self.db: sqlite3.Connection | None = None
        self._queues = {level: deque[_Operation]() for level in Priority}
        # Per level, the queues of higher work: looked at before each operation of a group.
        self._higher = {level: tuple(q for other, q in self._queues.items() if other > level)
                        for level in Priority}
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], *,
               level: Priority = Priority.NORMAL, plain: bool = False) -> asyncio.Future[Any]:
        """From the event loop: queue an operation; the future is its result."""
        operation = _Operation(fn, args, plain, asyncio.get_running_loop().create_future(),
                               level)
        with self._ready:
            if self._stopping:
                raise RuntimeError("store is closed")
            self._queues[level].append(operation)
            self._ready.notify()
        return operation.done

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join()

    def _next_group(self) -> list[_Operation] | None:
        with self._ready:
            while not any(self._queues.values()):
                if self._stopping:
                    return None
                self._ready.wait()
            group: list[_Operation] = []
            for queue in (self._queues[level] for level in HIGHEST_FIRST):
                while queue and len(group) < MAX_GROUP:
                    if queue[0].plain:
                        return group or [queue.popleft()]  # plain work runs on its own
                    group.append(queue.popleft())
            return group

    def _loop(self) -> None:
        # Work runs even if its caller stopped waiting (a task cancelled while it saved):
        # what was asked to be written is written.
        while (group := self._next_group()) is not None:
            if (len(group) == 1 and group[0].plain) or self.db is None:
                _report([_alone(op) for op in group])
            else:
                _report(self._together(self.db, group))

    def _higher_waits(self, operation: _Operation) -> bool:
        """Whether `operation` should wait for higher work that came meanwhile; if so, it
        and the rest of its group go back to the front of their queues."""
        return any(self._higher[operation.level])

    def _put_back(self, operations: list[_Operation]) -> None:
        with self._ready:
            for operation in reversed(operations):
                self._queues[operation.level].appendleft(operation)

    def _together(self, db: sqlite3.Connection, group: list[_Operation]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for i, operation in enumerate(group):
                if i and self._higher_waits(operation):
                    self._put_back(group[i:])
                    group = group[:i]
                    break
                db.execute("SAVEPOINT op")
                try:
                    result = operation.fn(*operation.args)
                except Exception as exc:
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                    outcomes.append((operation, None, exc))
                    continue
                db.execute("RELEASE op")
                outcomes.append((operation, result, None))
            db.execute("COMMIT")
        except Exception as exc:  # the commit itself failed (disk full...): nothing is saved
            if db.in_transaction:
                db.execute("ROLLBACK")
            return [(operation, None, exc) for operation in group]
        return outcomes


def _alone(operation: _Operation) -> Outcome:
    try:
        return operation, operation.fn(*operation.args), None
    except Exception as exc:
        return operation, None, exc


def _report(outcomes: list[Outcome]) -> None:
    """Hand the results back: one wake-up per event loop for the whole group."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_loop[outcome[0].done.get_loop()].append(outcome)
    for loop, mine in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(_resolve, mine)


def _resolve(outcomes: list[Outcome]) -> None:
    for operation, result, error in outcomes:
        if operation.done.cancelled():
            continue
        if error is not None:
            operation.done.set_exception(error)
        else:
            operation.done.set_result(result)
