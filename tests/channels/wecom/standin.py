"""WeCom customer service's side (企业微信 微信客服), on 127.0.0.1, for tests.

It plays the platform as its documentation describes it, written independently of kefu:
the callback (`kf_msg_or_event`, sealed and signed with msg_signature, carrying a Token
valid for 10 minutes) that only says messages wait; `kf/sync_msg` with an opaque cursor,
pages of at most `limit`, `has_more`, and messages of the last 3 days when no cursor is
given; `kf/send_msg`, delivered within 48 hours of the customer's last message, 5 messages
at most until they write again (a send outside that is accepted and then reported by a
`msg_send_fail` event, as WeCom does); `kf/send_msg_on_event` with a welcome_code that is
valid for 20 seconds and once; `cgi-bin/gettoken` with token lifetimes.

Session states (kf/service_state): 0 new, 1 the API, 2 the pool, 3 a servicer, 4 ended or
not started, with only the documented moves (0 -> 1/2/3, 1 -> 2/3, 2 -> 3, 3 -> 3/4; a
customer's message makes 4 into 0); kf/send_msg only in states 0 and 1 (a send in 0 makes
it 1); `msg_code` for the first move to 2 or 3 and for ending, as kf/send_msg_on_event
codes. Servicers (`kf/servicer/list`, status 0 takes sessions) take sessions from the pool,
write, pass them on and end them in "the WeCom app": their messages come out of sync_msg
with origin 5, their actions as session_status_change events. The error codes of refused
state changes and sends are the stand-in's own; kefu does not rely on any of them.
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
NEW, API, POOL, SERVICER, ENDED = range(5)
MOVES = {NEW: {API, POOL, SERVICER}, API: {POOL, SERVICER}, POOL: {SERVICER},
         SERVICER: {SERVICER, ENDED}, ENDED: set()}


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
    how: str  # "send_msg", "welcome_code" or "msg_code"
    delivered: bool = True


@dataclass
class Behaviour:
    """How the next sync_msg calls go: "ok", "hang" (never answer) or "500"."""

    next_syncs: list[str] = field(default_factory=list)
    trans_refused: bool = False  # kf/service_state/trans answers a system error


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
        # code -> (customer, issued, "welcome_code" or "msg_code")
        self.event_codes: dict[str, tuple[str, float, str]] = {}
        self.states: dict[str, int] = {}  # customer -> service state
        self.servicer_of: dict[str, str] = {}  # customer -> the servicer in state 3
        self.servicers: dict[str, int] = {}  # userid -> status (0 takes sessions)
        self.nicknames: dict[str, str] = {}  # customer -> WeChat nickname (kf/customer/batchget)
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
        app.router.add_get("/cgi-bin/kf/servicer/list", self._servicer_list)
        app.router.add_post("/cgi-bin/kf/customer/batchget", self._customers)
        app.router.add_post("/cgi-bin/kf/service_state/get", self._state_get)
        app.router.add_post("/cgi-bin/kf/service_state/trans", self._state_trans)
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
        state = self.states.get(customer, ENDED)
        if state not in (NEW, API):
            return web.json_response({"errcode": 95018, "errmsg": "invalid session state"})
        self.states[customer] = API
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
        issued = self.event_codes.pop(body.get("code", ""), None)
        if issued is None or self.clock() - issued[1] > 20:
            return web.json_response({"errcode": 40029, "errmsg": "invalid code"})
        self.sent.append(Sent(issued[0], self.open_kfid, body["text"]["content"],
                              body.get("msgid", ""), issued[2]))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _servicer_list(self, request: web.Request) -> web.Response:
        refused = self._refused_token(request)
        if refused:
            return refused
        if request.query.get("open_kfid") != self.open_kfid:
            return web.json_response({"errcode": 95000, "errmsg": "invalid open_kfid"})
        return web.json_response({"errcode": 0, "errmsg": "ok", "servicer_list": [
            {"userid": u, "status": status} for u, status in self.servicers.items()]})

    async def _customers(self, request: web.Request) -> web.Response:
        refused = self._refused_token(request)
        if refused:
            return refused
        asked = json.loads(await request.read()).get("external_userid_list") or []
        return web.json_response({
            "errcode": 0, "errmsg": "ok",
            "customer_list": [{"external_userid": c, "nickname": self.nicknames[c], "avatar": "",
                               "gender": 0, "unionid": ""} for c in asked if c in self.nicknames],
            "invalid_external_userid": [c for c in asked if c not in self.nicknames]})

    async def _state_get(self, request: web.Request) -> web.Response:
        refused = self._refused_token(request)
        if refused:
            return refused
        customer = json.loads(await request.read())["external_userid"]
        state = self.states.get(customer, ENDED)
        return web.json_response({"errcode": 0, "errmsg": "ok", "service_state": state,
                                  "servicer_userid": self.servicer_of.get(customer, "")
                                  if state == SERVICER else ""})

    async def _state_trans(self, request: web.Request) -> web.Response:
        refused = self._refused_token(request)
        if refused:
            return refused
        body = json.loads(await request.read())
        if self.behaviour.trans_refused:
            return web.json_response({"errcode": 95015, "errmsg": "system error"})
        customer, to = body["external_userid"], int(body["service_state"])
        state = self.states.get(customer, ENDED)
        if to not in MOVES[state]:
            return web.json_response({"errcode": 95016, "errmsg":
                                      f"invalid service state change {state} -> {to}"})
        servicer = body.get("servicer_userid", "")
        if to == SERVICER and self.servicers.get(servicer) != 0:
            return web.json_response({"errcode": 95017, "errmsg": "servicer not receiving"})
        self.states[customer] = to
        if to == SERVICER:
            self.servicer_of[customer] = servicer
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
        if to == ENDED or state in (NEW, API):  # the 结束语, or the 回复语 of a first move
            answer["msg_code"] = self._code(customer, "msg_code")
        return web.json_response(answer)

    # customers

    def _item(self, origin: int, **fields: Any) -> dict[str, Any]:
        return {"msgid": fields.pop("msgid", f"from_msgid_{next(self._ids)}"),
                "open_kfid": self.open_kfid, "send_time": int(self.clock()),
                "origin": origin, "msgtype": "event" if origin == 4 else "text", **fields}

    def _code(self, customer: str, how: str) -> str:
        code = secrets.token_hex(16)
        self.event_codes[code] = (customer, self.clock(), how)
        return code

    def writes(self, customer: str, text: str) -> dict[str, Any]:
        item = self._item(3, external_userid=customer, text={"content": text})
        self.items.append(item)
        if self.states.get(customer, ENDED) == ENDED:
            self.states[customer] = NEW
        self.windows[customer] = Window(self.clock() + 48 * 3600, 5)  # a message resets it
        return item

    def enters(self, customer: str, welcome: bool = True) -> str | None:
        code = self._code(customer, "welcome_code") if welcome else None
        event: dict[str, Any] = {"event_type": "enter_session", "open_kfid": self.open_kfid,
                                 "external_userid": customer, "scene": "kefu",
                                 "scene_param": ""}
        if code:
            event["welcome_code"] = code
        self.items.append(self._item(4, event=event))
        return code

    # servicers, in the WeCom app

    def _status_change(self, customer: str, change_type: int, old: str = "", new: str = "",
                       code: bool = False) -> None:
        event: dict[str, Any] = {
            "event_type": "session_status_change", "open_kfid": self.open_kfid,
            "external_userid": customer, "change_type": change_type,
            "old_servicer_userid": old, "new_servicer_userid": new}
        if code:
            event["msg_code"] = self._code(customer, "msg_code")
        self.items.append(self._item(4, event=event))

    def servicer_takes(self, servicer: str, customer: str) -> None:
        """From the pool (待接入池), as the servicer's click in the app does."""
        assert self.states.get(customer) == POOL, "not in the pool"
        self.states[customer], self.servicer_of[customer] = SERVICER, servicer
        self._status_change(customer, 1, new=servicer, code=True)

    def servicer_writes(self, servicer: str, customer: str, text: str) -> None:
        if self.states.get(customer) != SERVICER or self.servicer_of[customer] != servicer:
            assert self.states.get(customer) == ENDED, "the session is not theirs"
            self.states[customer], self.servicer_of[customer] = SERVICER, servicer
            self._status_change(customer, 4, new=servicer)  # taken up again by writing
        self.items.append(self._item(5, external_userid=customer, servicer_userid=servicer,
                                     text={"content": text}))

    def servicer_passes_on(self, servicer: str, customer: str, to: str) -> None:
        assert self.servicer_of.get(customer) == servicer
        self.servicer_of[customer] = to
        self._status_change(customer, 2, old=servicer, new=to)

    def servicer_ends(self, servicer: str, customer: str) -> None:
        assert self.servicer_of.get(customer) == servicer
        self.states[customer] = ENDED
        self._status_change(customer, 3, old=servicer, code=True)

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
