"""An open-loop load: a busy evening of live chats, in a process of its own.

`python -m benchmarks.openloop URL CHATS INTERVAL SECONDS` opens CHATS chats spread over the
first INTERVAL seconds (timing each greeting), then every chat asks a question every INTERVAL
seconds for SECONDS seconds, on its own clock: whether kefu keeps up or not, questions keep
coming (a closed loop, where each customer waits for the answer before asking again, slows
down with the server and hides an overload). Answers are matched to questions in order per
chat, as kefu answers each customer in order. Questions still unanswered DRAIN_SECONDS after
the last was asked count as unanswered. It prints the figures as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.loadgen import CONNECT_AT_ONCE, GREETING_KINDS, QUESTIONS

DRAIN_SECONDS = 30.0


@dataclass
class Figures:
    greetings: list[float] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)
    offered: int = 0
    failures: int = 0


async def chat(http: aiohttp.ClientSession, url: str, gate: asyncio.Semaphore,
               figures: Figures, start_at: float, interval: float, until: float) -> None:
    """One customer: open the chat at `start_at`, then ask every `interval` s until `until`,
    reading answers as they come."""
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    waiting: deque[float] = deque()  # when each unanswered question was sent
    try:
        async with gate:
            ws = await http.ws_connect(url, params={"visitor": "v" + uuid.uuid4().hex},
                                       max_msg_size=0)
        opened = time.perf_counter()
        await ws.send_json({"type": "open", "lang": "zh"})

        async def ask(count: int) -> None:
            for i in range(count):
                if i:
                    await asyncio.sleep(interval)
                waiting.append(time.perf_counter())
                figures.offered += 1
                await ws.send_json({"type": "message", "text": QUESTIONS[i % len(QUESTIONS)],
                                    "client_msg_id": uuid.uuid4().hex})

        asker: asyncio.Task[None] | None = None
        to_answer = 0
        deadline = until + DRAIN_SECONDS
        while asker is None or to_answer:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            try:
                msg = await ws.receive(timeout=left)
            except TimeoutError:
                break
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"socket closed: {msg.type}")
            frame = json.loads(msg.data)
            if frame.get("type") != "message" or frame.get("role") == "customer":
                continue
            if frame.get("kind") in GREETING_KINDS:
                if asker is None:
                    figures.greetings.append(time.perf_counter() - opened)
                    to_answer = max(0, int((until - time.perf_counter()) / interval) + 1)
                    asker = asyncio.create_task(ask(to_answer))
            elif waiting:
                figures.answers.append(time.perf_counter() - waiting.popleft())
                to_answer -= 1
        if asker is not None:
            asker.cancel()
        await ws.close()
    except (aiohttp.ClientError, ConnectionError, TimeoutError):
        figures.failures += 1


async def main(url: str, chats: int, interval: float, seconds: float) -> dict[str, Any]:
    figures = Figures()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    connector = aiohttp.TCPConnector(limit=0)
    phases = random.Random(7)
    async with aiohttp.ClientSession(connector=connector) as http:
        began = time.perf_counter()
        until = began + interval + seconds
        await asyncio.gather(*(
            chat(http, url, gate, figures, began + phases.uniform(0, interval), interval,
                 until) for _ in range(chats)))
    return {"chats": chats, "interval": interval, "seconds": seconds,
            "offered": figures.offered, "greetings": figures.greetings,
            "answers": figures.answers, "failures": figures.failures}


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]),
                              float(sys.argv[4])))
    json.dump(result, sys.stdout)
