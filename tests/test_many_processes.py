"""Several kefu processes on one real Redis, with real WebSocket clients: order, fan-out,
a process killed mid-burst, and Redis restarting under traffic."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.messages import Role
from bot.store.redis import RedisStore
from tests.conftest import ALWAYS_OPEN, STARTUP_POLLS, TEST_KB
from tests.harness import wait_for, write_kb
from tests.redis_support import REDIS_URL, forget, require_redis, unique_prefix

KEFU = str(Path(sys.executable).parent / "kefu")
ANSWERS = {"退货怎么办": "签收后 7 天内可以无理由退货。", "什么时候退款": "退款 1-3 个工作日到账。",
           "客服电话是多少": "客服热线 400-800-1234。"}
PASSWORD = "correct horse"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Kefu:
    """`kefu serve` in a process of its own."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.port, self.log = config, free_port(), log
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Kefu:
        log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            self.process = await asyncio.create_subprocess_exec(
                KEFU, "--config", str(self.config), "serve", "--port", str(self.port),
                stdout=log, stderr=subprocess.STDOUT)
        finally:
            os.close(log)
        async with aiohttp.ClientSession() as http:
            for _ in range(STARTUP_POLLS):
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if self.process.returncode is not None:
                    raise RuntimeError(f"kefu exited; see {self.log}")
                await asyncio.sleep(0.05)
        raise TimeoutError("kefu did not start")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()


