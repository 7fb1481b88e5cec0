"""The `kefu` command as staff and operators run it: a real process, real exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.cli import build_parser
from handoff.auth import verify_password
from tests.conftest import PROJECT, STARTUP_POLLS, TEST_KB
from tests.harness import write_kb

KEFU = str(Path(sys.executable).parent / "kefu")


def run(*args: str, cwd: Path = PROJECT, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEFU, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          input=stdin)


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
            for _ in range(STARTUP_POLLS):
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


def test_kb_check_warns_of_answers_that_take_many_wechat_messages(tmp_path: Path) -> None:
    long_answer = "\n".join(f"第 {i} 步：请在订单页面点击申请售后并上传照片，我们会在两个工作日内"
                             "审核并联系您安排取件。" * 4 for i in range(30))
    write_kb(tmp_path / "kb", {**TEST_KB, "long.yaml": (
        "- id: steps\n  questions: [售后步骤是什么]\n  answer: |\n    "
        + long_answer.replace("\n", "\n    ") + "\n")})
    (tmp_path / "config.yaml").write_text("knowledge_base: {path: kb}\n", encoding="utf-8")
    result = run("--config", str(tmp_path / "config.yaml"), "kb", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "kb/long.yaml:1: answer goes to wechat in" in result.stderr
    assert "kb/long.yaml:1: answer goes to wecom in" in result.stderr
    assert "returns.yaml" not in result.stderr  # short answers are fine


def a_setup(tmp_path: Path) -> Path:
    """A config of its own (a test knowledge base, a fresh store) in a folder of its own."""
    write_kb(tmp_path / "kb", TEST_KB)
    config = tmp_path / "config.yaml"
    config.write_text("knowledge_base: {path: kb}\nstore: {path: data/kefu.sqlite3}\n",
                      encoding="utf-8")
    return config


def commands(parser: argparse.ArgumentParser, name: str = "kefu"
             ) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                found += commands(subparser, f"{name} {sub}")
    return found


def test_every_command_takes_config_and_explains_every_option() -> None:
    for name, parser in commands(build_parser()):
        options = [a for a in parser._actions if not isinstance(
            a, argparse._HelpAction | argparse._SubParsersAction)]
        assert "--config" in {o for a in options for o in a.option_strings}, name
        unexplained = [a.dest for a in options if not a.help]
        assert not unexplained, f"{name}: no help for {unexplained}"
    help_text = run("serve", "--help").stdout
    assert "--config CONFIG  configuration file" in help_text
    assert "--port PORT      port to listen on" in help_text


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_goes_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    config = a_setup(tmp_path)
    args = ["--config", str(config), "kb", "check"] if where == "before" else \
        ["kb", "check", "--config", str(config)]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'kb'}: OK, 5 entries" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  prot: 1\n", encoding="utf-8")
    args = ["--config", str(bad), "serve"] if where == "before" else \
        ["serve", "--config", str(bad)]
    assert run(*args).stderr.strip() == \
        f"kefu: {bad}: server.prot: unknown key (check the spelling)"


def test_an_environment_value_is_blamed_on_its_variable(tmp_path: Path) -> None:
    config = a_setup(tmp_path)
    result = subprocess.run([KEFU, "serve", "--config", str(config)], capture_output=True,
                            text=True, timeout=60,
                            env={**os.environ, "KEFU_SERVER__PORT": "eighty"})
    assert result.returncode == 2
    assert result.stderr.startswith("kefu: KEFU_SERVER__PORT: server.port: Input should be a "
                                    "valid integer"), result.stderr


def test_mistakes_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    config = a_setup(tmp_path)
    missing = run("kb", "import", str(tmp_path / "nonexist.csv"), "--config", str(config))
    assert (missing.returncode, missing.stderr) == (
        2, f"kefu: {tmp_path / 'nonexist.csv'}: no such file\n")
    folder = run("kb", "import", str(tmp_path), "--config", str(config))
    assert (folder.returncode, folder.stderr) == (
        2, f"kefu: {tmp_path}: a folder; import reads one .csv or .xlsx file\n")
    piped = run("agent", "add", "alice", "--config", str(config), stdin="pw-long-enough\n")
    assert (piped.returncode, piped.stderr) == (
        2, "kefu: standard input is not a terminal: to read the password from it, add "
           "--password-stdin\n")
    added = run("agent", "add", "alice", "--password-stdin", "--config", str(config),
                stdin="a-long-password-1\n")
    assert added.returncode == 0, added.stderr


def test_an_agent_gets_a_new_password_and_is_removed(tmp_path: Path) -> None:
    config = a_setup(tmp_path)
    run("agent", "add", "alice", "--password-stdin", "--config", str(config),
        stdin="a-long-password-1\n")
    changed = run("agent", "passwd", "alice", "--password-stdin", "--config", str(config),
                  stdin="another-password-2\n")
    assert (changed.returncode, changed.stdout) == (
        0, "password of alice changed; they are logged out everywhere\n")
    short = run("agent", "passwd", "alice", "--password-stdin", "--config", str(config),
                stdin="short\n")
    assert short.returncode == 2
    assert "at least 8 characters" in short.stderr
    stored = sqlite3.connect(tmp_path / "data" / "kefu.sqlite3").execute(
        "SELECT password_hash FROM agents WHERE name = 'alice'").fetchone()[0]
    assert verify_password("another-password-2", stored)
    assert run("agent", "remove", "alice", "--config", str(config)).stdout == \
        "agent alice removed\n"
    assert "alice" not in run("agent", "list", "--config", str(config)).stdout
    missing = run("agent", "remove", "alice", "--config", str(config))
    assert (missing.returncode, missing.stderr) == (
        2, "kefu: no agent named 'alice' (kefu agent list shows them)\n")


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    config = a_setup(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--config", str(config), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr == (f"kefu: server.port: 127.0.0.1:{port} is already in use "
                             "(another kefu?); stop it, or choose another with --port\n")
    assert "kefu ready" not in result.stdout + result.stderr


def test_kb_check_checks_what_loaded_beside_what_did_not(tmp_path: Path) -> None:
    folder = write_kb(tmp_path / "kb", {
        "a.yaml": "- id: eta\n  questions: [什么时候到]\n  answer: 差不多三天吧\n"
                  "- id: greet\n  questions: [你好]\n  answer: '{{ nme }}'\n",
    })
    result = run("kb", "check", str(folder))
    assert result.returncode == 1
    assert "a.yaml:6: answer template: 'nme' is undefined" in result.stderr
    assert "a.yaml:1: answer is vague or curt (差不多)" in result.stderr


def test_a_duplicate_id_is_blamed_on_the_entry_edited_last(tmp_path: Path) -> None:
    folder = write_kb(tmp_path / "kb", {
        "a.yaml": "- id: gift\n  questions: [有礼品包装吗]\n  answer: 有的。\n",
        "z.yaml": "- id: gift\n  questions: [可以开发票吗]\n  answer: 可以开发票。\n",
    })
    os.utime(folder / "z.yaml", (1_000_000_000, 1_000_000_000))  # staff just edited a.yaml
    result = run("kb", "check", str(folder))
    assert result.returncode == 1
    assert "kb/a.yaml:1: duplicate id 'gift' (first used at kb/z.yaml:1)" in result.stderr
    assert "z.yaml:1: duplicate" not in result.stderr


def test_report_and_export_write_the_format_the_file_is_named_for(tmp_path: Path) -> None:
    config = a_setup(tmp_path)
    refused = run("report", "--config", str(config), "-o", str(tmp_path / "week.pdf"))
    assert refused.returncode == 2
    assert "week.pdf: cannot write a .pdf file; the formats are html, md, csv" in \
        refused.stderr
    assert not (tmp_path / "week.pdf").exists()
    assert run("report", "--config", str(config), "-o", str(tmp_path / "week.html")
               ).returncode == 0
    assert (tmp_path / "week.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    exported = run("export", "customers", "--config", str(config), "-o",
                   str(tmp_path / "c.json"))
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "c.json").read_text(encoding="utf-8")) == []
    refused = run("export", "customers", "--config", str(config), "-o",
                  str(tmp_path / "c.xlsx"))
    assert "cannot write a .xlsx file; the formats are csv, json, jsonl" in refused.stderr
    mixed = run("export", "cases", "--config", str(config), "--format", "csv", "-o",
                str(tmp_path / "c.jsonl"))
    assert "c.jsonl: the name says jsonl but --format says csv" in mixed.stderr


async def test_a_knowledge_base_edit_is_served_within_the_reload_interval(
        tmp_path: Path) -> None:
    config = a_setup(tmp_path)
    config.write_text("knowledge_base: {path: kb, reload_interval_seconds: 2}\n"
                      "store: {path: data/kefu.sqlite3}\n", encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 (the server must outlive this call)
        [KEFU, "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as session:
            async def entries() -> int:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    return int((await response.json())["faq_entries"])

            for _ in range(STARTUP_POLLS):
                try:
                    assert await entries() == 5
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(3)  # start-up's own work is done
            for n in (1, 2):
                (tmp_path / "kb" / "new.yaml").write_text("entries:\n" + "".join(
                    f"  - {{id: new-{i}, questions: [新问题{i}号], answer: 回答{i}}}\n"
                    for i in range(n)), encoding="utf-8")
                edited = time.monotonic()
                while await entries() != 5 + n:
                    assert time.monotonic() - edited < 2.0, f"edit {n} not served in 2 s"
                    await asyncio.sleep(0.02)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def test_a_redis_password_is_never_printed(tmp_path: Path) -> None:
    config = a_setup(tmp_path)
    port = free_port()  # nobody listens there
    result = subprocess.run([KEFU, "agent", "list", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, env={
                                **os.environ, "KEFU_STORE__TYPE": "redis",
                                "KEFU_STORE__URL": f"redis://kefu:s3cret@127.0.0.1:{port}/0"})
    assert result.returncode == 2
    assert result.stderr.startswith(f"kefu: store.url: cannot reach Redis at "
                                    f"redis://kefu:***@127.0.0.1:{port}/0: "), result.stderr
    assert "s3cret" not in result.stderr
