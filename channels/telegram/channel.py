"""Telegram: customers write to the business's bot; agents may answer from a group.

python-telegram-bot runs inside kefu's own aiohttp app and event loop: by long polling
(the default: no public HTTPS needed) or by webhook at `webhook_path`, where the
`X-Telegram-Bot-Api-Secret-Token` header is checked on every request. Updates are dropped
by `update_id` when Telegram delivers one twice. Everything sent goes through the pacer
(channels/telegram/pacer.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ContextTypes,
    TypeHandler,
)

from bot.logs import hide_secrets_in
from bot.messages import (
    Attachment,
    InboundEvent,
    InboundMessage,
    Kind,
    Role,
    StoredMessage,
    split_text,
)
from bot.router import Accepted
from bot.stopping import waiting_in
from bot.store import Conversation
from bot.tasks import BackgroundTasks
from bot.wire import parse_json, same_secret
from channels.telegram.pacer import Outgoing, Pacer
from channels.telegram.settings import TelegramConfig

log = logging.getLogger(__name__)

NAME = "telegram"
REMEMBERED_UPDATES = 10_000  # update ids kept to drop duplicates
TYPING_EVERY_SECONDS = 5.0  # Telegram shows "typing..." for about 5 s
UPDATES = ["message", "callback_query"]
# Loggers that write the token (in the Bot API's URLs: httpx at INFO on every request, the
# bot at start-up) or the webhook's secret (the bot's calls with their parameters, DEBUG).
LIBRARY_LOGGERS = ("httpx", "telegram.Bot", "telegram.ext.ExtBot")
MERGED_NOTE = "（{n} 条消息已合并 · {n} messages merged）"

TopicListener = Callable[[Message], Awaitable[None]]


class _Arrivals(asyncio.Queue[object]):
    """The queue polling puts Telegram's updates in, noting when each arrived, so that the
    greeting's latency counts from when kefu received the update, whatever it waited for
    afterwards."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self._clock = clock
        self.received_at: dict[int, float] = {}  # update id -> when it arrived

    async def put(self, item: object) -> None:
        self.note(item)
        await super().put(item)

    def put_nowait(self, item: object) -> None:
        self.note(item)
        super().put_nowait(item)

    def note(self, item: object) -> None:
        if isinstance(item, Update):
            self.received_at.setdefault(item.update_id, self._clock())


