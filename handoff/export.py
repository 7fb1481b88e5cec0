"""`kefu export`: customers, cases or conversations of a period, as CSV, JSON or JSON
lines, for the CRM or spreadsheet the business already uses.

CSV has one row per record with lists joined by "; " and times as ISO 8601 in the business
time zone; JSON (one array) and JSON lines (one record a line) keep every field as kefu
stores it (unix seconds). Phones, emails, ID-card and bank-card numbers are masked
(bot/masking.py) unless a supervisor asks for them in full (`--unmasked`, in the trail).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Any

from bot.masking import mask_json
from bot.store import Store
from handoff.report import Period

KINDS = ("customers", "cases", "conversations")
FORMATS = ("csv", "json", "jsonl")
Progress = Callable[[Iterable[Any], int], Iterable[Any]]


async def export(store: Store, kind: str, period: Period, fmt: str,
                 progress: Progress = lambda items, total: items, *, unmasked: bool = False
                 ) -> tuple[str, int]:
    """The file's text and how many records it holds."""
    rows = await _rows(store, kind, period, progress)
    if not unmasked:
        rows = [(mask_json(full), mask_json(flat)) for full, flat in rows]
    if fmt == "jsonl":
        return "".join(json.dumps(full, ensure_ascii=False) + "\n" for full, _ in rows), \
            len(rows)
    if fmt == "json":
        return json.dumps([full for full, _ in rows], ensure_ascii=False, indent=1) + "\n", \
            len(rows)
    out = io.StringIO()
    flat = [row for _, row in rows]
    columns = list(flat[0]) if flat else _COLUMNS[kind]
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return out.getvalue(), len(rows)


_COLUMNS = {
    "customers": ["id", "name", "phones", "emails", "verified", "tags", "owner", "channels",
                  "notes", "created_at"],
    "cases": ["id", "customer_id", "customer", "conversation_id", "status", "category",
              "severity", "owner", "department", "repeat_of", "created_at", "due_at",
              "resolved_at", "follow_up_at", "satisfied", "summary"],
    "conversations": ["id", "channel", "user_id", "customer_id", "state", "created_at",
                      "closed_at", "close_reason", "handoff_reason", "agent", "rating",
                      "greeting_latency_ms", "messages"],
}


async def _rows(store: Store, kind: str, period: Period, progress: Progress
                ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    if kind not in KINDS:
        raise ValueError(f"export customers, cases or conversations, not {kind!r}")
    since, until = period.since, period.until
    agents = {a.id: a.name for a in await store.agents()}

    def when(ts: float | None) -> str:
        return "" if ts is None else datetime.fromtimestamp(ts, period.zone).isoformat(
            timespec="seconds")

    def joined(values: Iterable[str]) -> str:
        return "; ".join(values)

    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if kind == "customers":
        found = [c for c in await store.customers(since) if c.created_at < until]
        for c in _each(found, progress):
            identities = await store.identities_of(c.id)
            full = {**asdict(c), "identities": [asdict(i) for i in identities]}
            rows.append((full, {
                "id": c.id, "name": c.name, "phones": joined(c.phones),
                "emails": joined(c.emails), "verified": joined(c.verified),
                "tags": joined(c.tags), "owner": agents.get(c.owner_id or "", ""),
                "channels": joined(f"{i.channel}:{i.user_id}" for i in identities),
                "notes": joined(n["text"] for n in c.notes), "created_at": when(c.created_at)}))
    elif kind == "cases":
        found_cases = [k for k in await store.cases() if since <= k.created_at < until]
        for k in _each(sorted(found_cases, key=lambda k: k.created_at), progress):
            customer = await store.get_customer(k.customer_id)
            rows.append((asdict(k), {
                "id": k.id, "customer_id": k.customer_id,
                "customer": customer.name if customer else "",
                "conversation_id": k.conversation_id, "status": k.status.value,
                "category": k.category, "severity": k.severity,
                "owner": agents.get(k.owner_id or "", ""), "department": k.department,
                "repeat_of": k.repeat_of or "", "created_at": when(k.created_at),
                "due_at": when(k.due_at), "resolved_at": when(k.resolved_at),
                "follow_up_at": when(k.follow_up_at),
                "satisfied": "" if k.satisfied is None else ("yes" if k.satisfied else "no"),
                "summary": k.summary}))
    else:
        conversations = await store.conversations_created(since, until)
        for c in _each(conversations, progress):
            identity = await store.identity(c.channel, c.user_id)
            messages = await store.messages(c.id)
            full = {**asdict(c), "customer_id": identity.customer_id if identity else None,
                    "messages": [asdict(m) for m in messages]}
            rows.append((full, {
                "id": c.id, "channel": c.channel, "user_id": c.user_id,
                "customer_id": identity.customer_id if identity else "",
                "state": c.state.value, "created_at": when(c.created_at),
                "closed_at": when(c.closed_at), "close_reason": c.close_reason or "",
                "handoff_reason": c.handoff_reason or "",
                "agent": agents.get(c.agent_id or "", ""),
                "rating": "" if c.rating is None else c.rating,
                "greeting_latency_ms": "" if c.greeting_latency_ms is None
                else c.greeting_latency_ms, "messages": len(messages)}))
    return rows


def _each(items: list[Any], progress: Progress) -> Iterator[Any]:
    yield from progress(items, len(items))