class Visitor:
    """A web chat customer: one socket per process they are connected to."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http, self.id = http, "v" + uuid.uuid4().hex
        self.sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
        self.frames: list[dict[str, Any]] = []
        self.acked: set[str] = set()
        self._readers: list[asyncio.Task[None]] = []

    async def connect(self, kefu: Kefu) -> None:
        ws = await self.http.ws_connect(f"{kefu.url}/chat/ws", params={"visitor": self.id})
        self.sockets[kefu.url] = ws
        self._readers.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            self.frames.append(frame)
            if frame["type"] == "ack":
                self.acked.add(frame["client_msg_id"])

    async def send(self, kefu: Kefu, text: str, msg_id: str) -> None:
        await self.sockets[kefu.url].send_json(
            {"type": "message", "text": text, "client_msg_id": msg_id})

    def seen(self, role: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """Messages received, each (conversation, seq) once, as a client keeps them."""
        unique: dict[tuple[str, int], dict[str, Any]] = {}
        for f in self.frames:
            if f["type"] == "message" and (role is None or f["role"] == role) \
                    and (kind is None or f["kind"] == kind):
                unique[(f["conversation_id"], f["seq"])] = f
        return [unique[k] for k in sorted(unique, key=lambda k: k[1])]

    async def close(self) -> None:
        for ws in self.sockets.values():
            await ws.close()
        for reader in self._readers:
            reader.cancel()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Any]:
    await require_redis()
    started: list[Kefu] = []
    prefixes: list[str] = []

    async def start(count: int = 2, redis_url: str = REDIS_URL
                    ) -> tuple[list[Kefu], dict[str, Any]]:
        prefix = unique_prefix()
        prefixes.append(prefix)
        config = tmp_path / f"config-{len(prefixes)}.yaml"
        settings = {
            "business": {"name": "测试店", "hours": ALWAYS_OPEN},
            "knowledge_base": {"path": str(write_kb(tmp_path / "kb", TEST_KB))},
            "store": {"type": "redis", "url": redis_url, "prefix": prefix},
            "conversation": {"recovery_after_seconds": 1.5},
            "desk": {"auto_assign": False, "tick_seconds": 0.2},
        }
        config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
        processes = [await Kefu(config, tmp_path / f"kefu-{len(started) + i}.log").start()
                     for i in range(count)]
        started.extend(processes)
        return processes, {**settings, "file": str(config)}

    yield start
    for kefu in started:
        await kefu.stop()
    for prefix in prefixes:
        await forget(prefix)


async def transcript(config: dict[str, Any], visitor: Visitor) -> list[Any]:
    settings = config["store"]
    store = await RedisStore.open(settings["url"], prefix=settings["prefix"])
    try:
        conversation = await store.latest_conversation("webchat", visitor.id)
        return await store.messages(conversation.id) if conversation else []
    finally:
        await store.close()


def answered_in_order(said: list[Any]) -> list[tuple[str, str]]:
    """(question, answer) pairs in transcript order; fails on an answer to no question."""
    pairs, waiting = [], []
    for m in said:
        if m.role is Role.CUSTOMER:
            waiting.append(m.text)
        elif m.kind.value == "answer":
            pairs.append((waiting.pop(0), m.text))
    return pairs


async def test_messages_reaching_two_processes_are_answered_in_order(cluster: Any) -> None:
    (a, b), config = await cluster(2)
    async with aiohttp.ClientSession() as http:
        visitor = Visitor(http)
        await visitor.connect(a)
        await visitor.connect(b)
        questions = list(ANSWERS) * 3
        for i, question in enumerate(questions):
            await visitor.send(a if i % 2 == 0 else b, question, f"q{i}")
        await wait_for(lambda: len(visitor.acked) == len(questions), within=20)
        await wait_for(lambda: len(visitor.seen(kind="answer")) == len(questions), within=20)
        said = await transcript(config, visitor)
        pairs = answered_in_order(said)
        # Handled one at a time in the order stored: each answer is to the question
        # before it, whichever process got the question.
        assert sorted(q for q, _ in pairs) == sorted(questions)
        assert all(ANSWERS[q] == answer for q, answer in pairs)
        assert [m.kind.value for m in said].count("greeting") == 1
        await visitor.close()


async def test_an_agent_on_one_process_serves_a_customer_on_another(cluster: Any) -> None:
    (a, b), config = await cluster(2)
    adding = await asyncio.create_subprocess_exec(
        KEFU, "--config", config["file"], "agent", "add", "mei", "--password-stdin",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, errors = await adding.communicate((PASSWORD + "\n").encode())
    assert adding.returncode == 0, errors.decode()
    async with aiohttp.ClientSession() as http:
        login = await (await http.post(f"{a.url}/agent/api/login",
                                       json={"name": "mei", "password": PASSWORD})).json()
        auth = {"Authorization": f"Bearer {login['token']}"}
        await http.post(f"{a.url}/agent/api/presence", json={"presence": "online"}, headers=auth)
        console = await http.ws_connect(f"{a.url}/agent/ws", headers=auth)

        visitor = Visitor(http)
        await visitor.connect(b)
        await visitor.send(b, "转人工", "h1")
        await wait_for(lambda: visitor.seen(kind="handoff"), within=10)
        conversation_id = visitor.seen(kind="handoff")[0]["conversation_id"]
        await visitor.send(b, "我的订单号是 8812", "h2")

        async def console_hears() -> bool:
            msg = await console.receive(timeout=10)
            frame = json.loads(msg.data)
            return frame.get("type") == "message" and \
                frame["message"]["text"] == "我的订单号是 8812"

        while not await console_hears():  # said on process B, heard on process A
            pass
        take = await http.post(f"{a.url}/agent/api/conversations/{conversation_id}/take",
                               headers=auth)
        assert take.status == 200, await take.text()
        reply = await http.post(f"{a.url}/agent/api/conversations/{conversation_id}/reply",
                                json={"text": "您好，8812 号订单明天送达。"}, headers=auth)
        assert reply.status == 200, await reply.text()
        await wait_for(lambda: visitor.seen(role="agent"), within=10)
        assert visitor.seen(role="agent")[0]["text"] == "您好，8812 号订单明天送达。"
        await console.close()
        await visitor.close()


async def test_sigkill_during_a_burst_loses_nothing_acknowledged(cluster: Any) -> None:
    (a, b), config = await cluster(2)
    async with aiohttp.ClientSession() as http:
        visitor = Visitor(http)
        await visitor.connect(a)
        questions = [(f"k{i}", list(ANSWERS)[i % 3]) for i in range(9)]
        for msg_id, question in questions:
            await visitor.send(a, question, msg_id)
        await wait_for(lambda: len(visitor.acked) >= 3, within=10)
        await a.kill()  # mid-burst: some acknowledged, some maybe not even read
        acked = set(visitor.acked)
        await visitor.connect(b)  # the widget reconnects and resends what was not acked
        for msg_id, question in questions:
            if msg_id not in acked:
                await visitor.send(b, question, msg_id)
        await wait_for(lambda: len(visitor.acked) == len(questions), within=20)
        # Recovery on B finishes what A left half-done.
        await wait_for(lambda: len(visitor.seen(kind="answer")) >= len(questions), within=30)
        await asyncio.sleep(2)  # time for anything extra to show up (it must not)
        said = await transcript(config, visitor)
        customer = [m for m in said if m.role is Role.CUSTOMER]
        assert sorted(m.platform_msg_id for m in customer) == sorted(i for i, _ in questions)
        # A question A stored but never answered is answered by B's recovery, which waits
        # for A to be surely gone: after questions resent to B meanwhile. Each answer says
        # which question it answers.
        asked = {m.seq: m.text for m in customer}
        answers = [m for m in said if m.kind.value == "answer"]
        assert sorted(m.meta["reply_to"] for m in answers) == sorted(asked)  # each once
        assert all(ANSWERS[asked[m.meta["reply_to"]]] == m.text for m in answers)
        assert len(visitor.seen(kind="answer")) == len(questions)
        await visitor.close()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[Any]:
    """A redis-server of this test's own, persisting every write, that the test may
    restart."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs redis-server (see .ci/run)")
        pytest.skip("redis-server is not installed; CI runs this test")
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
               "--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    processes: list[asyncio.subprocess.Process] = []

    async def start() -> None:
        processes.append(await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.DEVNULL))
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                await asyncio.sleep(0.05)

    async def stop() -> None:
        processes[-1].terminate()
        await processes[-1].wait()

    await start()
    yield f"redis://127.0.0.1:{port}/0", start, stop
    for process in processes:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def test_redis_restarting_during_traffic_loses_nothing(cluster: Any, own_redis: Any
                                                             ) -> None:
    url, start_redis, stop_redis = own_redis
    (a,), config = await cluster(1, redis_url=url)
    async with aiohttp.ClientSession() as http:
        visitor = Visitor(http)
        await visitor.connect(a)
        questions = [(f"r{i}", list(ANSWERS)[i % 3]) for i in range(8)]
        for msg_id, question in questions[:4]:
            await visitor.send(a, question, msg_id)
        await wait_for(lambda: len(visitor.acked) == 4, within=10)
        await stop_redis()
        for msg_id, question in questions[4:]:  # sent while Redis is down
            await visitor.send(a, question, msg_id)
        await asyncio.sleep(1.0)
        await start_redis()

        async def all_acked() -> bool:  # as the widget does: resend what failed
            failed = [f["client_msg_id"] for f in visitor.frames
                      if f["type"] == "error" and f.get("client_msg_id")
                      and f["client_msg_id"] not in visitor.acked]
            for msg_id in set(failed):
                await visitor.send(a, dict(questions)[msg_id], msg_id)
            return len(visitor.acked) == len(questions)

        await wait_for(all_acked, within=30)
        await wait_for(lambda: len(visitor.seen(kind="answer")) >= len(questions), within=30)
        said = await transcript(config, visitor)
        assert sorted(m.platform_msg_id for m in said if m.role is Role.CUSTOMER) == \
            sorted(i for i, _ in questions)
        assert len(answered_in_order(said)) == len(questions)
        await visitor.close()
