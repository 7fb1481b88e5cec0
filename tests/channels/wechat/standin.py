"""WeChat's side of the Official Account protocol, on 127.0.0.1, for tests.

It plays the platform as its documentation describes it, written independently of kefu
and of wechatpy: pushes signed with SHA-1 over the sorted token, timestamp and nonce (and
the ciphertext, in the AES modes), AES-256-CBC envelopes with the 4-byte big-endian length
of the UTF-8 bytes and the AppID, PKCS#7 padding to 32 bytes; a 5-second wait for the
answer with three deliveries in all; and the API kefu uses (`cgi-bin/token`,
`message/custom/send`, `message/custom/typing`) with WeChat's error codes, token lifetimes
and customer-service windows (5 messages in 48 hours after a message, 3 in a minute after
an event).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.channels.local import serve
from tests.channels.tencent_envelope import Clock, new_aes_key, seal, sha1_sign, unseal

PAYLOADS = Path(__file__).parent / "payloads"
ACCOUNT = "gh_0123456789ab"


@dataclass
class Delivery:
    """What one push came to: every attempt's outcome and the reply the customer saw."""

    attempts: list[str] = field(default_factory=list)  # "timeout" or the HTTP status
    status: int | None = None
    body: str = ""
    reply: dict[str, str] | None = None  # the passive reply's fields, decrypted


@dataclass
class Window:
    until: float
    left: int


