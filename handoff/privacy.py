"""Customers' personal data at the desk: the access trail, who may read what, erasure.

- The trail (`Privacy.record`): who opened which conversation, transcript or customer
  record, exported what, erased whom, when and from where. Append-only in the store;
  supervisors read it (`GET /agent/api/audit`, `kefu audit`).
- Reading: with `privacy.agents_read: held_or_offered`, an agent opens only conversations
  they hold or held (assigned, transferred to them, or acted in) or that wait in the queue
  (offered to every agent), and the records of those customers or of those they follow up;
  supervisors read everything. With `agents_see_contacts: masked` agents see 138****5678.
- Erasure (`Privacy.erase`): one person's record (and the records merged into it), their
  identities and cases are deleted; their conversations and offline messages stay for the
  figures under a pseudonym, without a word of theirs; webhook deliveries and channel state
  that name them go; a `customer.erased` event is queued. With a helpdesk bridge as the
  desk (`handoff.desk`), the deletion of the helpdesk's copy of them (Chatwoot's contact and
  its conversations) is queued in the store for the bridge. See docs/privacy.md.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.config import PrivacyConfig
from bot.masking import mask_json
from bot.messages import ConversationState
from bot.settings import BridgeSettings
from bot.store import AccessRecord, Agent, AgentRole, Conversation, Customer, Store
from handoff.contacts import contacts_in
from handoff.customers import CustomerBook, CustomerError
from handoff.report import keep_complaint_history
from handoff.webhooks import Webhooks

log = logging.getLogger(__name__)

ERASED_EVENT = "customer.erased"
PSEUDONYM_PREFIX = "erased-"  # a conversation's customer id once anonymised
ALL_DELIVERIES = 10**9


def pseudonym() -> str:
    """Random, so it can never be worked back to the customer's id."""
    return PSEUDONYM_PREFIX + uuid.uuid4().hex[:16]


class Privacy:
    def __init__(self, config: PrivacyConfig, store: Store, customers: CustomerBook,
                 webhooks: Webhooks, clock: Callable[[], float] = time.time,
                 helpdesk: BridgeSettings | None = None) -> None:
        self._config = config
        self._helpdesk = helpdesk  # the bridged helpdesk's, when one is the desk
        self._store = store
        self._customers = customers
        self._webhooks = webhooks
        self._clock = clock

    # the access trail

    async def record(self, actor: str, action: str, subject: str, address: str,
                     **detail: Any) -> None:
        await self._store.record_access(AccessRecord(self._clock(), actor, action, subject,
                                                     address, detail))

    async def trail(self, since: float, until: float, limit: int, *, actor: str | None = None,
                    action: str | None = None, subject: str | None = None
                    ) -> list[AccessRecord]:
        """The trail of a period, oldest first, only what matches the filters given."""
        wanted = {k: v for k, v in (("actor", actor), ("action", action),
                                    ("subject", subject)) if v}
        return [r for r in await self._store.access_trail(since, until, limit)
                if all(getattr(r, k) == v for k, v in wanted.items())]

    # who may read what

    def _reads_all(self, agent: Agent) -> bool:
        return agent.role is AgentRole.SUPERVISOR or self._config.agents_read == "all"

    async def may_read_conversation(self, agent: Agent, conversation: Conversation) -> bool:
        if self._reads_all(agent) or conversation.agent_id == agent.id \
                or conversation.state is ConversationState.QUEUED:
            return True
        return any(e.agent_id == agent.id or e.detail.get("to") == agent.id
                   for e in await self._store.events(conversation.id))

    async def may_read_customer(self, agent: Agent, customer: Customer) -> bool:
        if self._reads_all(agent) or customer.owner_id == agent.id:
            return True
        for identity in await self._store.identities_of(customer.id):
            for conversation in await self._store.conversations_of(identity.channel,
                                                                   identity.user_id):
                if await self.may_read_conversation(agent, conversation):
                    return True
        return False

    def shown_to(self, agent: Agent, view: Any) -> Any:
        """A view as the agent may see it: contacts masked unless they see them in full."""
        if agent.role is AgentRole.SUPERVISOR or self._config.agents_see_contacts == "full":
            return view
        return mask_json(view)

    # erasure

    async def find(self, contact: str) -> list[Customer]:
        """The records holding a phone or email, however it is typed."""
        found = contacts_in(contact)
        value = found[0].value if found else contact.strip().lower()
        return await self._store.customers_with_contact(value)

    async def erase(self, customer_id: str, actor: str, address: str) -> dict[str, int]:
        """Everything kefu keeps of one person gone or anonymised; what went, by kind.
        Refused (CustomerError) for an unknown customer or one still in a conversation."""
        customer = await self._customers.get(customer_id)
        if customer is None:
            raise CustomerError("not_found", f"no customer {customer_id}")
        identities = await self._store.identities_of(customer.id)
        conversations = [c for i in identities
                         for c in await self._store.conversations_of(i.channel, i.user_id)]
        if any(c.state is not ConversationState.CLOSED for c in conversations):
            raise CustomerError("bad_state", f"customer {customer.id} is in a conversation; "
                                "erase them once it is closed")
        counts: dict[str, int] = {}

        def count(kind: str, n: int = 1) -> None:
            counts[kind] = counts.get(kind, 0) + n

        names = {(i.channel, i.user_id) for i in identities}
        names_of_them = {*(i.user_id for i in identities), *(c.id for c in conversations),
                         customer.id, *customer.phones, *customer.emails}
        new_names: dict[str, str] = {}
        await keep_complaint_history(self._store, conversations)
        for conversation in conversations:
            new_names[conversation.id] = pseudonym()
            await self._store.anonymise_conversation(conversation.id,
                                                     new_names[conversation.id])
            count("conversations anonymised")
        for ticket in await self._store.tickets():
            if (ticket.channel, ticket.user_id) in names:
                await self._store.save_ticket(replace(
                    ticket, question="", contact="", note="",
                    user_id=new_names.get(ticket.conversation_id) or pseudonym()))
                count("offline messages anonymised")
        for case in await self._store.cases(customer.id):
            await self._store.delete_case(case.id)
            count("cases deleted")
        if self._helpdesk is not None:  # before the channel state (its links) goes
            count("helpdesk records to delete",
                  await self._helpdesk.forget(self._store, [c.id for c in conversations]))
        naming = [d.id for d in await self._store.deliveries(limit=ALL_DELIVERIES)
                  if any(name in d.body for name in names_of_them)]
        await self._store.delete_deliveries(naming)
        count("webhook deliveries deleted", len(naming))
        for key in await self._store.state_keys():
            if names_of_them & set(key.split(":")):
                await self._store.delete_state(key)
                count("channel state deleted")
        records = await self._store.delete_customer(customer.id)
        count("customer records deleted", len(records))
        count("identities deleted", len(identities))
        deliveries = self._webhooks.prepare(ERASED_EVENT, {
            "customer_ids": records, "conversation_ids": sorted(new_names), **{
                k.replace(" ", "_"): v for k, v in counts.items()}})
        for delivery in deliveries:
            await self._store.save_delivery(delivery)
        self._webhooks.queued(deliveries)
        await self.record(actor, "erased", customer.id, address, **counts)
        log.info("privacy: customer %s erased by %s: %s", customer.id, actor,
                 ", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing was kept")
        return counts
