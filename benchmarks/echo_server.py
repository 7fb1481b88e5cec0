"""A bare aiohttp WebSocket server that speaks just enough of the web chat protocol to be
the throughput baseline: it greets on `open` and echoes each message back as an answer,
with no store, no matching and no rules. `python -m benchmarks.echo_server PORT`."""

from __future__ import annotations

import json
import sys

from aiohttp import WSMsgType, web


async def chat(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=16384)
    await ws.prepare(request)
    seq = 0
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT:
            break
        frame = json.loads(msg.data)
        seq += 1
        if frame.get("type") == "open":
            await ws.send_json({"type": "message", "role": "bot", "kind": "greeting",
                                "seq": seq, "text": "hello"})
        elif frame.get("type") == "message":
            await ws.send_json({"type": "ack", "client_msg_id": frame.get("client_msg_id")})
            await ws.send_json({"type": "message", "role": "bot", "kind": "answer",
                                "seq": seq, "text": frame.get("text", "")})
    return ws


def app() -> web.Application:
    application = web.Application()
    application.router.add_get("/chat/ws", chat)
    return application


if __name__ == "__main__":
    web.run_app(app(), host="127.0.0.1", port=int(sys.argv[1]), print=None,
                access_log=None)
