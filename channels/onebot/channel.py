"""QQ through a OneBot v11 client (NapCat, Lagrange and the like): private chats.

Events arrive by HTTP POST (signed: `X-Signature: sha1=<HMAC-SHA1 of the body>` with the
shared secret) or over the client's reverse WebSocket (`Authorization: Bearer <token>`,
`X-Self-ID`). Either works; a client set up with both delivers every event twice, which
kefu answers once (by (self_id, message_id)) and warns about. Replies go back with
`send_private_msg` over the open socket, else through the client's HTTP API, always with
`auto_escape` so nothing an agent types is read as a CQ code (`[CQ:at,qq=all]`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from bot.errors import ChannelSendError
from bot.http import LazySession
from bot.messages import InboundMessage, StoredMessage, render_quick_replies_as_text, split_text
from bot.router import Accepted
from bot.store import Conversation
from bot.tasks import BackgroundTasks
from bot.wire import BadJson, parse_json, same_secret
from channels.onebot.events import NAME, split_customer, to_inbound
from channels.onebot.settings import OneBotConfig

log = logging.getLogger(__name__)

SEEN_REMEMBERED = 10_000  # event ids kept to tell which transport delivered them


class OneBotChannel:
    name = NAME

    def __init__(self, config: OneBotConfig,
                 on_message: Callable[[InboundMessage], Awaitable[Accepted]],
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._on_message = on_message
        self._clock = clock
        self._sockets: dict[str, web.WebSocketResponse] = {}  # self_id -> the client
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}  # echo -> response
        self._echoes = itertools.count(1)
        self._seen: OrderedDict[str, str] = OrderedDict()  # event id -> transport
        self._warned = False
        self._http = LazySession(config.action_timeout_seconds)
        self._background = BackgroundTasks("onebot")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self._config.path, self._http_post)
        app.router.add_get(self._config.ws_path, self._reverse_socket)

    # events by HTTP POST

    async def _http_post(self, request: web.Request) -> web.Response:
        body = await request.content.read(self._config.max_body_bytes + 1)
        if len(body) > self._config.max_body_bytes:
            return web.Response(status=413, text="event too large")
        given = request.headers.get("X-Signature", "").removeprefix("sha1=")
        expected = hmac.new(self._config.secret.encode(), body, hashlib.sha1).hexdigest()
        if not same_secret(given, expected):
            log.warning("onebot: event refused from %s: %s X-Signature", request.remote,
                        "forged" if given else "no")
            return web.Response(status=403, text="bad X-Signature")
        try:
            event = parse_json(body)
        except BadJson as exc:
            return web.Response(status=400, text=f"not JSON: {exc}")
        if not isinstance(event, dict):
            return web.Response(status=400, text="an event is a JSON object")
        try:
            await self._event(event, "HTTP POST")
        except RuntimeError:  # not stored: the client may post it again
            return web.Response(status=503, text="not stored")
        return web.Response(status=204)

    # the reverse WebSocket

    async def _reverse_socket(self, request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ") or \
            request.query.get("access_token", "")
        if not same_secret(given, self._config.access_token):
            log.warning("onebot: reverse WebSocket refused from %s: wrong access token",
                        request.remote)
            return web.Response(status=401, text="wrong access token")
        self_id = request.headers.get("X-Self-ID", "")
        if not self_id:
            return web.Response(status=400, text="X-Self-ID missing")
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=self._config.max_body_bytes)
        await ws.prepare(request)
        old = self._sockets.get(self_id)
        self._sockets[self_id] = ws
        if old is not None:
            await old.close(message=b"replaced by a newer connection")
        log.info("onebot: QQ account %s connected (%s)", self_id,
                 request.headers.get("X-Client-Role", "Universal"))
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                try:
                    data = parse_json(frame.data)
                except BadJson:
                    log.warning("onebot: %s sent something that is not JSON", self_id)
                    continue
                if isinstance(data, dict) and "post_type" in data:
                    # not awaited here: answering may need this loop to read the response
                    self._background.spawn(self._event_from_socket(data))
                elif isinstance(data, dict) and str(data.get("echo")) in self._waiting:
                    future = self._waiting.pop(str(data["echo"]))
                    if not future.done():
                        future.set_result(data)
        finally:
            if self._sockets.get(self_id) is ws:
                del self._sockets[self_id]
            log.info("onebot: QQ account %s disconnected", self_id)
        return ws

    async def _event_from_socket(self, event: dict[str, Any]) -> None:
        try:
            await self._event(event, "reverse WebSocket")
        except RuntimeError as exc:
            log.error("onebot: event %s not stored: %s", event.get("message_id"), exc)

    async def _event(self, event: dict[str, Any], transport: str) -> None:
        inbound = to_inbound(event, self._clock())
        if inbound is None:
            return
        key = inbound.platform_msg_id or ""
        first = self._seen.get(key)
        if first is None:
            self._seen[key] = transport
            if len(self._seen) > SEEN_REMEMBERED:
                self._seen.popitem(last=False)
        elif first != transport and not self._warned:
            self._warned = True
            log.warning("onebot: the QQ client delivers every event both by %s and by %s; "
                        "kefu answers once, but turn one of them off", first, transport)
        await self._on_message(inbound)

    # replies

    async def send(self, conversation: Conversation, message: StoredMessage) -> None:
        self_id, user_id = split_customer(conversation.user_id)
        for part in split_text(render_quick_replies_as_text(message.text, message.quick_replies),
                               self._config.max_text_chars):
            await self._action(self_id, "send_private_msg", {
                "user_id": user_id, "message": part, "auto_escape": True})

    async def _action(self, self_id: str, action: str, params: dict[str, Any]
                      ) -> dict[str, Any]:
        ws = self._sockets.get(self_id)
        if ws is not None and not ws.closed:
            echo = f"kefu-{next(self._echoes)}"
            future = asyncio.get_running_loop().create_future()
            self._waiting[echo] = future
            try:
                await ws.send_json({"action": action, "params": params, "echo": echo})
                async with asyncio.timeout(self._config.action_timeout_seconds):
                    response = await future
            except (TimeoutError, ConnectionError) as exc:
                raise ChannelSendError(f"the QQ client did not answer {action}: {exc!r}",
                                       retryable=True) from None
            finally:
                self._waiting.pop(echo, None)
        elif self._config.api_base:
            response = await self._http_action(action, params)
        else:
            raise ChannelSendError(f"QQ account {self_id} is not connected", retryable=True)
        if response.get("status") == "failed" or response.get("retcode") not in (0, 1):
            raise ChannelSendError(f"the QQ client refused {action}: retcode "
                                   f"{response.get('retcode')} {response.get('wording') or ''}",
                                   retryable=False)
        return response

    async def _http_action(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._http.get().post(
                    f"{self._config.api_base}/{action}", json=params,
                    headers={"Authorization": f"Bearer {self._config.access_token}"}) as r:
                if r.status in (401, 403):
                    raise ChannelSendError(f"the QQ client refused kefu's access token "
                                           f"({r.status})", retryable=False)
                data = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise ChannelSendError(f"the QQ client's HTTP API failed: {exc!r}",
                                   retryable=True) from None
        return data if isinstance(data, dict) else {}

    async def send_state(self, conversation: Conversation, position: int | None) -> None:
        """QQ has no place for a state; the queue position comes in messages."""

    async def typing(self, conversation: Conversation) -> None:
        """OneBot v11 has no typing indicator."""

    async def absent_since(self, user_id: str) -> float | None:
        return None

    async def aclose(self) -> None:
        try:
            async with asyncio.timeout(5.0):
                await self._background.drain()
        except TimeoutError:
            await self._background.cancel()
        for ws in list(self._sockets.values()):
            await ws.close(message=b"kefu is shutting down")
        await self._http.aclose()
