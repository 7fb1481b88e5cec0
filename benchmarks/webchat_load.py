"""Web chat end to end: kefu and a bare echo server under the same load, side by side.

For 100, 1,000 and 5,000 concurrent customers (each opens the chat, then asks questions),
the load generator runs in its own process against `kefu serve` (the shipped config and
sample knowledge base, a fresh embedded store) and then against the echo server. Reported:
greeting latency p50/p99/max (and that of customers arriving while the others ask),
answer latency p50/p99, answers per second and kefu's as a share of the echo server's,
and kefu's memory per idle conversation (resident memory grown per connected customer).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchmarks.progress import note
from benchmarks.stats import percentile

PROJECT = Path(__file__).resolve().parent.parent
LOADS = (100, 1_000, 5_000)
QUESTIONS_EACH = 3


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
    memory_per_conversation_kb: float | None


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


def _load(url: str, connections: int) -> _Load:
    done = subprocess.run([sys.executable, "-m", "benchmarks.loadgen", url,
                           str(connections), str(QUESTIONS_EACH)],
                          cwd=PROJECT, capture_output=True, text=True, check=True)
    data = json.loads(done.stdout)
    return _Load(data["greetings"], data["late_greetings"], data["answers"],
                 int(data["failures"]), float(data["ask_seconds"]))


def run(loads: tuple[int, ...] = LOADS) -> list[LoadRow]:
    rows = []
    for connections in loads:
        note(f"web chat: {connections} customers on kefu, then on the echo server")
        with tempfile.TemporaryDirectory() as tmp:
            port = _free_port()
            env = {**os.environ, "KEFU_STORE__PATH": str(Path(tmp) / "kefu.sqlite3"),
                   "KEFU_BUSINESS__HOURS": json.dumps({d: "00:00-24:00" for d in (
                       "mon", "tue", "wed", "thu", "fri", "sat", "sun")})}
            kefu = _serve([str(Path(sys.executable).parent / "kefu"), "serve", "--port",
                           str(port)], env)
            try:
                asyncio.run(_wait_up(f"http://127.0.0.1:{port}/healthz"))
                before = _rss_kb(kefu.pid)
                result = _load(f"http://127.0.0.1:{port}/chat/ws", connections)
                grown = _rss_kb(kefu.pid) - before
            finally:
                kefu.terminate()
                kefu.wait(30)
        echo_port = _free_port()
        echo = _serve([sys.executable, "-m", "benchmarks.echo_server", str(echo_port)],
                      dict(os.environ))
        try:
            asyncio.run(_wait_up(f"http://127.0.0.1:{echo_port}/"))
            baseline = _load(f"http://127.0.0.1:{echo_port}/chat/ws", connections)
        finally:
            echo.terminate()
            echo.wait(30)
        rows.append(LoadRow(
            connections, percentile(result.greetings, 50), percentile(result.greetings, 99),
            max(result.greetings, default=float("nan")), percentile(result.late_greetings, 99),
            max(result.late_greetings, default=float("nan")),
            percentile(result.answers, 50), percentile(result.answers, 99),
            len(result.answers) / result.ask_seconds,
            len(baseline.answers) / baseline.ask_seconds, result.failures,
            grown / connections if connections >= 1000 else None))
    return rows
