"""WeCom customer service's side (企业微信 微信客服), on 127.0.0.1, for tests.

It plays the platform as its documentation describes it, written independently of kefu:
the callback (`kf_msg_or_event`, sealed and signed with msg_signature, carrying a Token
valid for 10 minutes) that only says messages wait; `kf/sync_msg` with an opaque cursor,
pages of at most `limit`, `has_more`, and messages of the last 3 days when no cursor is
given; `kf/send_msg`, delivered within 48 hours of the customer's last message, 5 messages
at most until they write again (a send outside that is accepted and then reported by a
`msg_send_fail` event, as WeCom does); `kf/send_msg_on_event` with a welcome_code that is
valid for 20 seconds and once; `cgi-bin/gettoken` with token lifetimes.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.channels.local import serve
from tests.channels.tencent_envelope import Clock, new_aes_key, seal, sha1_sign

THREE_DAYS = 3 * 86400


@dataclass
class Window:
    until: float
    left: int


@dataclass
class Sent:
    touser: str
    open_kfid: str
    content: str
    msgid: str
    how: str  # "send_msg" or "welcome_code"
    delivered: bool = True


@dataclass
class Behaviour:
    """How the next sync_msg calls go: "ok", "hang" (never answer) or "500"."""

    next_syncs: list[str] = field(default_factory=list)


class WeComStandIn:
    def __init__(self, clock: Clock, *, corp_id: str = "ww0123456789abcdef",
                 secret: str = "k" * 43, token: str = "kefuwecom",
                 aes_key: str | None = None, open_kfid: str = "wkKefuTest0001") -> None:
        self.clock = clock
        self.corp_id, self.secret, self.token, self.open_kfid = corp_id, secret, token, open_kfid
        self.aes_key = aes_key or new_aes_key()
        self.tokens: dict[str, float] = {}  # access_token -> expires at
        self.token_lifetime = 7200
        self.items: list[dict[str, Any]] = []  # what sync_msg returns, oldest first
        self.msg_tokens: dict[str, float] = {}  # callback Token -> expires at
        self.welcome_codes: dict[str, tuple[str, float]] = {}  # code -> (customer, issued)
        self.windows: dict[str, Window] = {}
        self.sent: list[Sent] = []
        self.sync_calls: list[str] = []  # the cursor of every sync_msg call
        self.behaviour = Behaviour()
        self.server: TestServer | None = None
        self._ids = iter(range(1, 10**9))

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/kf/sync_msg", self._sync_msg)
        app.router.add_post("/cgi-bin/kf/send_msg", self._send_msg)
        app.router.add_post("/cgi-bin/kf/send_msg_on_event", self._send_msg_on_event)
        self.server, url = await serve(app)
        return url

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    # the API

    async def _gettoken(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("corpid") != self.corp_id:
            return web.json_response({"errcode": 40013, "errmsg": "invalid corpid"})
        if q.get("corpsecret") != self.secret:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        token = secrets.token_urlsafe(48)
        self.tokens[token] = self.clock() + self.token_lifetime
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": token,
                                  "expires_in": self.token_lifetime})

    def _refused_token(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token not in self.tokens:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        if self.tokens[token] <= self.clock():
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        return None

    async def _sync_msg(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused_token(request)
        if refused:
            return refused
        body = json.loads(await request.read())
        cursor = str(body.get("cursor") or "")
        self.sync_calls.append(cursor)
        how = self.behaviour.next_syncs.pop(0) if self.behaviour.next_syncs else "ok"
        if how == "hang":
            await asyncio.Event().wait()  # until the client gives up or goes away
        if how == "500":
            return web.Response(status=500, text="stand-in failure")
        msg_token = body.get("token")
        if msg_token and self.msg_tokens.get(msg_token, 0) <= self.clock():
            return web.json_response({"errcode": 95007, "errmsg": "invalid msg token"})
        limit = min(int(body.get("limit") or 1000), 1000)
        if cursor:
            start = int(cursor.removeprefix("cur"), 16)
        else:  # no cursor: from the earliest message of the last 3 days
            start = next((i for i, m in enumerate(self.items)
                          if m["send_time"] > self.clock() - THREE_DAYS), len(self.items))
        page = self.items[start:start + limit]
        end = start + len(page)
        return web.json_response({
            "errcode": 0, "errmsg": "ok", "next_cursor": f"cur{end:08x}",
            "has_more": int(end < len(self.items)), "msg_list": page})

    async def _send_msg(self, request: web.Request) -> web.Response:
        refused = self._refused_token(request)
        if refused:
            return refused
        body = json.loads(await request.read())
        customer, msgid = body["touser"], body.get("msgid") or f"sent{next(self._ids)}"
        window = self.windows.get(customer)
        sent = Sent(customer, body["open_kfid"], body["text"]["content"], msgid, "send_msg")
        self.sent.append(sent)
        fail_type = None
        if window is None or window.until <= self.clock():
            fail_type = 4
        elif window.left <= 0:
            fail_type = 6
        if fail_type is None:
            window.left -= 1
        else:  # accepted, then reported undelivered, as WeCom does
            sent.delivered = False
            self.items.append(self._item(4, msgid=f"fail{next(self._ids)}", event={
                "event_type": "msg_send_fail", "open_kfid": body["open_kfid"],
                "external_userid": customer, "fail_msgid": msgid, "fail_type": fail_type}))
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    async def _send_msg_on_event(self, request: web.Request) -> web.Response:
        refused = self._refused_token(request)
        if refused:
            return refused
        body = json.loads(await request.read())
        issued = self.welcome_codes.pop(body.get("code", ""), None)
        if issued is None or self.clock() - issued[1] > 20:
            return web.json_response({"errcode": 40029, "errmsg": "invalid code"})
        self.sent.append(Sent(issued[0], self.open_kfid, body["text"]["content"],
                              body.get("msgid", ""), "welcome_code"))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    # customers

    def _item(self, origin: int, **fields: Any) -> dict[str, Any]:
        return {"msgid": fields.pop("msgid", f"from_msgid_{next(self._ids)}"),
                "open_kfid": self.open_kfid, "send_time": int(self.clock()),
                "origin": origin, "msgtype": "event" if origin == 4 else "text", **fields}

    def writes(self, customer: str, text: str) -> dict[str, Any]:
        item = self._item(3, external_userid=customer, text={"content": text})
        self.items.append(item)
        self.windows[customer] = Window(self.clock() + 48 * 3600, 5)  # a message resets it
        return item

    def enters(self, customer: str, welcome: bool = True) -> str | None:
        code = secrets.token_hex(16) if welcome else None
        event: dict[str, Any] = {"event_type": "enter_session", "open_kfid": self.open_kfid,
                                 "external_userid": customer, "scene": "kefu",
                                 "scene_param": ""}
        if code:
            event["welcome_code"] = code
            self.welcome_codes[code] = (customer, self.clock())
        self.items.append(self._item(4, event=event))
        return code

    def sent_to(self, customer: str) -> list[str]:
        return [s.content for s in self.sent if s.touser == customer and s.delivered]

    # the callback

    def callback(self, *, forge: str = "", timestamp: int | None = None
                 ) -> tuple[dict[str, str], str]:
        """The query and body of a kf_msg_or_event callback, as WeCom posts it."""
        msg_token = "ENC" + secrets.token_urlsafe(32)
        self.msg_tokens[msg_token] = self.clock() + 600
        now = int(self.clock())
        xml = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
               f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
               "<Event><![CDATA[kf_msg_or_event]]></Event>"
               f"<Token><![CDATA[{msg_token}]]></Token>"
               f"<OpenKfId><![CDATA[{self.open_kfid}]]></OpenKfId></xml>")
        encrypted = seal(self.aes_key, self.corp_id, xml)
        ts, nonce = str(now if timestamp is None else timestamp), str(secrets.randbelow(10**9))
        signature = sha1_sign(self.token, ts, nonce, encrypted)
        if forge == "msg_signature":
            signature = sha1_sign("not-the-token", ts, nonce, encrypted)
        body = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
                "<AgentID><![CDATA[]]></AgentID></xml>")
        return {"msg_signature": signature, "timestamp": ts, "nonce": nonce}, body

    async def nudge(self, url: str, **how: Any) -> tuple[int, str]:
        """Post a callback to kefu; WeCom waits 5 seconds for the answer."""
        query, body = self.callback(**how)
        async with aiohttp.ClientSession() as session, asyncio.timeout(5), \
                session.post(url, params=query, data=body.encode()) as response:
            return response.status, await response.text()
