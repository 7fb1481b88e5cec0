"""Idle customers for the memory figure: `python -m benchmarks.idle URL N1 N2` opens N1
chats (each greeted), prints READY, waits for a line on stdin, opens N2 more, prints READY
again, waits again, then closes them all. The caller reads the server's memory at each
READY."""

from __future__ import annotations

import asyncio
import sys
import uuid

import aiohttp

from benchmarks.loadgen import CONNECT_AT_ONCE, next_reply


async def idle(http: aiohttp.ClientSession, url: str, gate: asyncio.Semaphore
               ) -> aiohttp.ClientWebSocketResponse:
    async with gate:
        ws = await http.ws_connect(url, params={"visitor": "v" + uuid.uuid4().hex})
        await ws.send_json({"type": "open", "lang": "zh"})
        await next_reply(ws, {"greeting"})
    return ws


async def main(url: str, counts: list[int]) -> None:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    sockets = []
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for count in counts:
            sockets += await asyncio.gather(*(idle(http, url, gate) for _ in range(count)))
            print("READY", len(sockets), flush=True)
            await loop.run_in_executor(None, sys.stdin.readline)
        for ws in sockets:
            await ws.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], [int(n) for n in sys.argv[2:]]))
