"""The WeChat Official Account channel: webhook in, passive replies and the API out.

WeChat waits 5 seconds for the answer to a push, then drops the connection and retries
(three deliveries in all); the customer sees 该公众号暂时无法提供服务 if none is answered.
So every push is answered within `reply_budget_seconds`: what kefu said by then goes back
as the passive reply, everything later through the customer-service API, and a retry of a
push (even one still being worked on) gets the same answer as the first delivery: never a
second reply.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from wechatpy.crypto import WeChatCrypto

from bot.channel import DeliveryWindow
from bot.cluster import Leases
from bot.errors import ChannelSendError
from bot.messages import (
    InboundMessage,
    StoredMessage,
    render_quick_replies_as_text,
    split_text,
)
from bot.messages import utf8_size as size
from bot.router import Accepted
from bot.store import Conversation, ConversationEvent, Store
from bot.tasks import BackgroundTasks
from channels.tencent.push import PushRejected
from channels.tencent.window import DeliveryWindows
from channels.wechat.api import WeChatApi
from channels.wechat.settings import WeChatConfig
from channels.wechat.webhook import (
    NAME,
    check_signature,
    dedupe_key,
    open_push,
    parse_push,
    seal,
    text_reply,
    to_inbound,
)

log = logging.getLogger(__name__)

TYPING_LASTS_SECONDS = 15.0  # WeChat shows "typing" this long and refuses a repeat meanwhile
TYPING_NEEDS_MESSAGE_WITHIN_SECONDS = 30.0
SHUTDOWN_SEND_SECONDS = 5.0


@dataclass(eq=False)
class _Push:
    """One push from WeChat (and its retries), until its answer is decided."""

    key: str
    openid: str
    account: str  # the Official Account's id (gh_...), the reply's sender
    received_at: float
    replies: list[StoredMessage] = field(default_factory=list)
    stored: bool = False  # the message is in the store: it may be acknowledged
    deliveries: list[web.Request] = field(default_factory=list)  # WeChat's, waiting for it
    answer: asyncio.Future[str | None] = field(  # None: not stored, deliver again
        default_factory=lambda: asyncio.get_running_loop().create_future())


def _text(message: StoredMessage) -> str:
    return render_quick_replies_as_text(message.text, message.quick_replies)


class WeChatChannel:
    name = NAME

    def __init__(self, config: WeChatConfig, store: Store,
                 on_message: Callable[[InboundMessage], Awaitable[Accepted]],
                 leases: Leases, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._store = store
        self._on_message = on_message
        self._clock = clock
        self._crypto = (WeChatCrypto(config.token, config.encoding_aes_key, config.app_id)
                        if config.mode != "plain" else None)
        self.api = WeChatApi(config, store, leases, clock)
        self._windows = DeliveryWindows(config, store, "WeChat", config.app_id)
        self._pushes: dict[str, _Push] = {}  # by dedupe key, while retries may come
        self._collecting: dict[str, list[_Push]] = defaultdict(list)  # openid -> open pushes
        self._typing_at: dict[str, float] = {}
        self._background = BackgroundTasks("wechat")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(self._config.path, self._verify)
        app.router.add_post(self._config.path, self._push)

    # the webhook

    async def _verify(self, request: web.Request) -> web.Response:
        """The URL check WeChat makes when the server address is saved."""
        try:
            check_signature(self._config, dict(request.query), self._clock())
        except PushRejected as exc:
            log.warning("wechat: URL verification refused: %s", exc)
            return web.Response(status=exc.status, text=str(exc))
        return web.Response(text=request.query.get("echostr", ""))

    async def _push(self, request: web.Request) -> web.Response:
        received_at = self._clock()
        deadline = asyncio.get_running_loop().time() + self._config.reply_budget_seconds
        query = dict(request.query)
        try:
            check_signature(self._config, query, received_at)
            body = await request.content.read(self._config.max_body_bytes + 1)
            if len(body) > self._config.max_body_bytes:
                raise PushRejected("push too large", 413)
            opened = open_push(self._config, self._crypto, query, body)
            message = parse_push(opened.xml)
        except PushRejected as exc:
            log.warning("wechat: push refused from %s: %s", request.remote, exc)
            return web.Response(status=exc.status, text=str(exc))
        self._forget_old_pushes(received_at)
        key = dedupe_key(message)
        push = self._pushes.get(key)
        if push is None:
            push = self._pushes[key] = _Push(key, message.source, message.target, received_at)
            # The work goes on even if WeChat drops this connection: its retry collects it.
            self._background.spawn(self._work(push, message, deadline))
        else:
            log.info("wechat: retry of %s; it gets the first delivery's answer", key)
        push.deliveries.append(request)
        try:
            answer = await self._answer_of(push, deadline)
        finally:
            push.deliveries.remove(request)
        if answer is None:
            return web.Response(status=503, text="not stored yet; deliver again")
        return self._reply(answer, opened.encrypted, query)

    async def _work(self, push: _Push, message: Any, deadline: float) -> None:
        inbound = to_inbound(message, push.received_at)
        if inbound is None:
            push.stored = True
            self._finish(push)
            return
        await self._windows.opened(push.openid, by_message=message.type != "event",
                                   now=push.received_at)
        if message.type != "event":
            self._background.spawn(self._windows.send_kept(
                push.openid, functools.partial(self.api.send_text, push.openid),
                push.received_at))
        self._collecting[push.openid].append(push)
        try:
            accepted = await self._on_message(inbound)
        except RuntimeError:
            log.error("wechat: %s could not be stored; WeChat will deliver it again", push.key)
            self._pushes.pop(push.key, None)
            self._stop_collecting(push)
            if not push.answer.done():
                push.answer.set_result(None)
            return
        push.stored = True
        if not accepted.duplicate:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(asyncio.shield(accepted.handled), max(remaining, 0))
            except TimeoutError:
                log.info("wechat: %s not fully answered within %.1f s; the rest goes through "
                         "the API", push.key, self._config.reply_budget_seconds)
        self._finish(push)

    async def _answer_of(self, push: _Push, deadline: float) -> str | None:
        """Wait for the push's answer until this delivery's deadline, then decide it with
        what was said so far; None when the message is not even stored yet."""
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(asyncio.shield(push.answer), max(remaining, 0))
        except TimeoutError:
            return self._finish(push) if push.stored else None

    def _stop_collecting(self, push: _Push) -> None:
        pending = self._collecting.get(push.openid)
        if pending and push in pending:
            pending.remove(push)
        if not pending:
            self._collecting.pop(push.openid, None)

    def _finish(self, push: _Push) -> str:
        """Decide the push's answer, once: the passive reply with what was said so far, or
        '' for `success`. What does not fit in one reply, and everything said later, goes
        through the API."""
        if push.answer.done():
            return push.answer.result() or ""
        self._stop_collecting(push)
        now = int(self._clock())
        passive_texts: list[str] = []
        later: list[tuple[StoredMessage, list[str]]] = []
        if not any(r.transport is not None and not r.transport.is_closing()
                   for r in push.deliveries):
            # WeChat has given up on every delivery (storing outlasted them all): a passive
            # reply would reach no one, so all of it, the greeting first, goes by the API.
            later = [(m, split_text(_text(m), self._config.max_text_bytes, size))
                     for m in push.replies]
            push.answer.set_result("")
            if later:
                self._background.spawn(self._send_later(push.openid, later))
            return ""
        for message in push.replies:
            text = _text(message)
            together = "\n\n".join([*passive_texts, text])
            if not later and size(together) <= self._config.max_text_bytes:
                passive_texts.append(text)
            else:
                later.append((message, split_text(text, self._config.max_text_bytes, size)))
        if not passive_texts and later:  # the first message alone is too long
            message, parts = later[0]
            passive_texts, later[0] = [parts[0]], (message, parts[1:])
        answer = (text_reply(push.openid, push.account, "\n\n".join(passive_texts), now)
                  if passive_texts else "")
        push.answer.set_result(answer)
        if any(parts for _, parts in later):
            self._background.spawn(self._send_later(push.openid, later))
        return answer

    def _reply(self, answer: str, encrypted: bool, query: dict[str, str]) -> web.Response:
        if not answer:
            return web.Response(text="success")  # WeChat: received, nothing to say now
        if encrypted and self._crypto is not None:
            answer = seal(self._crypto, answer, query["nonce"], str(int(self._clock())))
        return web.Response(text=answer, content_type="application/xml")

    def _forget_old_pushes(self, now: float) -> None:
        for key, push in list(self._pushes.items()):
            if now - push.received_at > self._config.retry_window_seconds \
                    and push.answer.done():
                del self._pushes[key]

    # outbound

    async def send(self, conversation: Conversation, message: StoredMessage) -> None:
        pending = self._collecting.get(conversation.user_id)
        if pending:
            pending[0].replies.append(message)  # goes back in the push's passive reply
            return
        await self._send_api(conversation.user_id, message, split_text(
            _text(message), self._config.max_text_bytes, size))

    async def _send_api(self, openid: str, message: StoredMessage, parts: list[str]) -> None:
        await self._windows.send(openid, message, parts,
                                 functools.partial(self.api.send_text, openid), self._clock())

    async def _send_later(self, openid: str, later: list[tuple[StoredMessage, list[str]]]
                          ) -> None:
        for message, parts in later:
            try:
                await self._send_api(openid, message, parts)
            except ChannelSendError as exc:
                log.warning("wechat: message %d of %s not delivered: %s", message.seq,
                            message.conversation_id, exc)
                await self._store.record_event(ConversationEvent(
                    message.conversation_id, self._clock(), "undelivered", None,
                    {"seq": message.seq, "reason": str(exc)}))

    async def delivery_window(self, user_id: str, now: float) -> DeliveryWindow | None:
        return await self._windows.window(user_id, now)

    async def send_state(self, conversation: Conversation, position: int | None) -> None:
        """WeChat has no place for a state; the queue position comes in messages."""

    async def typing(self, conversation: Conversation) -> None:
        openid, now = conversation.user_id, self._clock()
        if now - self._typing_at.get(openid, 0.0) < TYPING_LASTS_SECONDS:
            return
        if not await self._windows.wrote_within(openid, TYPING_NEEDS_MESSAGE_WITHIN_SECONDS,
                                                now):
            return  # WeChat allows it only right after the customer wrote
        if len(self._typing_at) > 10_000:  # memory stays bounded
            self._typing_at = {o: t for o, t in self._typing_at.items()
                               if now - t < TYPING_LASTS_SECONDS}
        self._typing_at[openid] = now
        try:
            await self.api.typing(openid)
        except ChannelSendError as exc:
            log.info("wechat: typing not shown to %s: %s", openid, exc)

    async def absent_since(self, user_id: str) -> float | None:
        return None  # WeChat does not say when a customer stops looking

    async def aclose(self) -> None:
        try:
            async with asyncio.timeout(SHUTDOWN_SEND_SECONDS):
                await self._background.drain()
        except TimeoutError:
            log.warning("wechat: shutting down with messages still being sent")
        await self.api.aclose()
