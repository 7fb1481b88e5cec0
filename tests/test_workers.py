"""`kefu serve --workers N`: real processes on one port, a real SIGKILL, a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.redis_support import REDIS_URL, forget, require_redis, unique_prefix
from tests.test_cli import KEFU, PROJECT, free_port, run


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def listening(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on 127.0.0.1:`port` (/proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            inodes.add(fields[9])
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held.add(os.readlink(fd))
        except OSError:
            continue
    return any(f"socket:[{inode}]" in held for inode in inodes)


async def greeted(port: int, visitor: str) -> bool:
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"http://127.0.0.1:{port}/chat/ws?visitor={visitor}") as ws:
        await ws.send_str(json.dumps({"type": "open", "lang": "zh"}))
        while True:
            frame = json.loads((await ws.receive(timeout=20)).data)
            if frame.get("kind") == "greeting":
                return True


async def wait_until(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {seconds} s")


def test_more_workers_than_one_need_redis(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(f"knowledge_base: {{path: {PROJECT / 'kb'}}}\n",
                                          encoding="utf-8")
    result = run("serve", "--workers", "2", "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "kefu: server.workers: 2 processes need store.type: redis (the embedded SQLite store "
        "belongs to one process; docs/deploy.md)")
    assert "Traceback" not in result.stderr


async def test_workers_share_the_port_and_a_killed_one_is_replaced(tmp_path: Path) -> None:
    await require_redis()
    prefix = unique_prefix()
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text((PROJECT / "config.yaml").read_text(encoding="utf-8").replace(
        "path: kb", f"path: {PROJECT / 'kb'}"), encoding="utf-8")
    env = {**os.environ, "KEFU_STORE__TYPE": "redis", "KEFU_STORE__URL": REDIS_URL,
           "KEFU_STORE__PREFIX": prefix, "KEFU_MATCHING__ENGINE": "lexical"}
    supervisor = subprocess.Popen(  # noqa: ASYNC220 (the server must outlive this call)
        [KEFU, "--config", str(config), "serve", "--workers", "2", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        await wait_until(lambda: len(children(supervisor.pid)) == 2, 30)
        first = children(supervisor.pid)
        await wait_until(lambda: all(listening(pid, port) for pid in first), 90)
        assert await greeted(port, "before-the-kill")

        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        await wait_until(lambda: len(children(supervisor.pid) - {killed}) == 2, 30)
        replacement = (children(supervisor.pid) - first).pop()
        for visitor in ("after-the-kill-1", "after-the-kill-2", "after-the-kill-3"):
            assert await greeted(port, visitor)
        await wait_until(lambda: listening(replacement, port), 90)
    finally:
        supervisor.send_signal(signal.SIGINT)
        output, _ = supervisor.communicate(timeout=60)
        await forget(prefix)
    assert supervisor.returncode == 0, output
    assert f"worker {killed} exited with status -9" in output
