"""What agents read: the full transcript, earlier conversations, exports, the hand-over."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from bot.config import Config
from tests.harness import Kefu
from tests.test_cli import KEFU


async def escalate(kefu: Kefu) -> tuple[str, str]:
    """A customer with an earlier conversation, now talking to agent `duty`."""
    customer = await kefu.visitor()
    await customer.say("退货怎么办")
    old = await kefu.store.latest_conversation("webchat", customer.id)
    assert old is not None
    await kefu.age_out(old.id)
    await customer.say("我要投诉 <b>快递</b>")
    conversation = await kefu.store.latest_conversation("webchat", customer.id)
    assert conversation is not None and conversation.id != old.id
    duty = await kefu.agent("duty")
    await duty.act(conversation.id, "take")
    await duty.act(conversation.id, "reply", text="非常抱歉，我马上联系快递核实。")
    return old.id, conversation.id


async def test_the_agent_sees_the_customers_earlier_conversations(kefu: Kefu) -> None:
    old_id, conversation_id = await escalate(kefu)
    duty = await kefu.agent("duty")
    detail = await duty.get(f"/conversations/{conversation_id}")
    (earlier,) = detail["earlier"]
    assert earlier["id"] == old_id and earlier["close_reason"] == "idle"
    answer = next(m for m in earlier["messages"] if m["kind"] == "answer")
    assert answer["meta"]["entry"] == "return-policy" and answer["meta"]["scores"]
    said = [m["text"] for m in detail["messages"] if m["role"] == "customer"]
    assert said == ["我要投诉 <b>快递</b>"]  # as typed, never altered


async def test_transcript_exports_as_text_and_json(kefu: Kefu) -> None:
    _, conversation_id = await escalate(kefu)
    duty = await kefu.agent("duty")
    response = await duty.client.get(f"/agent/api/conversations/{conversation_id}/transcript",
                                     headers=duty.headers)
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    text = await response.text()
    assert f"Conversation {conversation_id}" in text and "(Asia/Shanghai)" in text
    assert "Handed off: complaint" in text
    assert "customer: 我要投诉 <b>快递</b>" in text
    assert "agent duty: 非常抱歉，我马上联系快递核实。" in text
    assert "assigned by duty" in text
    exported = await (await duty.client.get(
        f"/agent/api/conversations/{conversation_id}/transcript?format=json",
        headers=duty.headers)).json()
    assert exported["conversation"]["id"] == conversation_id
    assert [(m["role"], m["kind"]) for m in exported["messages"]] == [
        ("customer", "text"), ("bot", "greeting"), ("bot", "handoff"), ("system", "notice"),
        ("agent", "text")]
    assert [e["type"] for e in exported["events"]] == ["queued", "assigned", "first_response"]


def _config_file(config: Config, tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "store": {"path": str(config.store.path)},
        "knowledge_base": {"path": str(config.knowledge_base.path)},
    }), encoding="utf-8")
    return path


def kefu_cli(config_file: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEFU, "--config", str(config_file), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


async def test_cli_exports_transcripts_and_lists_what_is_open(
    kefu: Kefu, tmp_path: Path
) -> None:
    _, conversation_id = await escalate(kefu)
    waiting = await kefu.visitor()
    await waiting.say("转人工")
    config_file = _config_file(kefu.config, tmp_path)

    text = kefu_cli(config_file, "transcript", conversation_id)
    assert text.returncode == 0, text.stderr
    assert "agent duty: 非常抱歉，我马上联系快递核实。" in text.stdout
    exported = json.loads(kefu_cli(config_file, "transcript", conversation_id,
                                   "--format", "json").stdout)
    assert exported["conversation"]["state"] == "agent"
    missing = kefu_cli(config_file, "transcript", "nope")
    assert missing.returncode == 2 and "no conversation nope" in missing.stderr

    handover = kefu_cli(config_file, "handover")
    assert handover.returncode == 0, handover.stderr
    assert "Queued (1):" in handover.stdout and waiting.id in handover.stdout
    assert "In progress (1):" in handover.stdout and "with duty" in handover.stdout
    assert "Overdue offline messages (0 of 0 open):" in handover.stdout


def test_cli_adds_agents_and_refuses_duplicates_and_short_passwords(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config_file = _config_file(make_config(), tmp_path)
    added = kefu_cli(config_file, "agent", "add", "mei", "--role", "supervisor",
                     "--max-chats", "8", "--password-stdin", stdin="long enough pw\n")
    assert added.returncode == 0, added.stderr
    assert "agent mei added (supervisor, up to 8 chats)" in added.stdout
    again = kefu_cli(config_file, "agent", "add", "mei", "--password-stdin", stdin="x" * 9)
    assert again.returncode == 2 and "already exists" in again.stderr
    short = kefu_cli(config_file, "agent", "add", "li", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    listed = kefu_cli(config_file, "agent", "list")
    assert [line.split()[:2] for line in listed.stdout.splitlines()] == [["mei", "supervisor"]]
