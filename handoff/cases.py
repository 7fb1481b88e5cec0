"""Complaints as cases: opened, investigated, resolved, followed up (回访), closed.

A conversation handed off as a complaint opens a case on its own; an agent can open one
from any conversation. A case is due by its severity (`crm.case_due_hours`); resolving it
schedules the follow-up; a customer not satisfied at the follow-up reopens it. A new case
of a customer who had one within `crm.repeat_days` is marked as a repeat. Every step is in
the case's timeline, with who did it and when.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.cluster import Leases
from bot.config import CrmConfig
from bot.store import Agent, Case, CaseStatus, Conversation, Store, WebhookDelivery
from handoff.customers import CustomerBook, CustomerError
from handoff.webhooks import Webhooks

log = logging.getLogger(__name__)

HOUR = 3600.0
FOLLOW_UP_DUE = "follow-up due"
# Which step a case may take from which status.
ALLOWED = {
    "investigate": {CaseStatus.OPEN},
    "resolve": {CaseStatus.OPEN, CaseStatus.INVESTIGATING},
    "follow_up": {CaseStatus.RESOLVED},
}


class CaseBook:
    def __init__(self, config: CrmConfig, store: Store, customers: CustomerBook,
                 webhooks: Webhooks, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._store = store
        self._customers = customers
        self._webhooks = webhooks
        self._clock = clock

    def _due(self, severity: str, now: float) -> float:
        hours = self._config.case_due_hours.get(severity, self._config.case_due_hours["normal"])
        return now + hours * HOUR

    async def open(self, conversation: Conversation, summary: str, *, by: str,
                   category: str = "", severity: str = "normal",
                   agent: Agent | None = None) -> Case:
        if category and category not in self._config.case_categories:
            raise CustomerError("bad_request", f"category must be one of "
                                f"{', '.join(self._config.case_categories)}")
        if severity not in self._config.case_due_hours:
            raise CustomerError("bad_request", f"severity must be one of "
                                f"{', '.join(self._config.case_due_hours)}")
        for case in await self._store.cases():
            if case.conversation_id == conversation.id and case.status is not CaseStatus.CLOSED:
                return case  # one open case per conversation
        customer = await self._customers.of(conversation.channel, conversation.user_id)
        now = self._clock()
        window = self._config.repeat_days * 86400
        earlier = [c for c in await self._store.cases(customer.id)
                   if now - c.created_at <= window]
        case = Case(
            id="K" + secrets.token_hex(4).upper(), customer_id=customer.id,
            conversation_id=conversation.id, created_at=now, due_at=self._due(severity, now),
            summary=summary.strip()[:500] or "complaint", category=category, severity=severity,
            owner_id=agent.id if agent else customer.owner_id,
            repeat_of=max(earlier, key=lambda c: c.created_at).id if earlier else None,
            timeline=({"at": now, "by": by, "what": "opened",
                       "note": "repeat complaint" if earlier else ""},))
        await self._save(case, "case.opened", conversation)
        log.info("crm: case %s opened for %s%s", case.id, customer.id,
                 " (a repeat)" if case.repeat_of else "")
        return case

    async def _save(self, case: Case, event: str | None,
                    conversation: Conversation | None = None) -> None:
        """Save the case, with the webhook that announces `event` in the same write."""
        deliveries: tuple[WebhookDelivery, ...] = ()
        if event is not None:
            if conversation is None:
                conversation = await self._store.get_conversation(case.conversation_id)
            deliveries = self._webhooks.prepare(event, self._data(case, conversation))
        await self._store.save_case(case, deliveries)
        self._webhooks.queued(deliveries)

    async def act(self, agent: Agent, case_id: str, action: str, note: str = "",
                  **fields: Any) -> Case:
        """investigate, resolve, follow_up (satisfied=True/False), assign (owner_id,
        department), classify (category, severity), note."""
        case = await self._store.get_case(case_id)
        if case is None:
            raise CustomerError("not_found", f"no case {case_id}")
        now = self._clock()
        allowed = ALLOWED.get(action)
        if allowed is not None and case.status not in allowed:
            raise CustomerError("bad_state", f"case {case.id} is {case.status.value}; it "
                                f"cannot {action.replace('_', ' ')}")
        event = None
        if action == "investigate":
            case = replace(case, status=CaseStatus.INVESTIGATING)
        elif action == "resolve":
            if not note.strip():
                raise CustomerError("bad_request", "say how it was resolved")
            case = replace(case, status=CaseStatus.RESOLVED, resolved_at=now,
                           follow_up_due_at=now + self._config.follow_up_after_hours * HOUR)
            event = "case.resolved"
        elif action == "follow_up":
            satisfied = fields.get("satisfied")
            if not isinstance(satisfied, bool):
                raise CustomerError("bad_request", "say whether the customer is satisfied")
            if satisfied:
                case = replace(case, status=CaseStatus.CLOSED, follow_up_at=now,
                               satisfied=True)
            else:  # reopened, due again from now
                case = replace(case, status=CaseStatus.OPEN, follow_up_at=now, satisfied=False,
                               due_at=self._due(case.severity, now), resolved_at=None,
                               follow_up_due_at=None)
                event = "case.reopened"
        elif action == "assign":
            owner_id, department = fields.get("owner_id"), fields.get("department")
            if owner_id and await self._store.get_agent(str(owner_id)) is None:
                raise CustomerError("not_found", f"no agent {owner_id}")
            if department and department not in self._config.departments:
                raise CustomerError("bad_request", "department must be one of "
                                    f"{', '.join(self._config.departments) or '(none set)'}")
            case = replace(case, owner_id=owner_id or case.owner_id,
                           department=department or case.department)
        elif action == "classify":
            category, severity = fields.get("category"), fields.get("severity")
            if category and category not in self._config.case_categories:
                raise CustomerError("bad_request", "unknown category")
            if severity and severity not in self._config.case_due_hours:
                raise CustomerError("bad_request", "unknown severity")
            if severity and severity != case.severity:
                case = replace(case, severity=severity,
                               due_at=self._due(severity, case.created_at))
            case = replace(case, category=category or case.category)
        elif action != "note":
            raise CustomerError("bad_request", f"unknown action {action!r}")
        case = replace(case, timeline=(*case.timeline, {
            "at": now, "by": agent.name, "what": _done(action, fields),
            "note": note.strip()[:2000]}))
        await self._save(case, event)
        return case

    async def announce_follow_ups(self) -> list[Case]:
        """Say once (timeline, webhook `follow_up.due`) that a follow-up is due."""
        now = self._clock()
        announced = []
        for case in await self._store.cases():
            if case.status is not CaseStatus.RESOLVED or case.follow_up_due_at is None \
                    or case.follow_up_due_at > now or any(
                        t["what"] == FOLLOW_UP_DUE and t["at"] >= (case.resolved_at or 0)
                        for t in case.timeline):
                continue
            case = replace(case, timeline=(*case.timeline, {
                "at": now, "by": "kefu", "what": FOLLOW_UP_DUE, "note": ""}))
            await self._save(case, "follow_up.due")
            announced.append(case)
        return announced

    async def run(self, leases: Leases, tick_seconds: float = 60.0) -> None:
        while True:
            if await leases.try_lead("crm-follow-ups"):
                await self.announce_follow_ups()
            await asyncio.sleep(tick_seconds)

    def _data(self, case: Case, conversation: Conversation | None) -> dict[str, Any]:
        base = self._webhooks.about(conversation) if conversation else {}
        return {**base, "case_id": case.id, "customer_id": case.customer_id,
                "status": case.status.value, "category": case.category,
                "severity": case.severity, "due_at": case.due_at, "repeat_of": case.repeat_of,
                "summary": case.summary}


def _done(action: str, fields: dict[str, Any]) -> str:
    if action == "follow_up":
        return "followed up: satisfied" if fields.get("satisfied") else \
            "followed up: not satisfied, reopened"
    if action == "assign":
        return "assigned " + " ".join(str(v) for v in (fields.get("owner_id"),
                                                       fields.get("department")) if v)
    if action == "classify":
        return "classified " + " ".join(str(v) for v in (fields.get("category"),
                                                         fields.get("severity")) if v)
    return {"investigate": "investigating", "resolve": "resolved"}.get(action, action)
