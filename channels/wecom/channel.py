"""WeCom customer service (企业微信 微信客服): callback, then read with kf/sync_msg, then send.

WeCom's callback only says that messages wait; kefu answers it at once and reads them with
kf/sync_msg from a cursor kept in the store (saved after each page is stored, so a restart
resumes where the last run stopped; a page read twice is dropped by message id). Reading
is serialized per customer-service account, across processes too (a lease), and callbacks
arriving meanwhile fold into one more read.

Greeting: entering the chat gives a `welcome_code`, valid for 20 seconds and for one
message; the greeting goes with it (outside the 48-hour window, which needs a customer
message). Without a code (WeCom gives none to a customer greeted in the last 48 hours),
the greeting comes with the customer's first message.

Agents: with `agents: kefu` (the default) kefu's agents answer in kefu's console, and the
session stays with the API (service state 0/1), where WeCom lets kf/send_msg write to the
customer: 5 messages within 48 hours of their message. With `agents: wecom` the desk hands
sessions to WeCom's pool, and the account's servicers answer in the WeCom app
(servicers.py). Either way, what servicers write and do comes into kefu's transcript.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.channel import DeliveryWindow, PlatformNews, held_by_platform
from bot.cluster import Leases
from bot.errors import ChannelSendError
from bot.messages import (
    ConversationState,
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
from channels.wecom.api import WeComApi
from channels.wecom.callback import (
    CUSTOMER,
    EVENT,
    NAME,
    SEND_FAILURES,
    Nudge,
    crypto_for,
    customer_id,
    enter_session,
    open_callback,
    split_customer,
    to_inbound,
    verify_url,
)
from channels.wecom.servicers import WeComServicers, news
from channels.wecom.settings import WeComConfig

log = logging.getLogger(__name__)

SYNC_RETRY_SECONDS = (1.0, 5.0, 30.0)  # a failed read is tried again after these
SHUTDOWN_SEND_SECONDS = 5.0


class WeComChannel:
    name = NAME

    def __init__(self, config: WeComConfig, store: Store,
                 on_message: Callable[..., Awaitable[Accepted]], leases: Leases,
                 on_platform_news: Callable[[PlatformNews], Awaitable[None]],
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._store = store
        self._on_message = on_message
        self._on_platform_news = on_platform_news
        self._leases = leases
        self._clock = clock
        self._crypto = crypto_for(config)
        self.api = WeComApi(config, store, leases, clock)
        self._windows = DeliveryWindows(config, store, "WeCom", config.corp_id)
        self._wanted: dict[str, tuple[str, float]] = {}  # account -> (token, nudged at)
        self._reading: set[str] = set()
        # customer -> (code, valid until): a welcome_code or another event's msg_code, for
        # the next message to them
        self._codes: dict[str, tuple[str, float]] = {}
        self.platform_agents = WeComServicers(self.api, self._keep_code) \
            if config.agents == "wecom" else None
        self._background = BackgroundTasks("wecom")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(self._config.path, self._verify)
        app.router.add_post(self._config.path, self._callback)

    # the callback

    async def _verify(self, request: web.Request) -> web.Response:
        try:
            echo = verify_url(self._config, self._crypto, dict(request.query), self._clock())
        except PushRejected as exc:
            log.warning("wecom: URL verification refused: %s", exc)
            return web.Response(status=exc.status, text=str(exc))
        return web.Response(text=echo)

    async def _callback(self, request: web.Request) -> web.Response:
        received_at = self._clock()
        try:
            body = await request.content.read(self._config.max_body_bytes + 1)
            if len(body) > self._config.max_body_bytes:
                raise PushRejected("callback too large", 413)
            nudge = open_callback(self._config, self._crypto, dict(request.query), body,
                                  received_at)
        except PushRejected as exc:
            log.warning("wecom: callback refused from %s: %s", request.remote, exc)
            return web.Response(status=exc.status, text=str(exc))
        if nudge is not None:
            self._read_soon(nudge, received_at)
        return web.Response(text="success")

    def _read_soon(self, nudge: Nudge, received_at: float) -> None:
        """Read the account's messages; a read already going on reads once more after."""
        _, earliest = self._wanted.get(nudge.open_kfid, ("", received_at))
        self._wanted[nudge.open_kfid] = (nudge.token, min(earliest, received_at))
        if nudge.open_kfid not in self._reading:
            self._reading.add(nudge.open_kfid)
            self._background.spawn(self._read_while_wanted(nudge.open_kfid))

    async def _read_while_wanted(self, open_kfid: str) -> None:
        try:
            failures = 0
            while open_kfid in self._wanted:
                token, nudged_at = self._wanted.pop(open_kfid)
                try:
                    async with self._leases.hold(f"wecom-sync:{self._config.corp_id}:"
                                                 f"{open_kfid}"):
                        await self.read(open_kfid, token, nudged_at)
                    failures = 0
                except (ChannelSendError, OSError, RuntimeError) as exc:
                    if failures == len(SYNC_RETRY_SECONDS):
                        log.error("wecom: reading %s failed %d times, waiting for the next "
                                  "callback: %s", open_kfid, failures + 1, exc)
                        return
                    delay = SYNC_RETRY_SECONDS[failures]
                    failures += 1
                    log.warning("wecom: reading %s failed (%s); trying again in %.0f s",
                                open_kfid, exc, delay)
                    self._wanted.setdefault(open_kfid, (token, nudged_at))
                    await asyncio.sleep(delay)
        finally:
            self._reading.discard(open_kfid)

    def _cursor_key(self, open_kfid: str) -> str:
        return f"wecom:cursor:{self._config.corp_id}:{open_kfid}"

    async def read(self, open_kfid: str, token: str, nudged_at: float) -> None:
        """Every page after the saved cursor; the cursor moves once a page is stored."""
        saved = await self._store.load_state(self._cursor_key(open_kfid))
        cursor = str(saved["cursor"]) if saved else ""
        first_read = saved is None
        while True:
            page = await self.api.sync_msg(open_kfid, cursor, token, self._config.sync_limit)
            for item in page.get("msg_list") or []:
                try:
                    if first_read and self._clock() - float(item.get("send_time", 0)) \
                            > self._config.first_read_max_age_seconds:
                        continue  # kefu was just set up: not days-old messages
                    await self._take(item, nudged_at)
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    # one malformed item must not stop the account's reading for good
                    log.warning("wecom: skipped a malformed item %r: %r", item.get("msgid"),
                                exc)
            next_cursor = str(page.get("next_cursor") or cursor)
            if next_cursor != cursor:
                cursor = next_cursor
                await self._store.save_state(self._cursor_key(open_kfid), {"cursor": cursor})
            # has_more may be 1 with an empty list: only has_more says when to stop
            if not page.get("has_more"):
                return

    async def _take(self, item: dict[str, Any], nudged_at: float) -> None:
        origin = item.get("origin")
        if origin == CUSTOMER:
            inbound = to_inbound(item, nudged_at)
            await self._windows.opened(inbound.user_id, by_message=True, now=nudged_at)
            await self._on_message(inbound)
            await self._send_kept(inbound.user_id, nudged_at)
        elif origin == EVENT and isinstance(item.get("event"), dict):
            await self._event(item, nudged_at)
        if (said := news(item, nudged_at)) is not None:
            await self._on_platform_news(said)

    async def _event(self, item: dict[str, Any], nudged_at: float) -> None:
        event = item["event"]
        kind = event.get("event_type")
        user = customer_id(str(event.get("open_kfid", "")),
                           str(event.get("external_userid", "")))
        if kind == "enter_session":
            code = event.get("welcome_code")
            if not code:
                return  # greeted within 48 hours: WeCom gives no code; greet on a message
            self._keep_code(user, str(code), float(item.get("send_time") or nudged_at))
            await self._on_message(enter_session(item, nudged_at))
        elif kind == "session_status_change" and event.get("msg_code"):
            # a servicer took the session (say who) or ended it (ask for the rating)
            self._keep_code(user, str(event["msg_code"]),
                            float(item.get("send_time") or nudged_at))
        elif kind == "msg_send_fail":
            reason = SEND_FAILURES.get(int(event.get("fail_type", 0)), SEND_FAILURES[0])
            conversation = await self._store.latest_conversation(NAME, user)
            log.warning("wecom: message %s to %s was not delivered: %s",
                        event.get("fail_msgid"), user, reason)
            if conversation is not None:
                await self._store.record_event(ConversationEvent(
                    conversation.id, self._clock(), "undelivered", None,
                    {"platform_msg_id": event.get("fail_msgid"), "reason": reason}))

    def _keep_code(self, user: str, code: str, issued_at: float | None = None) -> None:
        """The next message to `user` goes with this event code, while it is valid."""
        if len(self._codes) > 10_000:  # codes never used (the customer said nothing more)
            now = self._clock()
            self._codes = {u: c for u, c in self._codes.items() if c[1] > now}
        issued = self._clock() if issued_at is None else issued_at
        self._codes[user] = (code, issued + self._config.welcome_code_seconds)

    # outbound

    async def send(self, conversation: Conversation, message: StoredMessage) -> None:
        open_kfid, external = split_customer(conversation.user_id)
        parts = split_text(render_quick_replies_as_text(message.text, message.quick_replies),
                           self._config.max_text_bytes, size)
        now = self._clock()
        # WeCom: a msgid is at most 32 of [0-9a-zA-Z_-]; one per part
        msgids = (f"{message.id[:29]}-{i:02d}" for i in itertools.count())
        code = self._codes.pop(conversation.user_id, None)
        if code is not None and code[1] > now:  # the greeting, on the entering event's code
            await self.api.send_on_event(code[0], parts[0], next(msgids))
            parts = parts[1:]
        if not parts:
            return
        if conversation.state is ConversationState.AGENT and \
                held_by_platform(conversation.agent_id):
            raise ChannelSendError("a WeCom servicer holds this session, and WeCom lets "
                                   "kefu write only to sessions it holds itself",
                                   retryable=False)

        async def send_part(part: str) -> None:
            await self.api.send_text(open_kfid, external, part, next(msgids))

        await self._windows.send(conversation.user_id, message, parts, send_part, now)

    async def _send_kept(self, user: str, now: float) -> None:
        open_kfid, external = split_customer(user)

        async def send_part(part: str) -> None:
            await self.api.send_text(open_kfid, external, part, uuid.uuid4().hex)

        await self._windows.send_kept(user, send_part, now)

    async def delivery_window(self, user_id: str, now: float) -> DeliveryWindow | None:
        return await self._windows.window(user_id, now)

    async def send_state(self, conversation: Conversation, position: int | None) -> None:
        """WeCom shows no state; the queue position comes in messages."""

    async def typing(self, conversation: Conversation) -> None:
        """WeCom customer service has no typing indicator."""

    async def absent_since(self, user_id: str) -> float | None:
        return None

    async def display_name(self, user_id: str) -> str:
        """The customer's WeChat nickname, for their record (handoff/customers.py)."""
        _, external = split_customer(user_id)
        return await self.api.nickname(external)

    async def finished_reading(self) -> None:
        """Wait until every read going on (and those it led to) is done."""
        await self._background.drain()

    async def aclose(self) -> None:
        try:
            async with asyncio.timeout(SHUTDOWN_SEND_SECONDS):
                await self._background.drain()
        except TimeoutError:
            # Safe to stop: a page's cursor is saved only after the page is stored.
            log.warning("wecom: shutting down in the middle of a read; the next run resumes")
            await self._background.cancel()
        await self.api.aclose()
