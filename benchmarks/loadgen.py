"""The load generator: many web chat customers at once, in a process of its own.

`python -m benchmarks.loadgen URL CONNECTIONS QUESTIONS` opens CONNECTIONS sockets, each
opens the chat (timing the greeting) and asks QUESTIONS questions one after another
(timing each answer); while they ask, 50 more customers arrive and time their greetings:
greetings must not queue behind answers. It prints the figures as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

CONNECT_AT_ONCE = 200  # sockets being opened at the same time
LATE_ARRIVALS = 50
# Half written like an example, half in other words (the model reads those).
QUESTIONS = ["退货怎么办", "多久能发货", "how long does delivery take", "可以开发票吗",
             "what payment methods do you accept", "快递到了我不在家怎么办",
             "我想把东西退掉", "钱什么时候退给我", "do you take credit cards"]
GREETING_KINDS = {"greeting"}
TIMEOUT_SECONDS = 120.0


@dataclass
class Figures:
    greetings: list[float] = field(default_factory=list)
    late_greetings: list[float] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)
    failures: int = 0
    ask_seconds: float = 0.0
    ask_began_at: float = 0.0  # time.time(), for the server's CPU read by the benchmark
    ask_cpu_seconds: float = 0.0  # this process's own, while the customers asked
    settled: int = 0  # customers greeted or failed
    all_settled: asyncio.Event = field(default_factory=asyncio.Event)

    def one_settled(self, total: int) -> None:
        self.settled += 1
        if self.settled == total:
            self.all_settled.set()


async def next_reply(ws: aiohttp.ClientWebSocketResponse, kinds: set[str] | None) -> None:
    """Wait for a message from kefu (of `kinds`, or any but the customer's own)."""
    while True:
        msg = await ws.receive(timeout=TIMEOUT_SECONDS)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket closed: {msg.type}")
        frame = json.loads(msg.data)
        if frame.get("type") != "message" or frame.get("role") == "customer":
            continue
        if kinds is None or frame.get("kind") in kinds:
            return


async def customer(http: aiohttp.ClientSession, url: str, gate: asyncio.Semaphore,
                   figures: Figures, total: int, go: asyncio.Event,
                   late: bool, questions: int) -> aiohttp.ClientWebSocketResponse | None:
    greeted = False
    try:
        async with gate:
            ws = await http.ws_connect(url, params={"visitor": "v" + uuid.uuid4().hex},
                                       max_msg_size=0)
        started = time.perf_counter()
        await ws.send_json({"type": "open", "lang": "zh"})
        await next_reply(ws, GREETING_KINDS)
        (figures.late_greetings if late else figures.greetings).append(
            time.perf_counter() - started)
        if late:
            return ws
        greeted = True
        figures.one_settled(total)
        await go.wait()
        for i in range(questions):
            started = time.perf_counter()
            await ws.send_json({"type": "message", "text": QUESTIONS[i % len(QUESTIONS)],
                                "client_msg_id": uuid.uuid4().hex})
            await next_reply(ws, None)
            figures.answers.append(time.perf_counter() - started)
        return ws
    except (aiohttp.ClientError, ConnectionError, TimeoutError):
        figures.failures += 1
        if not late and not greeted:
            figures.one_settled(total)
        return None


async def main(url: str, connections: int, questions: int) -> dict[str, Any]:
    figures = Figures()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    go = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        tasks = [asyncio.create_task(customer(http, url, gate, figures, connections, go, False,
                                              questions)) for _ in range(connections)]
        await figures.all_settled.wait()
        started, cpu = time.perf_counter(), time.process_time()
        figures.ask_began_at = time.time()
        go.set()
        await asyncio.sleep(0.2)  # the question storm is on: now newcomers arrive
        late = [asyncio.create_task(customer(http, url, gate, figures, connections, go, True,
                                             0)) for _ in range(LATE_ARRIVALS)]
        sockets = await asyncio.gather(*tasks, *late)
        figures.ask_seconds = time.perf_counter() - started
        figures.ask_cpu_seconds = time.process_time() - cpu
        for ws in sockets:
            if ws is not None:
                await ws.close()
    return {"connections": connections, "questions": questions,
            "greetings": figures.greetings, "late_greetings": figures.late_greetings,
            "answers": figures.answers, "failures": figures.failures,
            "ask_seconds": figures.ask_seconds, "ask_began_at": figures.ask_began_at,
            "ask_cpu_seconds": figures.ask_cpu_seconds}


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    json.dump(result, sys.stdout)
