"""The processes a soak runs: a redis-server of its own (on a free port, with its AOF in a
temporary folder) and kefu processes (`kefu serve`), each started, killed and restarted
for real."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

KEFU = str(Path(sys.executable).parent / "kefu")
START_SECONDS = 60.0
# What every customer asks: each question has one answer, so an answer shows its question.
KNOWLEDGE_BASE = """\
lang: zh
entries:
  - id: return-policy
    questions: [退货怎么办, 可以退货吗]
    answer: 签收后 7 天内可以无理由退货。
  - id: refund-time
    questions: [退款多久到账, 什么时候退款]
    answer: 退款 1-3 个工作日到账。
  - id: shipping-time
    questions: [多久能发货, 什么时候发货]
    answer: 下单后 48 小时内发货。
  - id: invoice
    questions: [可以开发票吗, 怎么开发票]
    answer: 可以开电子发票，在订单页申请。
  - id: contact-phone
    questions: [客服电话是多少, 怎么联系你们]
    answer: 客服热线 400-800-1234。
"""
QUESTIONS = ("退货怎么办", "退款多久到账", "多久能发货", "可以开发票吗", "客服电话是多少")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """redis-server with an append-only file (`appendfsync` as asked): killed, stopped
    and started again on the same folder, so a restart reads back what it had written."""

    def __init__(self, folder: Path, fsync: str = "everysec") -> None:
        self.folder, self.fsync, self.port = folder, fsync, free_port()
        self.process: asyncio.subprocess.Process | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.process = await asyncio.create_subprocess_exec(
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
            "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "",
            "--maxclients", "20000",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(400):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.025)
        raise TimeoutError("redis-server did not start")

    def send(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    async def exit(self, number: int = signal.SIGKILL) -> None:
        """SIGKILL (a crash) or SIGTERM (a clean shutdown), and wait for the end."""
        assert self.process is not None
        self.process.send_signal(number)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)
            await self.exit(signal.SIGKILL)


class KefuProcess:
    """`kefu serve` with a config of the soak's own."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log, self.port = config, log, free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            self.process = await asyncio.create_subprocess_exec(
                KEFU, "--config", str(self.config), "serve", "--port", str(self.port),
                stdout=log, stderr=subprocess.STDOUT)
        finally:
            os.close(log)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        async with aiohttp.ClientSession() as http:
            while loop.time() < deadline:
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if self.process.returncode is not None:
                    raise RuntimeError(f"kefu exited; see {self.log}")
                await asyncio.sleep(0.1)
        raise TimeoutError(f"kefu did not start; see {self.log}")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def write_config(folder: Path, store: dict[str, Any], recovery_after_seconds: float) -> Path:
    """A config for the soak's kefu processes: always open, the lexical engine (the
    machine's cores are for the processes under test, not for a sentence model)."""
    kb = folder / "kb"
    kb.mkdir(parents=True, exist_ok=True)
    (kb / "faq.yaml").write_text(KNOWLEDGE_BASE, encoding="utf-8")
    settings = {
        "business": {"name": "测试店", "hours": {d: "00:00-24:00" for d in (
            "mon", "tue", "wed", "thu", "fri", "sat", "sun")}},
        "knowledge_base": {"path": str(kb), "regressions": str(folder / "regressions.yaml"),
                           "vocabulary": str(folder / "vocabulary.yaml")},
        "matching": {"engine": "lexical"},
        "store": store,
        "conversation": {"recovery_after_seconds": recovery_after_seconds},
        "channels": {"webchat": {"rate_limit_messages": 1000}},
        "logging": {"level": "WARNING"},
    }
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return config
