"""Customer records and cases as the console and the agent API show them (JSON)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bot.store import Case, CaseStatus, Customer, Store
from handoff.customers import CustomerBook
from handoff.transcript import ticket_json

RECENT_CONVERSATIONS = 20


def customer_json(customer: Customer) -> dict[str, Any]:
    return asdict(customer)


def case_json(case: Case, now: float) -> dict[str, Any]:
    late = case.status in (CaseStatus.OPEN, CaseStatus.INVESTIGATING) and now > case.due_at
    follow_up_late = case.status is CaseStatus.RESOLVED and case.follow_up_due_at is not None \
        and now > case.follow_up_due_at
    return {**asdict(case), "overdue": late, "follow_up_overdue": follow_up_late}


class CrmViews:
    def __init__(self, store: Store, customers: CustomerBook) -> None:
        self._store = store
        self._customers = customers

    async def customer(self, customer_id: str, now: float) -> dict[str, Any] | None:
        """The record with everything known of the person: their identities, all their
        conversations (on every channel), offline messages, cases, and records that may
        be the same person."""
        customer = await self._customers.get(customer_id)
        if customer is None:
            return None
        identities = await self._store.identities_of(customer.id)
        conversations = []
        for identity in identities:
            conversations += await self._store.conversations_of(identity.channel,
                                                                identity.user_id)
        conversations.sort(key=lambda c: -c.created_at)
        mine = {(i.channel, i.user_id) for i in identities}
        tickets = [t for t in await self._store.tickets() if (t.channel, t.user_id) in mine]
        owner = await self._store.get_agent(customer.owner_id) if customer.owner_id else None
        return {
            "customer": customer_json(customer),
            "owner_name": owner.name if owner else None,
            "identities": [asdict(i) for i in identities],
            "conversations": [{"id": c.id, "channel": c.channel, "user_id": c.user_id,
                               "state": c.state.value, "created_at": c.created_at,
                               "rating": c.rating, "handoff_reason": c.handoff_reason,
                               "source": c.source}
                              for c in conversations[:RECENT_CONVERSATIONS]],
            "conversation_count": len(conversations),
            "tickets": [ticket_json(t, now) for t in tickets],
            "cases": [case_json(c, now) for c in await self._store.cases(customer.id)],
            "possible_matches": [
                {"id": c.id, "name": c.name, "phones": list(c.phones), "emails": list(c.emails)}
                for c in await self._customers.possible_matches(customer)],
        }

    async def cases(self, now: float, include_closed: bool = False) -> list[dict[str, Any]]:
        """Open work first: by due time (the follow-up's for resolved cases)."""
        found = [c for c in await self._store.cases()
                 if include_closed or c.status is not CaseStatus.CLOSED]

        def due(case: Case) -> float:
            if case.status is CaseStatus.RESOLVED and case.follow_up_due_at is not None:
                return case.follow_up_due_at
            return case.due_at

        listed = []
        for case in sorted(found, key=due):
            customer = await self._customers.get(case.customer_id)
            listed.append({**case_json(case, now),
                           "customer_name": customer.name if customer else ""})
        return listed

    async def case(self, case_id: str, now: float) -> dict[str, Any] | None:
        case = await self._store.get_case(case_id)
        if case is None:
            return None
        customer = await self._customers.get(case.customer_id)
        return {"case": case_json(case, now),
                "customer": customer_json(customer) if customer else None}
