"""The `kefu` command as staff and operators run it: a real process, real exit codes."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import PROJECT
from tests.harness import write_kb

KEFU = str(Path(sys.executable).parent / "kefu")


def run(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEFU, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_kb_check_passes_the_sample() -> None:
    result = run("kb", "check")
    assert result.returncode == 0, result.stderr
    assert "OK, 35 entries" in result.stdout


def test_kb_check_lists_every_problem_and_fails(tmp_path: Path) -> None:
    folder = write_kb(tmp_path / "kb", {
        "a.yaml": "- id: x\n  questions: [q]\n  answer: ''\n"
                  "- id: x\n  questions: [r]\n  answer: b\n",
    })
    result = run("kb", "check", str(folder))
    assert result.returncode == 1
    assert "a.yaml:3: answer is empty" in result.stderr
    assert "a.yaml:4: duplicate id 'x'" in result.stderr


def test_kb_ask_explains_what_the_bot_would_do() -> None:
    answered = run("kb", "ask", "退货怎么办")
    assert answered.returncode == 0, answered.stderr
    assert "1. return-policy" in answered.stdout
    assert "the bot would: answer with return-policy" in answered.stdout
    declined = run("kb", "ask", "今天天气怎么样")
    assert "the bot would: decline and offer a person" in declined.stdout


def test_kb_ask_says_what_the_live_bot_would_do_with_any_message() -> None:
    assert "the bot would: reply to small talk" in run("kb", "ask", "谢谢").stdout
    assert "the bot would: hand over to a person" in run("kb", "ask", "转人工").stdout
    english = run("kb", "ask", "where is my parcel")
    assert "answer with order-status-en" in english.stdout
    assert "replying in en" in english.stdout
    typed = run("kb", "ask", "退貨怎麼辦")  # traditional characters
    assert "answer with return-policy" in typed.stdout


def test_bad_config_stops_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  prot: 1\n", encoding="utf-8")
    result = run("--config", str(config), "serve")
    assert result.returncode == 2
    assert result.stderr.strip() == f"kefu: {config}: server.prot: unknown key (check the spelling)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_runs_the_shipped_setup_and_stops_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    shipped = (PROJECT / "config.yaml").read_text(encoding="utf-8")
    config.write_text(shipped.replace("path: kb", f"path: {PROJECT / 'kb'}"), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 (the server must outlive this call)
        [KEFU, "--config", str(config), "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        health = await response.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            assert health == {"status": "ok", "faq_entries": 35, "knowledge_base_problems": []}
            async with session.ws_connect(
                f"http://127.0.0.1:{port}/chat/ws?visitor=cli-test-visitor"
            ) as ws:
                await ws.send_str(json.dumps({"type": "message", "text": "退货怎么办",
                                              "client_msg_id": "c1"}))
                kinds = []
                while "answer" not in kinds:
                    frame = json.loads((await ws.receive(timeout=10)).data)
                    kinds.append(frame.get("kind"))
                assert "greeting" in kinds
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert (tmp_path / "data" / "kefu.sqlite3").exists()


def test_kb_check_rejects_vague_answers_and_canned_replies(tmp_path: Path) -> None:
    write_kb(tmp_path / "kb", {
        "a.yaml": "- id: eta\n  questions: [什么时候到]\n  answer: 差不多三天吧\n",
    })
    (tmp_path / "quick_replies.yaml").write_text(
        "replies:\n  - shortcut: ok\n    text: 嗯\n  - shortcut: ok\n    text: 好的，马上处理\n",
        encoding="utf-8")
    (tmp_path / "config.yaml").write_text("knowledge_base: {path: kb}\n", encoding="utf-8")
    result = run("--config", str(tmp_path / "config.yaml"), "kb", "check", cwd=tmp_path)
    assert result.returncode == 1
    assert "a.yaml:1: answer is vague or curt (差不多)" in result.stderr
    assert "quick_replies.yaml:2: quick reply is vague or curt (嗯)" in result.stderr
    assert "quick_replies.yaml:4: shortcut 'ok' is also at quick_replies.yaml:2" in result.stderr
