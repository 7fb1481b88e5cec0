"""Telegram's Bot API on 127.0.0.1, for tests: the methods kefu uses, Telegram-shaped JSON,
and the flood limits answered as Telegram does (HTTP 429 with `retry_after`).

python-telegram-bot is pointed at it with `base_url`; it also plays Telegram's side of
webhooks (the `X-Telegram-Bot-Api-Secret-Token` header) and of long polling (getUpdates
with offset and timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.channels.local import serve

TOKEN = "123456789:AAHk9v_kefu-standin-token-0123456789"
BOT = {"id": 123456789, "is_bot": True, "first_name": "kefu", "username": "kefu_test_bot",
       "can_join_groups": True, "can_read_all_group_messages": True,
       "supports_inline_queries": False}
GROUP = -1001234567890


@dataclass
class Sent:
    chat_id: int
    text: str
    thread_id: int | None = None
    markup: dict[str, Any] | None = None
    at: float = 0.0


@dataclass
class Limits:
    per_chat_interval: float = 1.0  # seconds between two messages to one chat
    group_per_minute: int = 20
    overall_per_second: int = 30


@dataclass
class BotApiStandIn:
    limits: Limits = field(default_factory=Limits)
    sent: list[Sent] = field(default_factory=list)
    refused: int = 0  # 429s answered
    topics: dict[int, str] = field(default_factory=dict)
    closed_topics: set[int] = field(default_factory=set)
    webhook: dict[str, Any] = field(default_factory=dict)
    answered_callbacks: list[str] = field(default_factory=list)
    chat_actions: list[int] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._new_update = asyncio.Event()
        self._update_ids = itertools.count(500_000_000)
        self._message_ids = itertools.count(1000)
        self._threads = itertools.count(70)
        self._last_to_chat: dict[int, float] = {}
        self._group_sends: dict[int, deque[float]] = defaultdict(deque)
        self._all_sends: deque[float] = deque()
        self.server: TestServer | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", f"/bot{TOKEN}/{{method}}", self._call)
        self.server, url = await serve(app)
        return url

    async def close(self) -> None:
        self._new_update.set()
        if self.server is not None:
            await self.server.close()

    # updates

    def update(self, **content: Any) -> dict[str, Any]:
        return {"update_id": next(self._update_ids), **content}

    def private_message(self, user_id: int, text: str, language: str = "zh-hans"
                        ) -> dict[str, Any]:
        return self.update(message={
            "message_id": next(self._message_ids), "date": int(time.time()), "text": text,
            "chat": {"id": user_id, "type": "private", "first_name": f"用户{user_id}"},
            "from": {"id": user_id, "is_bot": False, "first_name": f"用户{user_id}",
                     "language_code": language},
            **({"entities": [{"type": "bot_command", "offset": 0, "length": len(text)}]}
               if text.startswith("/") else {})})

    def topic_message(self, user_id: int, thread_id: int | None, text: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()), "text": text,
            "chat": {"id": GROUP, "type": "supergroup", "title": "客服组", "is_forum": True},
            "from": {"id": user_id, "is_bot": False, "first_name": f"agent{user_id}"}}
        if thread_id is not None:
            message |= {"message_thread_id": thread_id, "is_topic_message": True}
        return self.update(message=message)

    def button(self, user_id: int, data: str) -> dict[str, Any]:
        return self.update(callback_query={
            "id": str(next(self._message_ids)), "data": data, "chat_instance": "42",
            "from": {"id": user_id, "is_bot": False, "first_name": f"用户{user_id}"},
            "message": {"message_id": next(self._message_ids), "date": int(time.time()),
                        "chat": {"id": user_id, "type": "private"}, "text": "rate"}})

    def queue(self, *updates: dict[str, Any]) -> None:
        """For long polling: the next getUpdates returns these."""
        self._updates.extend(updates)
        self._new_update.set()

    async def push(self, url: str, update: dict[str, Any], secret: str | None = None) -> int:
        """Webhook delivery, as Telegram makes it; the status kefu answered."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret
                   if secret is not None else self.webhook.get("secret_token", "")}
        async with aiohttp.ClientSession() as session, \
                session.post(url, json=update, headers=headers) as response:
            return response.status

    # the API

    async def _call(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        params: dict[str, Any] = dict(await request.post()) if request.can_read_body else {}
        params |= dict(request.query)
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return _error(404, f"Not Found: method {method} not found")
        return await handler(params)  # type: ignore[no-any-return]

    async def _getMe(self, params: dict[str, Any]) -> web.Response:
        return _ok(BOT)

    async def _getUpdates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset", 0) or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(),
                                       float(params.get("timeout", 0) or 0))
        return _ok([u for u in self._updates if u["update_id"] >= offset])

    async def _setWebhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook = {"url": params["url"], "secret_token": params.get("secret_token", ""),
                        "allowed_updates": json.loads(params.get("allowed_updates", "[]"))}
        return _ok(True)

    async def _deleteWebhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook = {}
        return _ok(True)

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> web.Response:
        self.answered_callbacks.append(params["callback_query_id"])
        return _ok(True)

    async def _sendChatAction(self, params: dict[str, Any]) -> web.Response:
        self.chat_actions.append(int(params["chat_id"]))
        return _ok(True)

    async def _createForumTopic(self, params: dict[str, Any]) -> web.Response:
        if int(params["chat_id"]) != GROUP:
            return _error(400, "Bad Request: the chat is not a forum")
        thread = next(self._threads)
        self.topics[thread] = params["name"]
        return _ok({"message_thread_id": thread, "name": params["name"],
                    "icon_color": 7322096})

    async def _closeForumTopic(self, params: dict[str, Any]) -> web.Response:
        self.closed_topics.add(int(params["message_thread_id"]))
        return _ok(True)

    async def _sendMessage(self, params: dict[str, Any]) -> web.Response:
        chat_id, now = int(params["chat_id"]), time.monotonic()
        wait = self._flood_wait(chat_id, now)
        if wait > 0:
            self.refused += 1
            retry = math.ceil(wait)
            return web.json_response({"ok": False, "error_code": 429,
                                      "description": f"Too Many Requests: retry after {retry}",
                                      "parameters": {"retry_after": retry}}, status=429)
        if not params.get("text"):
            return _error(400, "Bad Request: message text is empty")
        if len(params["text"]) > 4096:
            return _error(400, "Bad Request: message is too long")
        thread = int(params["message_thread_id"]) if params.get("message_thread_id") else None
        if chat_id == GROUP and thread is not None and thread not in self.topics:
            return _error(400, "Bad Request: message thread not found")
        self._last_to_chat[chat_id] = now
        self._all_sends.append(now)
        if chat_id < 0:
            self._group_sends[chat_id].append(now)
        markup = json.loads(params["reply_markup"]) if params.get("reply_markup") else None
        self.sent.append(Sent(chat_id, params["text"], thread, markup, now))
        message: dict[str, Any] = {"message_id": next(self._message_ids),
                                   "date": int(time.time()), "text": params["text"],
                                   "chat": {"id": chat_id,
                                            "type": "supergroup" if chat_id < 0 else "private"},
                                   "from": BOT}
        if thread is not None:
            message |= {"message_thread_id": thread, "is_topic_message": True}
        return _ok(message)

    def _flood_wait(self, chat_id: int, now: float) -> float:
        """Seconds the sender must still wait, by Telegram's three limits."""
        while self._all_sends and now - self._all_sends[0] >= 1.0:
            self._all_sends.popleft()
        waits = [0.0]
        if len(self._all_sends) >= self.limits.overall_per_second:
            waits.append(1.0 - (now - self._all_sends[0]))
        if chat_id < 0:
            sends = self._group_sends[chat_id]
            while sends and now - sends[0] >= 60.0:
                sends.popleft()
            if len(sends) >= self.limits.group_per_minute:
                waits.append(60.0 - (now - sends[0]))
        else:
            last = self._last_to_chat.get(chat_id)
            if last is not None and now - last < self.limits.per_chat_interval * 0.95:
                waits.append(self.limits.per_chat_interval - (now - last))
        return max(waits)

    def to(self, chat_id: int, thread_id: int | None = None) -> list[str]:
        return [s.text for s in self.sent if s.chat_id == chat_id
                and (thread_id is None or s.thread_id == thread_id)]


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": code, "description": description},
                             status=code)
