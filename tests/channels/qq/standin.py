"""The QQ bot platform's side (QQ机器人 webhook), on 127.0.0.1, for tests.

It plays the platform as QQ's documentation describes it, written independently of kefu:
callbacks signed with Ed25519 over the timestamp and the body, the key's seed being the
bot secret repeated to 32 bytes; the URL check (op 13) whose answer must sign event_ts and
plain_token; the app access token (`/app/getAppAccessToken`, `Authorization: QQBot ...`);
and passive replies only: a reply quotes a message (`msg_id`) or an event (`event_id`) it
was sent, within 60 minutes of a private message and 5 minutes of a group message or an
event, at most 5 per message, and the same `msg_seq` twice fails. The error codes of
refused replies are the stand-in's own (QQ does not publish them); kefu must not need them.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.channels.local import serve
from tests.channels.tencent_envelope import Clock

WINDOWS = {"private": 3600, "group": 300, "event": 300}


@dataclass
class Quotable:
    """A message or event the bot may answer."""

    path: str
    kind: str
    at: float
    seqs: set[int] = field(default_factory=set)


@dataclass
class Reply:
    path: str
    content: str
    quotes: str
    seq: int


class QQStandIn:
    def __init__(self, clock: Clock, *, app_id: str = "102000001",
                 secret: str = "kefuQQsecret2026") -> None:
        self.clock = clock
        self.app_id, self.secret = app_id, secret
        seed = (secret * (32 // len(secret) + 1))[:32]
        self.key = Ed25519PrivateKey.from_private_bytes(seed.encode())
        self.tokens: dict[str, float] = {}
        self.quotable: dict[str, Quotable] = {}
        self.replies: list[Reply] = []
        self.refused: list[str] = []
        self.server: TestServer | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/app/getAppAccessToken", self._token)
        app.router.add_post("/v2/users/{openid}/messages", self._reply)
        app.router.add_post("/v2/groups/{group_openid}/messages", self._reply)
        self.server, url = await serve(app)
        return url

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    # the API

    async def _token(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if body.get("appId") != self.app_id or body.get("clientSecret") != self.secret:
            return web.json_response({"code": 100016, "message": "invalid appid or secret"},
                                     status=400)
        token = secrets.token_urlsafe(32)
        self.tokens[token] = self.clock() + 7200
        return web.json_response({"access_token": token, "expires_in": "7200"})

    def _refuse(self, reason: str, status: int = 400) -> web.Response:
        self.refused.append(reason)
        return web.json_response({"code": 990000 + len(self.refused), "message": reason},
                                 status=status)

    async def _reply(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("QQBot ")
        if self.tokens.get(token, 0) <= self.clock():
            return web.json_response({"code": 11244, "message": "token not exist or expire"},
                                     status=401)
        body = json.loads(await request.read())
        quoted_id = body.get("msg_id") or body.get("event_id")
        if not quoted_id:
            return self._refuse("active messages are no longer offered")
        quotable = self.quotable.get(str(quoted_id))
        if quotable is None or quotable.path != request.path:
            return self._refuse("msg_id or event_id not found for this chat")
        if self.clock() - quotable.at > WINDOWS[quotable.kind]:
            return self._refuse("reply window has passed")
        seq = int(body.get("msg_seq") or 1)
        if seq in quotable.seqs:
            return self._refuse("duplicate msg_seq")
        if len(quotable.seqs) >= 5:
            return self._refuse("5 replies already")
        quotable.seqs.add(seq)
        self.replies.append(Reply(request.path, body.get("content", ""), str(quoted_id), seq))
        return web.json_response({"id": secrets.token_hex(8), "timestamp": int(self.clock())})

    def said_in(self, path: str) -> list[str]:
        return [r.content for r in self.replies if r.path == path]

    # callbacks

    def signed(self, body: bytes, timestamp: int | None = None, forge: bool = False
               ) -> dict[str, str]:
        ts = str(int(self.clock()) if timestamp is None else timestamp)
        key = Ed25519PrivateKey.generate() if forge else self.key
        return {"X-Signature-Ed25519": key.sign(ts.encode() + body).hex(),
                "X-Signature-Timestamp": ts, "X-Bot-Appid": self.app_id,
                "User-Agent": "QQBot-Callback", "Content-Type": "application/json"}

    async def post(self, url: str, payload: dict[str, Any], **sign: Any
                   ) -> tuple[int, Any]:
        body = json.dumps(payload, ensure_ascii=False).encode()
        async with aiohttp.ClientSession() as session, \
                session.post(url, data=body, headers=self.signed(body, **sign)) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except json.JSONDecodeError:
                return response.status, text

    async def dispatch(self, url: str, kind: str, d: dict[str, Any], quotable: Quotable,
                       quoted_id: str, event_id: str | None = None, **sign: Any
                       ) -> tuple[int, Any]:
        self.quotable.setdefault(quoted_id, quotable)
        payload = {"op": 0, "id": event_id or f"{kind}:{secrets.token_hex(6)}", "d": d,
                   "t": kind}
        return await self.post(url, payload, **sign)

    async def private(self, url: str, openid: str, text: str, msg_id: str | None = None,
                      **sign: Any) -> tuple[int, Any]:
        msg_id = msg_id or f"ROBOT1.0_{secrets.token_urlsafe(24)}"
        d = {"author": {"user_openid": openid}, "content": text, "id": msg_id,
             "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+08:00")}
        return await self.dispatch(url, "C2C_MESSAGE_CREATE", d, Quotable(
            f"/v2/users/{openid}/messages", "private", self.clock()), msg_id, **sign)

    async def group_at(self, url: str, group: str, member: str, text: str
                       ) -> tuple[int, Any]:
        msg_id = f"ROBOT1.0_{secrets.token_urlsafe(24)}"
        d = {"author": {"member_openid": member}, "content": f" {text}", "id": msg_id,
             "group_openid": group, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+08:00")}
        return await self.dispatch(url, "GROUP_AT_MESSAGE_CREATE", d, Quotable(
            f"/v2/groups/{group}/messages", "group", self.clock()), msg_id)

    async def friend_add(self, url: str, openid: str) -> tuple[int, Any]:
        event_id = f"FRIEND_ADD:{secrets.token_hex(8)}"
        return await self.dispatch(url, "FRIEND_ADD", {
            "openid": openid, "timestamp": int(self.clock())}, Quotable(
            f"/v2/users/{openid}/messages", "event", self.clock()), event_id, event_id)

    async def validate(self, url: str) -> tuple[int, Any]:
        """The URL check; returns the answer, and whether its signature is right."""
        token, ts = secrets.token_urlsafe(15), str(int(self.clock()))
        status, answer = await self.post(url, {"op": 13, "d": {"plain_token": token,
                                                               "event_ts": ts}})
        if status == 200:
            self.key.public_key().verify(bytes.fromhex(answer["signature"]),
                                         (ts + token).encode())
            assert answer["plain_token"] == token
        return status, answer
