"""Web chat end to end: kefu and a bare echo server under the same load, side by side.

For 100, 1,000 and 5,000 concurrent customers (each opens the chat, then asks questions),
the load generator runs in its own process against `kefu serve` (the shipped config and
sample knowledge base, a fresh embedded store) and then against the echo server. Reported:
greeting latency p50/p99/max (and that of customers arriving while the others ask),
answer latency p50/p99, answers per second and kefu's as a share of the echo server's.
Latency against load: the open loop (benchmarks/openloop.py) at rising offered rates, drawn
in benchmarks/latency.svg. Both cores: the same burst on kefu on Redis with one process and
with `--workers 2`.
Then memory: resident memory grown per additional idle customer (chat open, greeted),
for kefu and for the echo server.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import aiohttp

from benchmarks.cpu import CpuSampler
from benchmarks.stats import percentile
from bot.progress import note

PROJECT = Path(__file__).resolve().parent.parent
LOADS = (100, 1_000, 5_000)
QUESTIONS_EACH = 3
CORES = os.cpu_count() or 1
LOAD_GENERATOR = "load generator"
REDIS_SERVER = "redis-server"


@dataclass
class CoresUsed:
    """CPU seconds by part (benchmarks/cpu.py, and the load generator's own) while the
    customers asked, for how long they asked, and the answers they had."""
    parts: dict[str, float]
    seconds: float
    answers: int

    @property
    def busy(self) -> float:
        """The share of the machine's cores in use."""
        return sum(self.parts.values()) / (self.seconds * CORES)

    def ms_per_answer(self, *parts: str) -> float:
        return 1000 * sum(self.parts.get(p, 0.0) for p in parts or self.parts) / \
            max(self.answers, 1)

    @property
    def ceiling(self) -> float:
        """The answers/s this CPU time per answer allows with every core busy."""
        return CORES * 1000 / self.ms_per_answer()


@dataclass
class LoadRow:
    connections: int
    greeting_p50: float
    greeting_p99: float
    greeting_max: float
    late_greeting_p99: float
    late_greeting_max: float
    answer_p50: float
    answer_p99: float
    answers_per_second: float
    echo_per_second: float
    failures: int
    echo_greeting_p99: float  # the same load generator's greeting from a server doing nothing
    cores: CoresUsed  # kefu's, while its customers asked
    echo_cores: CoresUsed  # the echo server's


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            try:
                async with http.get(url) as response:
                    if response.status in (200, 404):
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} did not come up")


def _serve(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, cwd=PROJECT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@dataclass
class _Load:
    greetings: list[float]
    late_greetings: list[float]
    answers: list[float]
    failures: int
    ask_seconds: float
    cores: CoresUsed


def _load(url: str, server: int, connections: int, named: dict[str, int] | None = None
          ) -> _Load:
    """The burst on the server whose pid is `server`, with the CPU time of its processes
    (and of `named` ones: redis-server) while the customers asked."""
    with CpuSampler(server, named or {}) as cpu:
        done = subprocess.run([sys.executable, "-m", "benchmarks.loadgen", url,
                               str(connections), str(QUESTIONS_EACH)],
                              cwd=PROJECT, capture_output=True, text=True, check=True)
    data = json.loads(done.stdout)
    began, seconds = float(data["ask_began_at"]), float(data["ask_seconds"])
    parts = {**cpu.between(began, began + seconds),
             LOAD_GENERATOR: float(data["ask_cpu_seconds"])}
    return _Load(data["greetings"], data["late_greetings"], data["answers"],
                 int(data["failures"]), seconds,
                 CoresUsed(parts, seconds, len(data["answers"])))


T = TypeVar("T")


def _on(command: list[str], env: dict[str, str], port: int, health_path: str,
        drive: Callable[[str, int], T]) -> T:
    """Start a server, drive its web chat (given its address and pid) once it answers
    `health_path`, stop it."""
    server = _serve(command, env)
    try:
        asyncio.run(_wait_up(f"http://127.0.0.1:{port}{health_path}"))
        return drive(f"http://127.0.0.1:{port}/chat/ws", server.pid)
    finally:
        server.terminate()
        server.wait(30)


ALL_DAY = json.dumps({d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat",
                                                  "sun")})


