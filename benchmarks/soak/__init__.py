"""The soak: many web chat customers, several kefu processes, faults on a schedule, and a
count of every promise the README makes (`python -m benchmarks soak`).

Each scenario starts its own processes (a redis-server on AOF `everysec` and two kefu
processes, or one kefu on the embedded store), lets the customers (benchmarks/soak/
customers.py) ask their questions, injects its fault a few seconds in, waits until every
acknowledged question is answered or a deadline passes, then reads the store and counts.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from benchmarks.soak.customers import Customer, new_customers
from benchmarks.soak.fleet import QUESTIONS, KefuProcess, RedisServer, write_config
from bot.messages import Kind, Role
from bot.store import Store
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore

FAULT_AFTER_SECONDS = 3.0  # the customers have been asking this long when the fault comes
SETTLE_SECONDS = 90.0  # after the fault, how long everything has to be answered
RECOVERY_AFTER_SECONDS = 3.0  # kefu's conversation.recovery_after_seconds in the soak
ANSWER_KINDS = {Kind.ANSWER, Kind.FALLBACK, Kind.CLARIFY, Kind.SMALL_TALK}


@dataclass
class Fleet:
    kefus: list[KefuProcess]
    redis: RedisServer | None
    store_path: Path | None = None

    def urls(self) -> list[str]:
        running = [k.url for k in self.kefus if k.running]
        return running or [k.url for k in self.kefus]

    async def stop(self) -> None:
        for kefu in self.kefus:
            await kefu.stop()


Fault = Callable[[Fleet], Awaitable[None]]


async def no_fault(fleet: Fleet) -> None:
    return None


async def kill_one_process(fleet: Fleet) -> None:
    await fleet.kefus[0].kill()
    await asyncio.sleep(2.0)
    await fleet.kefus[0].start()


async def kill_and_restart_redis(fleet: Fleet) -> None:
    assert fleet.redis is not None
    await fleet.redis.exit(signal.SIGKILL)
    await asyncio.sleep(1.0)
    await fleet.redis.start()  # reads its append-only file back


async def stop_and_restart_redis(fleet: Fleet) -> None:
    assert fleet.redis is not None
    await fleet.redis.exit(signal.SIGTERM)
    await asyncio.sleep(1.0)
    await fleet.redis.start()


async def redis_unreachable(fleet: Fleet, seconds: float = 15.0) -> None:
    """SIGSTOP: connections open, nothing answered, as behind a broken network."""
    assert fleet.redis is not None
    fleet.redis.send(signal.SIGSTOP)
    await asyncio.sleep(seconds)
    fleet.redis.send(signal.SIGCONT)


@dataclass(frozen=True)
class Scenario:
    name: str
    store: str  # redis or sqlite
    processes: int
    fault: Fault


SCENARIOS = (
    Scenario("no fault (2 processes, Redis)", "redis", 2, no_fault),
    Scenario("SIGKILL of one of 2 processes, restarted 2 s later", "redis", 2,
             kill_one_process),
    Scenario("Redis SIGKILL, restarted 1 s later on its AOF (everysec)", "redis", 2,
             kill_and_restart_redis),
    Scenario("Redis SIGTERM, restarted 1 s later", "redis", 2, stop_and_restart_redis),
    Scenario("Redis unreachable 15 s (SIGSTOP)", "redis", 2, redis_unreachable),
    Scenario("SIGKILL of the one embedded-store process, restarted 1 s later", "sqlite", 1,
             kill_one_process),
)


@dataclass
class Counts:
    scenario: str
    customers: int
    questions: int = 0
    unacknowledged: int = 0  # never acknowledged, despite resends
    frozen: int = 0  # sent on an open socket, neither ack nor not_stored within 45 s
    not_stored: int = 0  # refusals the customer resent after (not a failure)
    unanswered: int = 0  # acknowledged and never answered
    duplicates: int = 0  # questions answered more than once, or stored twice
    not_greeted: int = 0  # customers who never saw a greeting
    unseen: int = 0  # stored replies a connected customer never received
    out_of_order: int = 0  # customers whose answers are not in the order of their questions
    messages_per_second: float = 0.0  # acknowledged questions per second of asking
    slowest_answer_seconds: float = 0.0  # from a question's ack to its answer on screen
    last_answer_after_fault_seconds: float = 0.0  # the fault's end to the last answer
    reconnects: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        return not (self.unacknowledged or self.frozen or self.unanswered or self.duplicates
                    or self.not_greeted or self.unseen or self.out_of_order)


async def start_fleet(scenario: Scenario, folder: Path) -> Fleet:
    redis = None
    if scenario.store == "redis":
        redis = RedisServer(folder / "redis")
        await redis.start()
        store = {"type": "redis", "url": redis.url, "prefix": "soak:"}
        path = None
    else:
        path = folder / "kefu.sqlite3"
        store = {"type": "sqlite", "path": str(path)}
    config = write_config(folder, store, RECOVERY_AFTER_SECONDS)
    fleet = Fleet([KefuProcess(config, folder / f"kefu-{i}.log")
                   for i in range(scenario.processes)], redis, path)
    try:
        for kefu in fleet.kefus:
            await kefu.start()
    except BaseException:
        await fleet.stop()
        if redis is not None:
            await redis.stop()
        raise
    return fleet


async def run(scenario: Scenario, customers: int, questions_each: int = len(QUESTIONS),
              folder: Path | None = None) -> Counts:
    """One scenario, start to finish; its processes are gone when it returns."""
    with tempfile.TemporaryDirectory(prefix="kefu-soak-") as tmp:
        where = folder or Path(tmp)
        fleet = await start_fleet(scenario, where)
        try:
            return await _soak(scenario, fleet, customers, questions_each)
        finally:
            await fleet.stop()
            if fleet.redis is not None:
                await fleet.redis.stop()


async def _soak(scenario: Scenario, fleet: Fleet, count: int, questions_each: int) -> Counts:
    asked = tuple(QUESTIONS[i % len(QUESTIONS)] for i in range(questions_each))
    crowd = new_customers(count, asked, fleet.urls)
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.time()
        tasks = [asyncio.create_task(c.run(http, stop)) for c in crowd]
        await asyncio.sleep(FAULT_AFTER_SECONDS)
        await scenario.fault(fleet)
        fault_over = time.time()
        deadline = fault_over + SETTLE_SECONDS
        # Polled: "settled" is spread over every customer's state, nothing to wait on.
        while time.time() < deadline and not all(_settled(c) for c in crowd):  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        await asyncio.sleep(2 * RECOVERY_AFTER_SECONDS)  # time for a late duplicate to show
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    await fleet.stop()  # the embedded store is read once its process is gone
    store: Store
    if fleet.redis is not None:
        store = await RedisStore.open(fleet.redis.url, prefix="soak:")
    else:
        assert fleet.store_path is not None
        store = await SqliteStore.open(fleet.store_path)
    try:
        counts = await count_promises(scenario.name, crowd, store, started, fault_over)
    finally:
        await store.close()
    return counts


def _settled(customer: Customer) -> bool:
    """Every question acknowledged and as many replies shown as questions."""
    if any(q.acked_at is None for q in customer.questions):
        return False
    replies = [f for f in customer.shown.values()
               if f["role"] == "bot" and f["kind"] != "greeting"]
    return len(replies) >= len(customer.questions) and customer.greeted()


async def count_promises(name: str, crowd: list[Customer], store: Store, started: float,
                         fault_over: float) -> Counts:
    counts = Counts(name, len(crowd))
    acks = [q.acked_at for c in crowd for q in c.questions if q.acked_at is not None]
    if acks:
        counts.messages_per_second = len(acks) / max(max(acks) - started, 1e-9)
    for customer in crowd:
        counts.frozen += customer.frozen
        counts.not_stored += customer.not_stored
        counts.reconnects += customer.reconnects
        transcript = [m for conversation in await store.conversations_of("webchat", customer.id)
                      for m in await store.messages(conversation.id)]
        if len({m.conversation_id for m in transcript}) > 1:
            counts.notes.append(f"{customer.id}: more than one conversation")
        stored_by_id: dict[str, list[int]] = {}
        for m in transcript:
            if m.role is Role.CUSTOMER and m.platform_msg_id is not None:
                stored_by_id.setdefault(m.platform_msg_id, []).append(m.seq)
        replies = [m for m in transcript if m.role is Role.BOT and m.kind in ANSWER_KINDS]
        order = [m.meta.get("reply_to") for m in replies]
        if order != sorted(order, key=lambda seq: -1 if seq is None else seq):
            counts.out_of_order += 1
        for question in customer.questions:
            counts.questions += 1
            if question.acked_at is None:
                counts.unacknowledged += 1
                continue
            seqs = stored_by_id.get(question.client_msg_id, [])
            if len(seqs) > 1:
                counts.duplicates += 1
            answers = [m for m in replies if seqs and m.meta.get("reply_to") == seqs[0]]
            if not answers:
                counts.unanswered += 1
                continue
            if len(answers) > 1:
                counts.duplicates += 1
            seen_at = customer.answer_seen_at.get(answers[0].seq)
            if seen_at is not None:
                counts.slowest_answer_seconds = max(counts.slowest_answer_seconds,
                                                    seen_at - question.acked_at)
                counts.last_answer_after_fault_seconds = max(
                    counts.last_answer_after_fault_seconds, seen_at - fault_over)
        if not any(m.kind is Kind.GREETING for m in transcript) or not customer.greeted():
            counts.not_greeted += 1
        counts.unseen += sum(1 for m in transcript if m.role is not Role.CUSTOMER
                             and (m.conversation_id, m.seq) not in customer.shown)
    return counts


def section(rows: list[Counts], machine: str) -> list[str]:
    lines = [
        "## Nothing lost at scale", "",
        f"`python -m benchmarks soak`: web chat customers who follow docs/webchat-protocol.md "
        f"to the letter (resend until acknowledged, 1 s after a `not_stored`; reconnect with "
        f"the last contiguous `seq`; drop what they have shown) ask {len(QUESTIONS)} "
        "questions each, one after another (arriving over the first 2 s, pausing 0.5-1.5 s after "
        "each ack); the fault comes "
        f"{FAULT_AFTER_SECONDS:g} s in. Redis runs with `appendonly yes`, `appendfsync "
        f"everysec`; kefu with `recovery_after_seconds: {RECOVERY_AFTER_SECONDS:g}` and the "
        "lexical engine. Customers, Redis and kefu share the machine "
        f"({machine}) with other work, so messages/s is noisy: read it as an order of "
        "magnitude. Recovery: \"slowest answer\" is the longest wait from a question's ack "
        "to its answer on the customer's screen; \"last answer\" is how long after the fault "
        "ended (the restart, or Redis answering again) the last answer arrived.", "",
        "| scenario | customers | questions | never acked | frozen | not_stored (resent) | "
        "acked, unanswered | duplicates | not greeted | stored, unseen | out of order | "
        "messages/s | slowest answer | last answer after the fault | promises |",
        "| --- |" + " ---: |" * 13 + " --- |"]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.customers} | {r.questions} | {r.unacknowledged} | "
            f"{r.frozen} | {r.not_stored} | {r.unanswered} | {r.duplicates} | "
            f"{r.not_greeted} | {r.unseen} | {r.out_of_order} | {r.messages_per_second:.0f} | "
            f"{r.slowest_answer_seconds:.1f} s | "
            f"{max(r.last_answer_after_fault_seconds, 0):.1f} s | "
            f"{'kept' if r.kept else '**broken**'} |")
    notes = [n for r in rows for n in r.notes[:3]]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes)]
    lines.append("")
    return lines


def run_all(sizes: tuple[int, ...], done: Callable[[list[Counts]], None]) -> list[Counts]:
    """Every scenario at every size; `done` hears the rows so far after each one, so a
    run stopped half-way keeps what it measured."""
    rows: list[Counts] = []
    for customers in sizes:
        for scenario in SCENARIOS:
            started = time.time()
            counts = asyncio.run(run(scenario, customers))
            print(f"soak: {scenario.name}, {customers} customers: "
                  f"{'kept' if counts.kept else 'BROKEN'} in {time.time() - started:.0f} s "
                  f"{counts}", flush=True)
            rows.append(counts)
            done(rows)
    return rows


__all__ = ["SCENARIOS", "Counts", "Scenario", "run", "run_all", "section"]
