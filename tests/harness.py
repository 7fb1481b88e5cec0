"""Test harness: a real kefu app on 127.0.0.1 and visitors talking to it over WebSocket.

Tests read like a conversation:

    visitor = await kefu.visitor()
    replies = await visitor.say("退货怎么办")
    assert replies[0]["kind"] == "greeting"
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from bot.app import DESK, KNOWLEDGE_BASE, ROUTER, STORE, create_app
from bot.config import Config, secrets_in
from bot.store import Agent, AgentRole, Presence, Store
from handoff.auth import new_agent

FRAME_TIMEOUT = 10.0
# The secrets of every kefu started during the current test: tests/conftest.py fails a test
# whose log records contain one.
CONFIGURED_SECRETS: set[str] = set()


@dataclass
class Visitor:
    client: TestClient
    store: Store
    kefu: Kefu
    id: str
    ws: ClientWebSocketResponse | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)  # everything received
    seen: dict[str, set[int]] = field(default_factory=dict)  # conversation -> message seqs

    async def connect(self, **params: str) -> Visitor:
        self.ws = await self.client.ws_connect("/chat/ws", params={"visitor": self.id, **params})
        return self

    async def disconnect(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def send(self, frame: dict[str, Any] | str) -> None:
        assert self.ws is not None, "connect first"
        await self.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self) -> dict[str, Any]:
        assert self.ws is not None, "connect first"
        msg = await self.ws.receive(timeout=FRAME_TIMEOUT)
        if msg.type is not WSMsgType.TEXT:
            raise ConnectionError(f"socket closed: {msg.type.name} {self.ws.close_code}")
        frame: dict[str, Any] = json.loads(msg.data)
        self.frames.append(frame)
        if frame["type"] == "message":
            self.seen.setdefault(frame["conversation_id"], set()).add(frame["seq"])
        return frame

    async def receive_until(self, frame_type: str) -> list[dict[str, Any]]:
        frames = [await self.receive()]
        while frames[-1]["type"] != frame_type:
            frames.append(await self.receive())
        return frames

    async def open(self, lang: str | None = None) -> list[dict[str, Any]]:
        """Open the chat (as the widget does) and return what the bot said."""
        start = len(self.frames)
        await self.send({"type": "open", **({"lang": lang} if lang else {})})
        await self.receive_until("state")
        await self.settle()
        return _messages(self.frames[start:])

    async def say(self, text: str, client_msg_id: str | None = None) -> list[dict[str, Any]]:
        """Send a message and return the messages the bot sent because of it."""
        start = len(self.frames)
        await self.send({"type": "message", "text": text,
                         "client_msg_id": client_msg_id or uuid.uuid4().hex})
        await self.receive_until("ack")
        await self.settle()
        return _messages(self.frames[start:])

    async def settle(self) -> None:
        """Wait until kefu has finished, then until every message it stored has arrived."""
        await self.kefu.router.idle()
        conversation = await self.store.latest_conversation("webchat", self.id)
        if conversation is None:
            return
        stored = await self.store.messages(conversation.id)
        expected = {m.seq for m in stored if m.role.value != "customer"}
        while not expected <= self.seen.get(conversation.id, set()):
            await self.receive()

    async def state_becomes(self, **expected: Any) -> dict[str, Any]:
        """Read frames until a `state` frame has the expected fields (e.g. position=1)."""
        while True:
            frame = await self.receive()
            if frame["type"] == "state" and all(frame.get(k) == v for k, v in expected.items()):
                return frame

    @property
    def states(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "state"]


def _messages(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "message" and f["role"] != "customer"]


class Kefu:
    """One running kefu: app, server on 127.0.0.1, and a client for visitors."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.client: TestClient | None = None

    async def start(self) -> Kefu:
        CONFIGURED_SECRETS.update(secrets_in(self.config))
        app = await create_app(self.config, self.clock)
        self.client = TestClient(TestServer(app, host="127.0.0.1"))
        await self.client.start_server()
        return self

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    @property
    def app(self) -> Any:
        assert self.client is not None
        return self.client.app

    @property
    def router(self) -> Any:
        return self.app[ROUTER]

    @property
    def knowledge_base(self) -> Any:
        return self.app[KNOWLEDGE_BASE]

    @property
    def store(self) -> Store:
        return self.app[STORE]  # type: ignore[no-any-return]

    @property
    def desk(self) -> Any:
        return self.app[DESK]

    async def visitor(self, visitor_id: str | None = None, **params: str) -> Visitor:
        assert self.client is not None
        visitor = Visitor(self.client, self.store, self, visitor_id or "v" + uuid.uuid4().hex)
        return await visitor.connect(**params)

    async def queued_customer(self, text: str = "转人工") -> tuple[Visitor, str]:
        """A customer who asked for a person, and their conversation's id."""
        visitor = await self.visitor()
        await visitor.say(text)
        conversation = await self.store.latest_conversation("webchat", visitor.id)
        assert conversation is not None
        return visitor, conversation.id

    async def age_out(self, conversation_id: str) -> None:
        """Make the conversation idle for longer than the idle timeout."""
        conversation = await self.store.get_conversation(conversation_id)
        assert conversation is not None
        idle = self.config.conversation.idle_timeout_seconds
        await self.store.save_conversation(
            replace(conversation, last_activity_at=time.time() - idle - 1))

    async def add_agent(self, name: str, password: str = "correct horse", *,
                        role: AgentRole = AgentRole.AGENT, max_chats: int = 5,
                        online: bool = False) -> Agent:
        """An account, as `kefu agent add` makes it; `online` as if their console were open."""
        agent = new_agent(name, password, role, max_chats, self.clock())
        if online:
            agent = replace(agent, presence=Presence.ONLINE, last_seen_at=self.clock())
        await self.store.save_agent(agent)
        return agent

    async def agent(self, name: str, password: str = "correct horse") -> AgentClient:
        """An agent logged in through the API (bearer token), with a live socket."""
        assert self.client is not None
        agent = AgentClient(self.client, self, name)
        await agent.login(password)
        return agent