class WeChatStandIn:
    def __init__(self, clock: Clock, *, app_id: str = "wx1234567890abcdef",
                 secret: str = "s" * 32, token: str = "kefutoken",
                 aes_key: str | None = None, mode: str = "safe",
                 timeout: float = 5.0) -> None:
        self.clock = clock
        self.app_id, self.secret, self.token, self.mode = app_id, secret, token, mode
        self.aes_key = aes_key or new_aes_key()
        self.timeout = timeout  # WeChat waits 5 s for a push's answer
        self.tokens: dict[str, float] = {}  # access_token -> expires at
        self.token_requests = 0
        self.token_lifetime = 7200
        self.sent: list[dict[str, Any]] = []  # customer-service messages accepted
        self.send_calls = 0  # every custom/send call, refused or not
        self.raw_bodies: list[bytes] = []
        self.typing: list[str] = []
        self.fail_next: list[int] = []  # errcodes to answer the next API calls with
        self.windows: dict[str, Window] = {}
        self._msg_ids = iter(range(10_000_000_000_000_000, 10_000_000_000_100_000_000))
        self.server: TestServer | None = None

    # the API

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
        app.router.add_post("/cgi-bin/message/custom/typing", self._typing)
        self.server, url = await serve(app)
        return url

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def _token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("grant_type") != "client_credential" or q.get("appid") != self.app_id:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if q.get("secret") != self.secret:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        self.token_requests += 1
        token = secrets.token_urlsafe(48)
        self.tokens[token] = self.clock() + self.token_lifetime
        return web.json_response({"access_token": token, "expires_in": self.token_lifetime})

    def revoke_tokens(self) -> None:
        """As when another client fetched a new token: the old ones stop working."""
        self.tokens.clear()

    def _check_token(self, request: web.Request) -> dict[str, Any] | None:
        token = request.query.get("access_token", "")
        if token not in self.tokens:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid "
                    "or not latest"}
        if self.tokens[token] <= self.clock():
            return {"errcode": 42001, "errmsg": "access_token expired"}
        if self.fail_next:
            code = self.fail_next.pop(0)
            return {"errcode": code, "errmsg": "stand-in failure"}
        return None

    async def _send(self, request: web.Request) -> web.Response:
        self.send_calls += 1
        raw = await request.read()
        refused = self._check_token(request)
        if refused:
            return web.json_response(refused)
        payload = json.loads(raw)
        openid = payload["touser"]
        window = self.windows.get(openid)
        if window is None or window.until <= self.clock():
            return web.json_response({"errcode": 45015, "errmsg": "response out of time "
                                      "limit or subscription is canceled"})
        if window.left <= 0:
            return web.json_response({"errcode": 45047, "errmsg": "out of response count "
                                      "limit"})
        window.left -= 1
        self.raw_bodies.append(raw)
        self.sent.append({"touser": openid, "content": payload["text"]["content"]})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _typing(self, request: web.Request) -> web.Response:
        refused = self._check_token(request)
        if refused:
            return web.json_response(refused)
        self.typing.append(json.loads(await request.read())["touser"])
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def _opened(self, openid: str, by_message: bool) -> None:
        now = self.clock()
        length, quota = (48 * 3600, 5) if by_message else (60, 3)
        window = self.windows.get(openid)
        still = window is not None and window.until > now
        self.windows[openid] = Window(max(now + length, window.until if window else 0),
                                      max(quota, window.left if window and still else 0))

    # pushes

    def payload(self, kind: str, openid: str, content: str = "", msg_id: int | None = None,
                now: int | None = None) -> tuple[str, int]:
        """A push shaped like WeChat's (tests/channels/wechat/payloads), and its MsgId."""
        msg_id = next(self._msg_ids) if msg_id is None else msg_id
        text = string.Template((PAYLOADS / f"{kind}.xml").read_text(encoding="utf-8"))
        xml = text.substitute(account=ACCOUNT, openid=openid, msg_id=msg_id,
                              now=int(self.clock()) if now is None else now,
                              content=content.replace("]]>", "]]]]><![CDATA[>"))
        return xml, msg_id

    def encrypt(self, xml: str) -> str:
        return seal(self.aes_key, self.app_id, xml)

    def decrypt(self, encrypted: str) -> str:
        return unseal(self.aes_key, self.app_id, encrypted)

    def signed(self, xml: str, *, timestamp: int | None = None, forge: str = "",
               openid: str | None = None) -> tuple[dict[str, str], str]:
        """Query and body of a push as WeChat sends it in this mode (`openid` given: the
        body is sent as it is, unread, even when it is not XML)."""
        ts = str(int(self.clock()) if timestamp is None else timestamp)
        nonce = str(secrets.randbelow(10**10))
        query = {"signature": sha1_sign(self.token, ts, nonce), "timestamp": ts,
                 "nonce": nonce, "openid": openid or _field(xml, "FromUserName")}
        if forge == "signature":
            query["signature"] = sha1_sign("not-the-token", ts, nonce)
        if self.mode == "plain":
            return query, xml
        encrypted = self.encrypt(xml)
        query |= {"encrypt_type": "aes",
                  "msg_signature": sha1_sign(self.token, ts, nonce, encrypted)}
        if forge == "msg_signature":
            query["msg_signature"] = sha1_sign(self.token, ts, nonce, encrypted + "x")
        if self.mode == "safe" or openid is not None:
            body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                    f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
        else:  # compatible: the plaintext fields and the ciphertext side by side
            body = xml.replace("</xml>", f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
        return query, body

    async def push(self, url: str, xml: str, **sign: Any) -> Delivery:
        """Deliver like WeChat: wait `timeout` for an answer, drop and retry, 3 in all."""
        query, body = self.signed(xml, **sign)
        self._opened(query["openid"], by_message=_field(xml, "MsgType") != "event")
        delivery = Delivery()
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                try:
                    async with asyncio.timeout(self.timeout):
                        async with session.post(url, params=query, data=body.encode()) as resp:
                            delivery.status, delivery.body = resp.status, await resp.text()
                except TimeoutError:
                    delivery.attempts.append("timeout")
                    continue
                delivery.attempts.append(str(delivery.status))
                break
        if delivery.status == 200 and delivery.body not in ("", "success"):
            delivery.reply = self.open_reply(delivery.body, query["nonce"])
        return delivery

    async def push_raw(self, url: str, body: str) -> Delivery:
        """One delivery of a body that may not be a valid push at all, signed (and sealed)
        as WeChat would."""
        query, sealed = self.signed(body, openid="oRaw")
        async with aiohttp.ClientSession() as session, \
                session.post(url, params=query, data=sealed.encode()) as response:
            return Delivery([str(response.status)], response.status, await response.text())

    def open_reply(self, body: str, nonce: str) -> dict[str, str]:
        """Check a passive reply as WeChat does, decrypting and verifying it if sealed."""
        if self.mode != "plain" and "<Encrypt>" in body:
            encrypted = _field(body, "Encrypt")
            signature = sha1_sign(self.token, _field(body, "TimeStamp"),
                                  _field(body, "Nonce"), encrypted)
            assert signature == _field(body, "MsgSignature"), "reply signature is wrong"
            assert _field(body, "Nonce") == nonce
            body = self.decrypt(encrypted)
        return {k: _field(body, k) for k in ("ToUserName", "FromUserName", "MsgType",
                                             "Content")}


def _field(xml: str, name: str) -> str:
    import xml.etree.ElementTree as ElementTree

    node = ElementTree.fromstring(xml).find(name)
    assert node is not None, f"no {name} in {xml[:200]}"
    return node.text or ""
