"""A conversation as agents and exports see it: JSON records and a plain-text transcript."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.messages import Role, StoredMessage
from bot.store import Agent, Conversation, ConversationEvent, Ticket


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return asdict(conversation)


def message_json(message: StoredMessage) -> dict[str, Any]:
    record = asdict(message)
    record["quick_replies"] = list(message.quick_replies)
    return record


def event_json(event: ConversationEvent) -> dict[str, Any]:
    return asdict(event)


def ticket_json(ticket: Ticket, now: float) -> dict[str, Any]:
    return {**asdict(ticket), "overdue": ticket.status.value == "open" and now > ticket.due_at}


def agent_json(agent: Agent) -> dict[str, Any]:
    record = asdict(agent)
    del record["password_hash"]
    return record


def transcript_json(conversation: Conversation, messages: list[StoredMessage],
                    events: list[ConversationEvent]) -> dict[str, Any]:
    return {"conversation": conversation_json(conversation),
            "messages": [message_json(m) for m in messages],
            "events": [event_json(e) for e in events]}


def _speaker(message: StoredMessage) -> str:
    if message.role is Role.AGENT:
        return f"agent {message.meta.get('agent_name', '?')}"
    if message.role is Role.BOT and message.kind.value != "text":
        return f"bot ({message.kind.value})"
    return message.role.value


def _why(message: StoredMessage) -> str:
    """What the bot based an answer on, in brackets: the entry and the scores."""
    scores = message.meta.get("scores")
    if not scores:
        return ""
    shown = ", ".join(f"{s['entry']} {s['score']:g}" for s in scores)
    return f"  [{message.meta.get('decision', '')}: {shown}]"


def transcript_text(conversation: Conversation, messages: list[StoredMessage],
                    events: list[ConversationEvent], zone: ZoneInfo,
                    agents: dict[str, str]) -> str:
    """Readable by anyone: times in the business's time zone, who said what, and why the
    bot answered or handed off."""
    def at(ts: float) -> str:
        return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S")

    c = conversation
    lines = [
        f"Conversation {c.id}",
        f"Customer: {c.user_id} on {c.channel} (language {c.lang})",
        f"Started: {at(c.created_at)} ({zone.key})   State: {c.state.value}"
        + (f"   Closed: {at(c.closed_at)} ({c.close_reason})" if c.closed_at else ""),
    ]
    if c.handoff_reason:
        lines.append(f"Handed off: {c.handoff_reason}")
    if c.agent_id:
        lines.append(f"Agent: {agents.get(c.agent_id, c.agent_id)}")
    if c.rating is not None:
        lines.append(f"Rating: {c.rating}/5")
    lines.append("")
    for m in messages:
        lines.append(f"[{at(m.ts)}] {_speaker(m)}: {m.text}{_why(m)}")
        if m.quick_replies:
            lines.append(f"    options: {' | '.join(m.quick_replies)}")
    if events:
        lines += ["", "Events:"]
        for e in events:
            who = f" by {agents.get(e.agent_id, e.agent_id)}" if e.agent_id else ""
            detail = ", ".join(f"{k}={v}" for k, v in e.detail.items())
            lines.append(f"[{at(e.ts)}] {e.type}{who}" + (f" ({detail})" if detail else ""))
    return "\n".join(lines) + "\n"