def _kefu_then_echo(settings: dict[str, str] | None, drive: Callable[[str, int], T]
                    ) -> tuple[T, T]:
    """The same load on `kefu serve` (shipped config, a fresh embedded store, open all
    day) and then on the echo server."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env = {**os.environ, **(settings or {}),
               "KEFU_STORE__PATH": str(Path(tmp) / "kefu.sqlite3"),
               "KEFU_BUSINESS__HOURS": ALL_DAY}
        kefu = _on([str(Path(sys.executable).parent / "kefu"), "serve", "--port", str(port)],
                   env, port, "/healthz", drive)
    echo_port = _free_port()
    echo = _on([sys.executable, "-m", "benchmarks.echo_server", str(echo_port)],
               dict(os.environ), echo_port, "/", drive)
    return kefu, echo


def run(loads: tuple[int, ...] = LOADS, settings: dict[str, str] | None = None
        ) -> list[LoadRow]:
    """`settings`: environment overrides for kefu (KEFU_MATCHING__ENGINE=lexical...)."""
    rows = []
    for connections in loads:
        note(f"web chat: {connections} customers on kefu {settings or ''}, then on the echo "
             "server")
        result, baseline = _kefu_then_echo(settings, partial(_load, connections=connections))
        rows.append(LoadRow(
            connections, percentile(result.greetings, 50), percentile(result.greetings, 99),
            max(result.greetings, default=float("nan")), percentile(result.late_greetings, 99),
            max(result.late_greetings, default=float("nan")),
            percentile(result.answers, 50), percentile(result.answers, 99),
            len(result.answers) / result.ask_seconds,
            len(baseline.answers) / baseline.ask_seconds, result.failures,
            percentile(baseline.greetings, 99), result.cores, baseline.cores))
    return rows


@dataclass
class OpenLoopSide:
    """One server under the open-loop load (benchmarks/openloop.py)."""
    offered: int
    answered: int
    greeting_p99: float
    answer_p50: float
    answer_p99: float
    failures: int
    cores: float  # the server's processes' CPU seconds per second of the run


@dataclass
class OpenLoopRow:
    chats: int
    interval: float
    seconds: float
    kefu: OpenLoopSide
    echo: OpenLoopSide

    @property
    def offered_per_second(self) -> float:
        return self.chats / self.interval


def _open_loop(url: str, server: int, chats: int, interval: float, seconds: float
               ) -> OpenLoopSide:
    with CpuSampler(server) as cpu:
        began = time.time()
        done = subprocess.run([sys.executable, "-m", "benchmarks.openloop", url, str(chats),
                               str(interval), str(seconds)],
                              cwd=PROJECT, capture_output=True, text=True, check=True)
        ended = time.time()
    data = json.loads(done.stdout)
    return OpenLoopSide(int(data["offered"]), len(data["answers"]),
                        percentile(data["greetings"], 99), percentile(data["answers"], 50),
                        percentile(data["answers"], 99), int(data["failures"]),
                        sum(cpu.between(began, ended).values()) / (ended - began))


def open_loop(chats: int = 1_000, interval: float = 2.0, seconds: float = 60.0
              ) -> OpenLoopRow:
    note(f"web chat, open loop: {chats} live chats each asking every {interval:g} s for "
         f"{seconds:g} s, on kefu, then on the echo server")
    kefu, echo = _kefu_then_echo(None, partial(_open_loop, chats=chats, interval=interval,
                                                     seconds=seconds))
    return OpenLoopRow(chats, interval, seconds, kefu, echo)


SWEEP_RATES = (100, 250, 500, 750)  # questions/s offered


def sweep(rates: tuple[int, ...] = SWEEP_RATES, interval: float = 2.0, seconds: float = 20.0
          ) -> list[OpenLoopRow]:
    """Latency against load: the open loop at rising offered rates (rate x interval live
    chats), each on kefu and then on the echo server."""
    rows = []
    for rate in rates:
        chats = round(rate * interval)
        note(f"web chat, latency against load: {rate} questions/s offered ({chats} chats)")
        kefu, echo = _kefu_then_echo(None, partial(_open_loop, chats=chats,
                                                   interval=interval, seconds=seconds))
        rows.append(OpenLoopRow(chats, interval, seconds, kefu, echo))
    return rows


@dataclass
class WorkersRow:
    """The same burst on kefu on Redis with one process and with `workers`, `rounds` times
    each in turn (one, then many, then one...): the machine's noise falls on both."""
    connections: int
    workers: int
    one: list[float]  # answers/s of each round
    many: list[float]
    one_cores: list[CoresUsed]  # and where the cores went, round by round
    many_cores: list[CoresUsed]

    @property
    def ratio(self) -> float:
        return sum(self.many) / sum(self.one)


