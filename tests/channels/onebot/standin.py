"""A OneBot v11 QQ client (as NapCat or Lagrange behave), on 127.0.0.1, for tests.

It follows the OneBot 11 standard, written independently of kefu: events posted to the
post_url with `X-Self-ID` and `X-Signature: sha1=<HMAC-SHA1 of the body>`; a reverse
WebSocket (Universal) that connects with `Authorization: Bearer <token>`, `X-Self-ID` and
`X-Client-Role`, pushes events and answers action frames with the same `echo`; and an HTTP
API (`/send_private_msg`) that checks the Bearer token. `send_private_msg` honours
`auto_escape`: without it, CQ codes in the text would be read as codes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.channels.local import serve
from tests.channels.tencent_envelope import Clock


@dataclass
class Sent:
    user_id: int
    message: str
    auto_escape: bool
    via: str  # "ws" or "http"


class OneBotClient:
    def __init__(self, clock: Clock, *, self_id: int = 10001000, secret: str = "post-secret",
                 access_token: str = "ws-token-0123") -> None:
        self.clock = clock
        self.self_id, self.secret, self.access_token = self_id, secret, access_token
        self.sent: list[Sent] = []
        self.server: TestServer | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1000)

    # the client's HTTP API

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/send_private_msg", self._http_send)
        self.server, url = await serve(app)
        return url

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self._session is not None:
            await self._session.close()
        if self.server is not None:
            await self.server.close()

    def _send(self, params: dict[str, Any], via: str) -> dict[str, Any]:
        self.sent.append(Sent(int(params["user_id"]), str(params["message"]),
                              bool(params.get("auto_escape")), via))
        return {"status": "ok", "retcode": 0, "data": {"message_id": next(self._ids)}}

    async def _http_send(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return web.json_response({"status": "failed", "retcode": 1403}, status=403)
        return web.json_response(self._send(await request.json(), "http"))

    def said_to(self, user_id: int) -> list[str]:
        return [s.message for s in self.sent if s.user_id == user_id]

    # events

    def private(self, user_id: int, message: Any, message_id: int | None = None
                ) -> dict[str, Any]:
        raw = message if isinstance(message, str) else ""
        return {"time": int(self.clock()), "self_id": self.self_id, "post_type": "message",
                "message_type": "private", "sub_type": "friend",
                "message_id": message_id or next(self._ids), "user_id": user_id,
                "message": message, "raw_message": raw, "font": 0,
                "sender": {"user_id": user_id, "nickname": "顾客", "sex": "unknown", "age": 0}}

    def friend_added(self, user_id: int) -> dict[str, Any]:
        return {"time": int(self.clock()), "self_id": self.self_id, "post_type": "notice",
                "notice_type": "friend_add", "user_id": user_id}

    async def post(self, url: str, event: dict[str, Any], forge: bool = False) -> int:
        body = json.dumps(event, ensure_ascii=False).encode()
        key = b"not-the-secret" if forge else self.secret.encode()
        headers = {"Content-Type": "application/json", "X-Self-ID": str(self.self_id),
                   "X-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()}
        async with aiohttp.ClientSession() as session, \
                session.post(url, data=body, headers=headers) as response:
            return response.status

    async def connect(self, url: str, token: str | None = None) -> int:
        """Open the reverse WebSocket; the HTTP status when kefu refuses it."""
        self._session = self._session or aiohttp.ClientSession()
        try:
            self.ws = await self._session.ws_connect(url, headers={
                "Authorization": f"Bearer {token or self.access_token}",
                "X-Self-ID": str(self.self_id), "X-Client-Role": "Universal",
                "User-Agent": "OneBot/11 (standin)"})
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        self._reader = asyncio.create_task(self._answer_actions())
        return 101

    async def _answer_actions(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            request = json.loads(frame.data)
            if request.get("action") == "send_private_msg":
                await self.ws.send_json({**self._send(request["params"], "ws"),
                                         "echo": request.get("echo")})
            else:
                await self.ws.send_json({"status": "failed", "retcode": 1404,
                                         "echo": request.get("echo")})

    async def push(self, event: dict[str, Any]) -> None:
        assert self.ws is not None, "connect first"
        await self.ws.send_json(event)
