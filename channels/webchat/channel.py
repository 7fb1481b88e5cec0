"""Web chat over WebSocket; the protocol is documented in docs/webchat-protocol.md."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bot.channel import CUSTOMER_TYPING
from bot.cluster import Fanout
from bot.messages import ConversationState, InboundEvent, InboundMessage, StoredMessage
from bot.priority import Priority, priority
from bot.ratelimit import RateLimiter
from bot.router import Accepted
from bot.store import STORE_OUTAGES, Conversation, Store
from bot.wire import BadJson, parse_json
from channels.webchat.settings import WebChatConfig

log = logging.getLogger(__name__)

NAME = "webchat"
_VISITOR = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_CLIENT_MSG_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
STATIC = files("channels.webchat") / "static"
# An open tab renews its visitor's presence this often; three missed beats mean gone.
PRESENCE_HEARTBEAT_SECONDS = 15.0
TYPING_EVERY_SECONDS = 2.0  # a typing customer is told to agents at most this often


class FrameError(Exception):
    """A client frame that kefu cannot accept; becomes an `error` frame, not a crash."""

    def __init__(self, code: str, message: str, client_msg_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.client_msg_id = client_msg_id


@dataclass(frozen=True, slots=True)
class ClientFrame:
    type: str
    text: str = ""
    client_msg_id: str | None = None
    score: int | None = None
    lang: str | None = None


def parse_frame(data: str, max_text_chars: int) -> ClientFrame:
    try:
        frame = parse_json(data)
    except BadJson:
        raise FrameError("bad_json", "frames must be JSON objects") from None
    if not isinstance(frame, dict):
        raise FrameError("bad_json", "frames must be JSON objects")
    kind = frame.get("type")
    lang = frame.get("lang") if isinstance(frame.get("lang"), str) else None
    if kind == "open":
        return ClientFrame("open", lang=lang)
    if kind == "typing":
        return ClientFrame("typing")
    if kind == "rating":
        score = frame.get("score")
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise FrameError("bad_rating", "score must be a whole number from 1 to 5")
        return ClientFrame("rating", score=score)
    if kind == "message":
        msg_id = frame.get("client_msg_id")
        if not isinstance(msg_id, str) or not _CLIENT_MSG_ID.match(msg_id):
            raise FrameError("bad_client_msg_id",
                             "client_msg_id must be 1-64 letters, digits or _.:-")
        text = frame.get("text")
        if not isinstance(text, str) or not text.strip():
            raise FrameError("empty_text", "the message has no text", msg_id)
        if len(text) > max_text_chars:
            raise FrameError("text_too_long",
                             f"messages are limited to {max_text_chars} characters", msg_id)
        return ClientFrame("message", text=text.strip(), client_msg_id=msg_id, lang=lang)
    raise FrameError("unknown_type", f"unknown frame type {kind!r}")


def _client_msg_id(data: str | bytes) -> str | None:
    """The client_msg_id of a frame kefu will not take, so the client knows which one."""
    try:
        frame = parse_json(data)
    except BadJson:
        return None
    msg_id = frame.get("client_msg_id") if isinstance(frame, dict) else None
    return msg_id if isinstance(msg_id, str) and _CLIENT_MSG_ID.match(msg_id) else None


def message_frame(message: StoredMessage) -> dict[str, Any]:
    frame = {
        "type": "message",
        "id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "role": message.role.value,
        "kind": message.kind.value,
        "text": message.text,
        "ts": message.ts,
        "quick_replies": list(message.quick_replies),
    }
    if message.platform_msg_id is not None:
        frame["client_msg_id"] = message.platform_msg_id  # lets the sender match its own
    if "agent_name" in message.meta:
        frame["name"] = message.meta["agent_name"]  # the customer sees who is answering
    return frame


def state_frame(conversation: Conversation, position: int | None) -> dict[str, Any]:
    return {
        "type": "state",
        "conversation_id": conversation.id,
        "state": conversation.state.value,
        "position": position,
    }


class WebChatChannel:
    name = NAME

    def __init__(
        self,
        config: WebChatConfig,
        store: Store,
        on_message: Callable[[InboundMessage], Awaitable[Accepted]],
        fanout: Fanout,
    ) -> None:
        self._config = config
        self._store = store
        self._on_message = on_message
        self._fanout = fanout
        self._sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._last_sent: dict[str, tuple[str, int]] = {}  # visitor -> conversation, seq
        self._typing_told: dict[str, float] = {}  # visitor -> when consoles last heard it
        self._limiter = RateLimiter(config.rate_limit_messages, config.rate_limit_seconds)
        self._demo_page = (STATIC / "demo.html").read_text(encoding="utf-8")
        fanout.subscribe(NAME, self._heard)
        fanout.on_reconnect(self._catch_up)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/chat/ws", self._websocket)
        app.router.add_get("/widget.js", self._static("widget.js", "application/javascript"))
        app.router.add_get("/", self._demo)
        app.cleanup_ctx.append(self._presence_heartbeat)

    async def _demo(self, request: web.Request) -> web.Response:
        """The demo page, its embed snippet naming the address the page was asked for (a
        proxy's X-Forwarded-Proto and -Host when it set them)."""
        scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0]
        host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0]
        origin = html.escape(f"{scheme.strip()}://{host.strip()}", quote=True)
        return web.Response(text=self._demo_page.replace("{{ origin }}", origin),
                            content_type="text/html", charset="utf-8")

    def _static(
        self, name: str, content_type: str
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        body = (STATIC / name).read_bytes()

        async def serve(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type, charset="utf-8")

        return serve

    # outbound: through the fan-out, to whichever process holds the visitor's sockets

    async def send(self, conversation: Conversation, message: StoredMessage) -> None:
        await self._publish(conversation.user_id, message_frame(message))

    async def send_state(self, conversation: Conversation, position: int | None) -> None:
        await self._publish(conversation.user_id, state_frame(conversation, position))

    async def typing(self, conversation: Conversation) -> None:
        await self._publish(conversation.user_id,
                            {"type": "typing", "conversation_id": conversation.id})

    async def _publish(self, visitor: str, frame: dict[str, Any]) -> None:
        await self._fanout.publish(NAME, {"visitor": visitor, "frame": frame})

    async def _heard(self, news: dict[str, Any]) -> None:
        visitor, frame = news["visitor"], news["frame"]
        if visitor not in self._sockets:
            return
        if frame["type"] == "message":
            self._last_sent[visitor] = (frame["conversation_id"], frame["seq"])
        await self._broadcast(visitor, frame)

    async def _broadcast(self, visitor: str, frame: dict[str, Any]) -> None:
        """Send to every open tab of the visitor; a closed one catches up on reconnect."""
        for ws in list(self._sockets.get(visitor, ())):
            try:
                await ws.send_json(frame, dumps=_dumps)
            except (ConnectionError, RuntimeError) as exc:
                log.info("webchat %s: socket gone (%s); the message waits for reconnect",
                         visitor, exc)

    async def _catch_up(self) -> None:
        """News may have been missed while Redis was away: send connected visitors what
        they have not had (they drop what they had, by seq)."""
        for visitor in list(self._sockets):
            conversation_id, seq = self._last_sent.get(visitor, ("", 0))
            for ws in list(self._sockets.get(visitor, ())):
                await self._replay(ws, visitor, conversation_id, seq)

    # presence: whether a visitor still has a tab open, on any process

    def _presence_key(self, visitor: str) -> str:
        return f"webchat:presence:{visitor}"

    async def _mark_present(self, visitors: list[str]) -> None:
        until = time.time() + PRESENCE_HEARTBEAT_SECONDS * 3
        for visitor in visitors:
            await self._store.save_state(self._presence_key(visitor),
                                         {"connected_until": until})

    async def _presence_heartbeat(self, app: web.Application) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:
                await asyncio.sleep(PRESENCE_HEARTBEAT_SECONDS)
                try:
                    await self._mark_present(list(self._sockets))
                except STORE_OUTAGES as exc:  # an outage is expected, and said once a beat
                    log.warning("webchat: presence heartbeat not saved (%s)", exc)
                except Exception:
                    log.exception("webchat: presence heartbeat failed")

        task = asyncio.create_task(beat())
        yield
        task.cancel()

    async def is_present(self, user_id: str) -> bool:
        """Whether the visitor has a tab open here or on another process."""
        if user_id in self._sockets:
            return True
        state = await self._store.load_state(self._presence_key(user_id))
        return state is not None and state.get("connected_until", 0) > time.time()

    async def _customer_typing(self, visitor: str, now: float) -> None:
        """Agents' consoles hear it, at most once per TYPING_EVERY_SECONDS per visitor."""
        if now - self._typing_told.get(visitor, 0.0) < TYPING_EVERY_SECONDS:
            return
        self._typing_told[visitor] = now
        await self._fanout.publish(CUSTOMER_TYPING, {"channel": NAME, "user_id": visitor})

    async def absent_since(self, user_id: str) -> float | None:
        """When the visitor's last tab closed; None while one is open (here or on another
        process) or when kefu never saw them leave."""
        if user_id in self._sockets:
            return None
        state = await self._store.load_state(self._presence_key(user_id))
        if state is None or state.get("connected_until", 0) > time.time():
            return None
        left_at = state.get("left_at")
        return float(left_at) if left_at is not None else None

    async def aclose(self) -> None:
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")

    # inbound

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        visitor = request.query.get("visitor", "")
        if not _VISITOR.match(visitor):
            raise web.HTTPBadRequest(text="visitor must be 8-64 letters, digits, _ or -")
        origin = request.headers.get("Origin")
        if self._config.allowed_origins and origin not in self._config.allowed_origins:
            raise web.HTTPForbidden(text="this origin may not use the chat")
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="after must be a whole number") from None
        ws = web.WebSocketResponse(max_msg_size=self._config.max_frame_bytes, heartbeat=30.0)
        await ws.prepare(request)
        self._sockets[visitor].add(ws)
        # Presence is for other processes' timers: written alongside, not waited for before
        # the first frame is read (that would put a commit on the greeting's path).
        present = asyncio.ensure_future(self._save_presence(visitor,
                                                            self._mark_present([visitor])))
        try:
            with priority(Priority.GREETING):  # opening the chat: on the greeting's path
                await self._replay(ws, visitor, request.query.get("conversation"), after)
            await self._receive(ws, visitor)
        except STORE_OUTAGES as exc:  # the client reconnects, and is replayed then
            log.warning("webchat %s: store unavailable (%s); closing, try again later",
                        visitor, exc)
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"try again later")
        except ConnectionError as exc:  # the client left while being replayed to
            log.info("webchat %s: socket gone during replay (%s)", visitor, exc)
        finally:
            self._sockets[visitor].discard(ws)
            await present  # so that leaving is written after arriving
            if not self._sockets[visitor]:  # their last tab: forgotten here, store down or not
                del self._sockets[visitor]
                self._last_sent.pop(visitor, None)
                self._typing_told.pop(visitor, None)
                await self._save_presence(visitor, self._store.save_state(
                    self._presence_key(visitor), {"connected_until": 0, "left_at": time.time()}))
        return ws

    async def _save_presence(self, visitor: str, write: Awaitable[None]) -> None:
        """A presence that the store could not take is only logged: the socket's own work
        (and forgetting it here) goes on."""
        try:
            await write
        except STORE_OUTAGES as exc:
            log.warning("webchat %s: presence not saved (%s)", visitor, exc)

    async def _replay(
        self, ws: web.WebSocketResponse, visitor: str, conversation_id: str | None, after: int
    ) -> None:
        """Send what the client has not seen of the visitor's current conversation."""
        conversation = await self._store.current_conversation(NAME, visitor)
        if conversation is None:
            return
        if conversation.id != conversation_id:
            after = 0  # a different conversation from the one the client knows: send it all
        position = await self._store.queue_position(conversation.id)
        await ws.send_json(state_frame(conversation, position), dumps=_dumps)
        for message in await self._store.messages(conversation.id, after):
            await ws.send_json(message_frame(message), dumps=_dumps)

    async def _receive(self, ws: web.WebSocketResponse, visitor: str) -> None:
        """Every frame counts against the visitor's rate limit, readable or not, so a flood
        of junk costs kefu no more than a flood of messages: a few error frames, then the
        socket is closed."""
        strikes = 0
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break  # errors (oversized, invalid UTF-8) are closed by aiohttp with a code
            received_at = time.time()
            try:
                if not self._limiter.allow(visitor):
                    strikes += 1
                    if strikes >= self._config.rate_limit_strikes_before_close:
                        log.warning("webchat %s: closed for flooding", visitor)
                        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"flooding")
                        return
                    wait = self._limiter.retry_after(visitor)
                    raise FrameError("rate_limited",
                                     f"too many messages; try again in {wait:.1f} s",
                                     _client_msg_id(msg.data))
                if msg.type is WSMsgType.BINARY:
                    raise FrameError("binary", "send text frames with JSON")
                frame = parse_frame(msg.data, self._config.max_text_chars)
                if frame.type == "typing":  # for the agent's console
                    await self._customer_typing(visitor, received_at)
                    continue
                await self._accept(ws, visitor, frame, received_at)
            except FrameError as exc:
                log.info("webchat %s: rejected frame: %s %s", visitor, exc.code, exc)
                await self._error(ws, exc)

    async def _accept(
        self, ws: web.WebSocketResponse, visitor: str, frame: ClientFrame, received_at: float
    ) -> None:
        event = {"open": InboundEvent.OPEN, "message": InboundEvent.MESSAGE,
                 "rating": InboundEvent.RATING}[frame.type]
        inbound = InboundMessage(
            channel=NAME, user_id=visitor, platform_msg_id=frame.client_msg_id,
            text=frame.text, received_at=received_at, event=event, lang=frame.lang,
            rating=frame.score,
        )
        try:
            accepted = await self._on_message(inbound)
        except RuntimeError as exc:
            raise FrameError("not_stored", "the message could not be saved; send it again",
                             frame.client_msg_id) from exc
        if frame.type == "open":  # tells the client its conversation before anything else
            position = (await self._store.queue_position(accepted.conversation_id)
                        if accepted.state is ConversationState.QUEUED else None)
            await ws.send_json({"type": "state", "conversation_id": accepted.conversation_id,
                                "state": accepted.state.value, "position": position},
                               dumps=_dumps)
        elif frame.type == "message":
            await ws.send_json({"type": "ack", "client_msg_id": frame.client_msg_id,
                                "conversation_id": accepted.conversation_id,
                                "seq": accepted.seq, "duplicate": accepted.duplicate},
                               dumps=_dumps)

    async def _error(self, ws: web.WebSocketResponse, error: FrameError) -> None:
        frame: dict[str, Any] = {"type": "error", "code": error.code, "message": str(error)}
        if error.client_msg_id is not None:
            frame["client_msg_id"] = error.client_msg_id
        await ws.send_json(frame, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