def _on_redis(url: str, workers: int, connections: int) -> _Load:
    """`kefu serve --workers N` on Redis (shipped config, its own key prefix), under the
    burst, with a local redis-server's CPU time beside kefu's; its keys are deleted
    afterwards."""
    import redis

    client = redis.Redis.from_url(url)
    local = client.connection_pool.connection_kwargs.get("host") in ("127.0.0.1", "localhost")
    named = {REDIS_SERVER: int(client.info("server")["process_id"])} if local else {}
    prefix = f"kefu-bench-{uuid.uuid4().hex[:8]}:"
    port = _free_port()
    env = {**os.environ, "KEFU_STORE__TYPE": "redis", "KEFU_STORE__URL": url,
           "KEFU_STORE__PREFIX": prefix, "KEFU_BUSINESS__HOURS": ALL_DAY}
    try:
        return _on([str(Path(sys.executable).parent / "kefu"), "serve", "--port", str(port),
                    "--workers", str(workers)], env, port, "/healthz",
                   partial(_load, connections=connections, named=named))
    finally:
        for key in client.scan_iter(f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


def workers(url: str = "redis://127.0.0.1:6379/0", connections: int = 1_000, many: int = 2,
            rounds: int = 2) -> WorkersRow | None:
    """None when no Redis answers at `url` (--workers needs it)."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        note(f"web chat, workers: no Redis at {url}; not measured")
        return None
    row = WorkersRow(connections, many, [], [], [], [])
    for round_ in range(1, rounds + 1):
        for count, into, cores in ((1, row.one, row.one_cores),
                                   (many, row.many, row.many_cores)):
            note(f"web chat, workers: {connections} customers on kefu --workers {count} "
                 f"on Redis (round {round_} of {rounds})")
            result = _on_redis(url, count, connections)
            into.append(len(result.answers) / result.ask_seconds)
            cores.append(result.cores)
    return row


@dataclass
class MemoryRow:
    first: int
    more: int
    kefu_kb: float  # per idle customer, kefu
    echo_kb: float  # the same for the bare echo server


def _idle_growth(command: list[str], env: dict[str, str], url: str, first: int, more: int
                 ) -> float:
    """Resident memory grown per idle customer between `first` and `first + more` open
    chats: the cost of one more waiting customer, without start-up and warm-up."""
    server = _serve(command, env)
    try:
        asyncio.run(_wait_up(url.replace("/chat/ws", "/healthz").replace("ws://", "http://")))
        idle = subprocess.Popen([sys.executable, "-m", "benchmarks.idle",
                                 url.replace("ws://", "http://"), str(first), str(more)],
                                cwd=PROJECT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        assert idle.stdin is not None and idle.stdout is not None
        readings = []
        for _ in range(2):
            line = idle.stdout.readline()
            assert line.startswith("READY"), line
            time.sleep(1.0)  # let the server settle after the burst
            readings.append(_rss_kb(server.pid))
            idle.stdin.write("\n")
            idle.stdin.flush()
        idle.wait(120)
        return (readings[1] - readings[0]) / more
    finally:
        server.terminate()
        server.wait(30)


def memory(first: int = 1_000, more: int = 4_000) -> MemoryRow:
    note(f"memory: {first} idle customers, then {more} more, on kefu and on the echo server")
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env = {**os.environ, "KEFU_STORE__PATH": str(Path(tmp) / "kefu.sqlite3")}
        kefu = _idle_growth([str(Path(sys.executable).parent / "kefu"), "serve", "--port",
                             str(port)], env, f"ws://127.0.0.1:{port}/chat/ws", first, more)
    port = _free_port()
    echo = _idle_growth([sys.executable, "-m", "benchmarks.echo_server", str(port)],
                        dict(os.environ), f"ws://127.0.0.1:{port}/chat/ws", first, more)
    return MemoryRow(first, more, kefu, echo)
