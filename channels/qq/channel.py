"""The official QQ bot channel (QQ机器人) by webhook: private chats and group @ messages.

QQ bots may only answer (since April 2025 there is no unprompted message): a reply quotes
the customer's message (`msg_id`) or event (`event_id`) with an increasing `msg_seq`, within
60 minutes of a private message, 5 minutes of a group message or an event, 5 replies at most.
kefu keeps, for each customer, the newest thing it may answer and the sequence numbers it
used (in the store, so every process and a restart see them), refuses a send QQ would
refuse and says why, so an agent's late reply is kept in the transcript and the agent knows.
A message part keeps its `msg_seq` when it is sent again, so QQ drops a repeat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.cluster import Leases
from bot.errors import ChannelSendError
from bot.messages import InboundMessage, StoredMessage, render_quick_replies_as_text, split_text
from bot.router import Accepted
from bot.store import Conversation, Store
from channels.qq.api import QQApi
from channels.qq.settings import QQConfig
from channels.qq.webhook import (
    ACKNOWLEDGED,
    DISPATCH,
    NAME,
    VALIDATION,
    ReplyTo,
    check_signed,
    key_for,
    parse,
    to_inbound,
    validation_answer,
)
from channels.tencent.push import PushRejected

log = logging.getLogger(__name__)

WHAT = {"private": "private message", "group": "group message",
        "event": "adding the bot"}


class QQChannel:
    name = NAME

    def __init__(self, config: QQConfig, store: Store,
                 on_message: Callable[[InboundMessage], Awaitable[Accepted]], leases: Leases,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._store = store
        self._on_message = on_message
        self._clock = clock
        self._key = key_for(config.secret)
        self.api = QQApi(config, store, leases, clock)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self._config.path, self._webhook)

    # the webhook

    async def _webhook(self, request: web.Request) -> web.Response:
        received_at = self._clock()
        try:
            body = await request.content.read(self._config.max_body_bytes + 1)
            if len(body) > self._config.max_body_bytes:
                raise PushRejected("callback too large", 413)
            check_signed(self._key, request.headers.get("X-Signature-Ed25519", ""),
                         request.headers.get("X-Signature-Timestamp", ""), body, received_at,
                         self._config.timestamp_tolerance_seconds)
            payload = parse(body)
            if payload["op"] == VALIDATION:
                return web.json_response(validation_answer(self._key, payload))
            found = to_inbound(payload, received_at) if payload["op"] == DISPATCH else None
        except PushRejected as exc:
            log.warning("qq: callback refused from %s: %s", request.remote, exc)
            return web.Response(status=exc.status, text=str(exc))
        if found is not None:
            inbound, reply_to = found
            await self._may_answer(inbound.user_id, reply_to, received_at)
            try:
                await self._on_message(inbound)
            except RuntimeError as exc:  # not stored: QQ delivers it again
                log.error("qq: %s not stored: %s", inbound.platform_msg_id, exc)
                return web.Response(status=503, text="not stored; deliver again")
        return web.json_response(ACKNOWLEDGED)

    def _reply_key(self, customer: str) -> str:
        return f"qq:reply:{self._config.app_id}:{customer}"

    async def _may_answer(self, customer: str, reply_to: ReplyTo, at: float) -> None:
        """From now on, replies to `customer` quote this message or event (a redelivery of
        it changes nothing, an older one arriving late neither)."""
        state = await self._store.load_state(self._reply_key(customer))
        if state and (state["id"] == reply_to.id or state["at"] > at):
            return
        await self._store.save_state(self._reply_key(customer), {
            "path": reply_to.path, "field": reply_to.field, "id": reply_to.id,
            "kind": reply_to.kind, "at": at, "seqs": {}})

    # outbound

    async def send(self, conversation: Conversation, message: StoredMessage) -> None:
        key = self._reply_key(conversation.user_id)
        state = await self._store.load_state(key)
        if state is None:
            raise ChannelSendError("QQ bots may only answer, and this customer has not "
                                   "written to the bot", retryable=False)
        parts = split_text(render_quick_replies_as_text(message.text, message.quick_replies),
                           self._config.max_text_chars)
        for i, part in enumerate(parts):
            seq = await self._sequence(key, state, f"{message.id}:{i}")
            await self.api.send(state["path"], {"content": part, "msg_type": 0,
                                                state["field"]: state["id"], "msg_seq": seq})

    async def _sequence(self, key: str, state: dict[str, Any], part: str) -> int:
        """The msg_seq of this part: the one it had, or the next, if QQ still allows one."""
        seqs: dict[str, int] = state["seqs"]
        if part in seqs:
            return seqs[part]
        limit = {"private": self._config.private_reply_seconds,
                 "group": self._config.group_reply_seconds,
                 "event": self._config.event_reply_seconds}[state["kind"]]
        age = self._clock() - state["at"]
        if age > limit:
            raise ChannelSendError(
                f"QQ accepts replies only within {limit / 60:g} minutes of the customer's "
                f"{WHAT[state['kind']]}, and it was {age / 60:.0f} minutes ago; the customer "
                "must write again", retryable=False)
        if len(seqs) >= self._config.replies_per_message:
            raise ChannelSendError(
                f"QQ allows {self._config.replies_per_message} replies to one message; the "
                "customer must write again", retryable=False)
        seqs[part] = len(seqs) + 1
        await self._store.save_state(key, state)
        return seqs[part]

    async def send_state(self, conversation: Conversation, position: int | None) -> None:
        """QQ has no place for a state; the queue position comes in messages."""

    async def typing(self, conversation: Conversation) -> None:
        """Not shown: it would use up one of the replies QQ allows."""

    async def absent_since(self, user_id: str) -> float | None:
        return None

    async def aclose(self) -> None:
        await self.api.aclose()