class TelegramChannel:
    name = NAME

    def __init__(self, config: TelegramConfig,
                 on_message: Callable[[InboundMessage], Awaitable[Accepted]],
                 clock: Callable[[], float] = time.time, stop_seconds: float = 30.0) -> None:
        self._config = config
        self._stop_seconds = stop_seconds  # server.stop_timeout_seconds
        self._on_message = on_message
        hide_secrets_in(frozenset({config.token, config.secret_token}), *LIBRARY_LOGGERS)
        self._clock = clock
        # Updates are handled concurrently, so a chat whose messages wait (a 429, a burst
        # paced at one a second) never holds up another chat's greeting. Each chat stays in
        # order: `_on_update` hands an update to the router, which queues it on the
        # customer's lane, before it awaits anything, and updates start in Telegram's order.
        self._arrivals = _Arrivals(clock)
        builder = ApplicationBuilder().token(config.token).base_url(
            f"{config.api_base}/bot").base_file_url(f"{config.api_base}/file/bot"
            ).update_queue(self._arrivals).concurrent_updates(config.concurrent_updates)
        if config.mode == "webhook":
            builder = builder.updater(None)
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.pacer: Pacer | None = None
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._typing_at: dict[int, float] = {}
        self._topic_listener: TopicListener | None = None
        self._callback_answers = BackgroundTasks("telegram callback answers")
        self._handling: dict[asyncio.Task[Any], str] = {}  # updates being handled

    def on_topic_message(self, listener: TopicListener) -> None:
        """Messages written in the agents' group go to the bridge."""
        self._topic_listener = listener

    @property
    def bot(self) -> Any:
        return self.application.bot

    def add_routes(self, app: web.Application) -> None:
        if self._config.mode == "webhook":
            app.router.add_post(self._config.webhook_path, self._webhook)
        app.cleanup_ctx.append(self._running)

    async def _running(self, app: web.Application) -> Any:
        await self.application.initialize()  # getMe: a wrong token stops here, clearly
        self.pacer = Pacer(self._send_now, per_chat_per_second=self._config.per_chat_per_second,
                           group_per_minute=self._config.bridge.group_per_minute,
                           overall_per_second=self._config.overall_per_second,
                           max_chars=self._config.max_text_chars, merged_note=MERGED_NOTE)
        self.pacer.start()
        if self._config.mode == "webhook":
            if self._config.webhook_url:
                await self.bot.set_webhook(self._config.webhook_url, allowed_updates=UPDATES,
                                           secret_token=self._config.secret_token)
        elif self.application.updater is not None:
            await self.bot.delete_webhook()  # polling and a webhook cannot both be set
            await self.application.updater.start_polling(
                timeout=self._config.poll_timeout_seconds, allowed_updates=UPDATES)
        await self.application.start()
        log.info("telegram: @%s ready (%s)", self.bot.username, self._config.mode)
        yield
        if self.application.updater is not None and self.application.updater.running:
            await self.application.updater.stop()
        await self.pacer.aclose()  # first: handlers still running may wait for a send
        await self._handlers_done(self._stop_seconds / 2)
        await self.application.stop()  # waits for every update's handler to end
        await self._callback_answers.drain()
        await self.application.shutdown()

    # inbound

    async def _webhook(self, request: web.Request) -> web.Response:
        received_at = self._clock()
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not same_secret(secret, self._config.secret_token):
            log.warning("telegram: webhook call with a wrong secret from %s", request.remote)
            return web.Response(status=403, text="wrong secret token")
        try:
            data = parse_json(await request.read())
            update = Update.de_json(data, self.bot)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("telegram: unreadable update refused: %s", exc)
            return web.Response(status=400, text="not an update")
        if update is None:
            return web.Response(status=400, text="not an update")
        self._arrivals.received_at[update.update_id] = received_at
        await self.application.process_update(update)  # stored before Telegram hears OK
        return web.Response(text="ok")

    def _first_time(self, update_id: int) -> bool:
        if update_id in self._seen:
            return False
        self._seen[update_id] = None
        if len(self._seen) > REMEMBERED_UPDATES:
            self._seen.popitem(last=False)
        return True

    async def _handlers_done(self, seconds: float) -> None:
        """Updates still being handled at a stop are waited for (their customers' messages
        are being stored), for `seconds` at most: one that takes longer is named in the log
        with where it waits, and cancelled, so the stop never waits for ever."""
        if not self._handling:
            return
        _, late = await asyncio.wait(set(self._handling), timeout=seconds)
        for task in late:
            log.error("telegram: stopping: %s still being handled after %.1f s, waiting in "
                      "%s; cancelled", self._handling.get(task, "an update"), seconds,
                      waiting_in(task))
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=seconds)

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        task = asyncio.current_task()
        if task is None:
            await self._handle_update(update)
            return
        chat = update.effective_chat
        self._handling[task] = f"update {update.update_id}" + (
            f" (chat {chat.id})" if chat is not None else "")
        try:
            await self._handle_update(update)
        finally:
            self._handling.pop(task, None)

    async def _handle_update(self, update: Update) -> None:
        received_at = self._arrivals.received_at.pop(update.update_id, None) or self._clock()
        if not self._first_time(update.update_id):
            log.info("telegram: update %s delivered twice; dropped", update.update_id)
            return
        query = update.callback_query
        if query is not None:
            await self._on_button(query, received_at)
            return
        message = update.message
        if message is None:
            return
        if message.chat.type == "private":
            await self._on_message(self._inbound(message, received_at))
        elif message.chat.id == self._config.bridge.group_id and self._topic_listener:
            await self._topic_listener(message)

    def _inbound(self, message: Message, received_at: float) -> InboundMessage:
        user = message.from_user
        language = (user.language_code or "") if user else ""
        common: dict[str, Any] = {
            "channel": NAME, "user_id": str(message.chat.id), "received_at": received_at,
            "platform_msg_id": f"{message.chat.id}:{message.message_id}",
            "lang": "zh" if language.startswith("zh") else "en" if language else None,
            "display_name": user.full_name if user else "",
        }
        text = message.text or ""
        command, _, payload = text.partition(" ")
        if command.split("@")[0] == "/start":  # t.me/<bot>?start=PAYLOAD sends "/start PAYLOAD"
            return InboundMessage(text="", event=InboundEvent.OPEN,
                                  source=payload.strip() or None, **common)
        if text:
            return InboundMessage(text=text, **common)
        return InboundMessage(text=message.caption or "", attachments=(_attachment(message),),
                              **common)

    async def _on_button(self, query: Any, received_at: float) -> None:
        data = query.data or ""
        self._callback_answers.spawn(_answer_callback(query))  # not before the rating: order
        if not data.startswith("rate:") or not data[5:].isdigit() or query.message is None:
            return
        score = int(data[5:])
        if 1 <= score <= 5:
            await self._on_message(InboundMessage(
                channel=NAME, user_id=str(query.message.chat.id), platform_msg_id=None,
                text="", received_at=received_at, event=InboundEvent.RATING, rating=score))

    # outbound

    async def _send_now(self, message: Outgoing) -> Any:
        return await self.bot.send_message(message.chat_id, message.text,
                                           message_thread_id=message.thread_id,
                                           reply_markup=message.markup)

    def submit(self, message: Outgoing) -> asyncio.Future[Any]:
        """Queue through the pacer (the bridge's posts use this too)."""
        assert self.pacer is not None, "the bot is not running"
        return self.pacer.submit(message)

    async def post(self, message: Outgoing) -> Any:
        return await self.submit(message)

    @property
    def max_text_chars(self) -> int:
        return self._config.max_text_chars

    async def send(self, conversation: Conversation, message: StoredMessage) -> None:
        text = message.text
        if message.role is Role.AGENT and message.meta.get("agent_name"):
            text = f"{message.meta['agent_name']}：{text}"
        parts = split_text(text, self._config.max_text_chars)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            await self.post(Outgoing(int(conversation.user_id), part,
                                     markup=_markup(message) if last else None,
                                     urgent=message.kind is Kind.GREETING))

    async def send_state(self, conversation: Conversation, position: int | None) -> None:
        """Telegram has no place for a state; the queue position comes in messages."""

    async def typing(self, conversation: Conversation) -> None:
        chat_id, now = int(conversation.user_id), self._clock()
        if now - self._typing_at.get(chat_id, 0.0) < TYPING_EVERY_SECONDS:
            return
        self._typing_at[chat_id] = now
        try:
            await self.bot.send_chat_action(chat_id, "typing")
        except TelegramError as exc:
            log.info("telegram: typing not shown to %s: %s", chat_id, exc)

    async def absent_since(self, user_id: str) -> float | None:
        return None  # Telegram does not say when a customer stops looking

    async def aclose(self) -> None:
        """Stopping is done by the app's clean-up (see `_running`)."""


async def _answer_callback(query: Any) -> None:
    """Stops the button's spinner."""
    try:
        await query.answer()
    except TelegramError as exc:
        log.info("telegram: answerCallbackQuery failed: %s", exc)


def _markup(message: StoredMessage) -> Any:
    if not message.quick_replies:
        return None
    if message.kind is Kind.RATING_REQUEST:  # buttons that rate, answered with a callback
        return InlineKeyboardMarkup([
            [InlineKeyboardButton(option, callback_data=f"rate:{option[0]}")]
            for option in message.quick_replies])
    return ReplyKeyboardMarkup([[KeyboardButton(q)] for q in message.quick_replies],
                               one_time_keyboard=True, resize_keyboard=True)


def _attachment(message: Message) -> Attachment:
    if message.photo:
        return Attachment("image", message.photo[-1].file_id)
    if message.location is not None:
        return Attachment("location",
                          f"geo:{message.location.latitude},{message.location.longitude}")
    for kind in ("voice", "audio", "video", "document", "sticker", "video_note"):
        item = getattr(message, kind, None)
        if item is not None:
            return Attachment(kind, item.file_id, getattr(item, "file_name", "") or "")
    return Attachment("other", "")