@dataclass
class AgentClient:
    """An agent using the console's API, as docs/agent-api.md describes it."""

    client: TestClient
    kefu: Kefu
    name: str
    token: str = ""
    ws: ClientWebSocketResponse | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def login(self, password: str) -> None:
        response = await self.client.post("/agent/api/login",
                                          json={"name": self.name, "password": password})
        assert response.status == 200, await response.text()
        self.token = (await response.json())["token"]
        self.client.session.cookie_jar.clear()  # this agent speaks with its bearer token
        self.ws = await self.client.ws_connect("/agent/ws", headers=self.headers)
        assert (await self.next_event())["type"] == "hello"

    async def get(self, path: str) -> Any:
        response = await self.client.get(f"/agent/api{path}", headers=self.headers)
        assert response.status == 200, f"{path}: {response.status} {await response.text()}"
        return await response.json()

    async def post(self, path: str, body: dict[str, Any] | None = None,
                   status: int = 200) -> Any:
        response = await self.client.post(f"/agent/api{path}", json=body or {},
                                          headers=self.headers)
        assert response.status == status, f"{path}: {response.status} {await response.text()}"
        await self.kefu.router.idle()
        return await response.json()

    async def act(self, conversation_id: str, action: str, status: int = 200,
                  **body: Any) -> Any:
        return await self.post(f"/conversations/{conversation_id}/{action}", body, status)

    async def next_event(self, frame_type: str | None = None,
                         conversation_id: str | None = None) -> dict[str, Any]:
        """The next live frame (of `frame_type`, about `conversation_id`, if given)."""
        assert self.ws is not None
        while True:
            msg = await self.ws.receive(timeout=FRAME_TIMEOUT)
            if msg.type is not WSMsgType.TEXT:
                raise ConnectionError(f"console socket closed: {msg.type.name}")
            frame: dict[str, Any] = json.loads(msg.data)
            self.events.append(frame)
            if ((frame_type is None or frame["type"] == frame_type)
                    and (conversation_id is None
                         or frame.get("conversation_id") == conversation_id)):
                return frame


def write_kb(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


async def wait_for(predicate: Any, within: float = 5.0) -> None:
    """Poll `predicate` (sync or async) until true; for effects with no event to await."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)
