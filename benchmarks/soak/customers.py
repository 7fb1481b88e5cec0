"""Simulated web chat customers that do exactly what docs/webchat-protocol.md tells a
client to do: send `open` on every connection, resend every message not yet acknowledged
(after a reconnect, and 1 s after a `not_stored`), reconnect with the conversation and the
highest contiguous `seq` seen, and drop a message whose (conversation, seq) was shown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

RESEND_AFTER_NOT_STORED_SECONDS = 1.0
FROZEN_SECONDS = 45.0  # no ack and no not_stored this long on an open socket: frozen
RECONNECT_FIRST_SECONDS, RECONNECT_MAX_SECONDS = 0.5, 5.0
ARRIVAL_SECONDS = 2.0  # customers arrive over this long, not in one instant


@dataclass
class Question:
    text: str
    client_msg_id: str
    acked_at: float | None = None
    seq: int | None = None  # its place in the transcript, from the ack
    sent_at: float | None = None  # last sent, waiting for its ack or not_stored


@dataclass
class Customer:
    """One visitor. `urls` are the kefu processes; a lost socket reconnects to the next
    (what a load balancer would do with a process that is gone)."""

    urls: Callable[[], list[str]]
    questions: list[Question]
    think_seconds: tuple[float, float] = (0.5, 1.5)
    id: str = field(default_factory=lambda: "soak" + uuid.uuid4().hex[:16])
    conversation_id: str | None = None
    shown: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    frozen: int = 0  # sends that got neither ack nor not_stored within FROZEN_SECONDS
    not_stored: int = 0
    reconnects: int = 0
    answer_seen_at: dict[int, float] = field(default_factory=dict)  # seq -> when shown
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _acked: asyncio.Event = field(default_factory=asyncio.Event)
    _attempt: int = 0

    @property
    def contiguous(self) -> int:
        seqs = {seq for (c, seq) in self.shown if c == self.conversation_id}
        n = 0
        while n + 1 in seqs:
            n += 1
        return n

    def greeted(self) -> bool:
        return any(f["kind"] == "greeting" and c == self.conversation_id
                   for (c, _), f in self.shown.items())

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """Ask every question, one after another (each once acknowledged), then stay
        connected until `stop`, reading what kefu says."""
        await asyncio.sleep(random.uniform(0, ARRIVAL_SECONDS))
        keeper = asyncio.create_task(self._stay_connected(http, stop))
        try:
            for question in self.questions:
                self._acked.clear()
                await self._send(question)
                while question.acked_at is None:
                    await self._acked.wait()
                    self._acked.clear()
                await asyncio.sleep(random.uniform(*self.think_seconds))
            await stop.wait()
        finally:
            keeper.cancel()
            if self._ws is not None:
                await self._ws.close()

    async def _send(self, question: Question) -> None:
        question.sent_at = time.time()
        if self._ws is None or self._ws.closed:
            return  # sent on the next connection, with everything else pending
        # A failure is the socket closing: the reader sees it and reconnects.
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._ws.send_json({"type": "message", "text": question.text,
                                      "client_msg_id": question.client_msg_id})

    def _pending(self) -> list[Question]:
        return [q for q in self.questions if q.sent_at is not None and q.acked_at is None]

    async def _stay_connected(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        pause = RECONNECT_FIRST_SECONDS
        while not stop.is_set():
            urls = self.urls()
            url = urls[self._attempt % len(urls)]
            self._attempt += 1
            params = {"visitor": self.id}
            if self.conversation_id is not None:
                params |= {"conversation": self.conversation_id, "after": str(self.contiguous)}
            try:
                self._ws = await http.ws_connect(f"{url}/chat/ws", params=params,
                                                 timeout=aiohttp.ClientWSTimeout(ws_close=10))
                await self._ws.send_json({"type": "open"})
                for question in self._pending():
                    await self._send(question)
                pause = RECONNECT_FIRST_SECONDS
                await self._read(self._ws)
            except (aiohttp.ClientError, ConnectionError, TimeoutError, RuntimeError):
                pass
            if stop.is_set():
                return
            self.reconnects += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX_SECONDS)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            try:
                msg = await ws.receive(timeout=1.0)
            except TimeoutError:
                if self._frozen_now():
                    await ws.close()  # as a person would: reload the page
                    return
                continue
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            self._heard(json.loads(msg.data))

    def _frozen_now(self) -> bool:
        now = time.time()
        stuck = [q for q in self._pending() if q.sent_at and now - q.sent_at > FROZEN_SECONDS]
        self.frozen += len(stuck)
        return bool(stuck)

    def _heard(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "state":
            self.conversation_id = self.conversation_id or frame["conversation_id"]
            if frame["conversation_id"] != self.conversation_id:
                self.conversation_id = frame["conversation_id"]
        elif kind == "message":
            key = (frame["conversation_id"], frame["seq"])
            if key in self.shown:
                return  # already shown: dropped, as the protocol says
            self.shown[key] = frame
            if frame["role"] != "customer":
                self.answer_seen_at[frame["seq"]] = time.time()
        elif kind == "ack":
            question = self._question(frame["client_msg_id"])
            if question is not None and question.acked_at is None:
                question.acked_at = time.time()
                question.seq = frame["seq"]
                if frame.get("seq") is None:  # a duplicate: its seq is in the transcript
                    question.seq = None
                self.conversation_id = frame["conversation_id"]
                self._acked.set()
        elif kind == "error" and frame.get("code") == "not_stored":
            question = self._question(frame.get("client_msg_id", ""))
            if question is not None and question.acked_at is None:
                self.not_stored += 1
                question.sent_at = None
                asyncio.get_running_loop().call_later(
                    RESEND_AFTER_NOT_STORED_SECONDS,
                    lambda: asyncio.ensure_future(self._send(question)))

    def _question(self, client_msg_id: str) -> Question | None:
        return next((q for q in self.questions if q.client_msg_id == client_msg_id), None)


def new_customers(count: int, asked: tuple[str, ...], urls: Callable[[], list[str]]
                  ) -> list[Customer]:
    return [Customer(urls, [Question(text, uuid.uuid4().hex) for text in asked])
            for _ in range(count)]
