"""Customer records: one per person, whatever channels they write on.

Every conversation belongs to a customer, found by the channel identity; the record is
made when there is something to keep (a contact typed, an agent opening the chat, a case),
so a burst of new customers costs no extra writes. Phone numbers and emails a customer
types are captured into the record as soon as the message is stored (in the background: a
conversation never waits for it). Two records are one person when an agent says so
(merge), or when an agent verifies a contact that another record has verified too: a
contact the customer only typed is not proof (anyone can type someone else's number), so
it is offered to agents as a possible match instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.config import CrmConfig
from bot.messages import Role, StoredMessage
from bot.speaker import Speaker
from bot.store import Agent, Conversation, Customer, Identity, Store
from handoff.contacts import contacts_in, might_hold_contact

log = logging.getLogger(__name__)

MAX_MERGE_HOPS = 20  # a merged record points on; chains are short, loops are refused
CAPTURE_QUEUE = 10_000
NAMES_REMEMBERED = 10_000  # (channel, user, name) already taken into records, per process


class CustomerError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CustomerBook:
    def __init__(self, config: CrmConfig, store: Store, clock: Callable[[], float] = time.time,
                 names: Callable[[str, str], Awaitable[str]] | None = None) -> None:
        self._config = config
        self._names = names  # (channel, user id) -> the platform's name for a new record
        self._store = store
        self._clock = clock
        self._captures: asyncio.Queue[tuple[Conversation, StoredMessage]] = asyncio.Queue(
            CAPTURE_QUEUE)
        self._names_seen: set[tuple[str, str, str]] = set()

    # finding

    async def get(self, customer_id: str) -> Customer | None:
        """The record, following merges to the one that lives on."""
        customer = await self._store.get_customer(customer_id)
        for _ in range(MAX_MERGE_HOPS):
            if customer is None or customer.merged_into is None:
                return customer
            customer = await self._store.get_customer(customer.merged_into)
        return None

    async def of(self, channel: str, user_id: str, display_name: str = "") -> Customer:
        """The customer behind a channel identity, created the first time; `display_name`
        is the name the channel shows for them, if it gives one."""
        identity = await self._store.identity(channel, user_id)
        if identity is not None:
            found = await self.get(identity.customer_id)
            if found is not None:
                return await self._named(found, identity, display_name)
        if not display_name and self._names is not None:
            display_name = await self._platform_name(channel, user_id)
        now = self._clock()
        customer = Customer(id="C" + uuid.uuid4().hex[:12], created_at=now, updated_at=now,
                            name=display_name)
        owner = await self._owner_by_rules(customer, channel)
        customer = replace(customer, owner_id=owner)
        await self._store.save_customer(customer)
        mine = Identity(channel, user_id, customer.id, display_name=display_name,
                        first_seen_at=now)
        if identity is not None:  # its record is gone: the identity moves to the new one
            await self._store.save_identity(mine)
            return customer
        held = await self._store.claim_identity(mine)
        if held.customer_id == customer.id:
            return customer
        # another process made the record at the same moment: theirs is the one
        await self._store.save_customer(replace(customer, merged_into=held.customer_id))
        found = await self.get(held.customer_id)
        return found if found is not None else customer

    async def _platform_name(self, channel: str, user_id: str) -> str:
        assert self._names is not None
        try:
            return await self._names(channel, user_id)
        except Exception as exc:  # a record without a name beats no record
            log.warning("crm: no name from %s for %s: %r", channel, user_id, exc)
            return ""

    async def _named(self, customer: Customer, identity: Identity, display_name: str
                     ) -> Customer:
        """The channel's name for the customer, kept on the identity; the record takes it
        while it has no name (an agent's choice is kept)."""
        if not display_name or display_name == identity.display_name:
            return customer
        await self._store.save_identity(replace(identity, display_name=display_name))
        if customer.name:
            return customer
        customer = replace(customer, name=display_name, updated_at=self._clock())
        await self._store.save_customer(customer)
        return customer

    async def possible_matches(self, customer: Customer) -> list[Customer]:
        """Other records with one of this customer's phones or emails."""
        others: dict[str, Customer] = {}
        for contact in (*customer.phones, *customer.emails):
            for other in await self._store.customers_with_contact(contact):
                if other.id != customer.id:
                    others.setdefault(other.id, other)
        return list(others.values())

    async def _owner_by_rules(self, customer: Customer, channel: str | None) -> str | None:
        for rule in self._config.owner_rules:
            if (rule.channel is None or rule.channel == channel) and \
                    (rule.tag is None or rule.tag in customer.tags):
                agent = await self._store.agent_by_name(rule.owner)
                if agent is not None:
                    return agent.id
                log.warning("crm: owner rule names %r, who has no account", rule.owner)
        return None

    # capturing contacts and names

    def listen(self, speaker: Speaker) -> None:
        speaker.listen_here(self._heard)

    def _heard(self, conversation: Conversation, message: StoredMessage | None) -> None:
        if message is None or message.role is not Role.CUSTOMER:
            return
        name = str(message.meta.get("display_name") or "")
        named = (conversation.channel, conversation.user_id, name)
        new_name = bool(name) and named not in self._names_seen
        if not new_name and not might_hold_contact(message.text):
            return
        if new_name:
            if len(self._names_seen) >= NAMES_REMEMBERED:
                self._names_seen.clear()  # a name seen again costs one read, no write
            self._names_seen.add(named)
        try:
            self._captures.put_nowait((conversation, message))
        except asyncio.QueueFull:
            log.warning("crm: contact capture is behind; message %s of %s skipped",
                        message.seq, conversation.id)

    async def run(self) -> None:
        """Take contacts (and the channel's name for the customer) from customers'
        messages into their records, in order."""
        while True:
            conversation, message = await self._captures.get()
            try:
                await self.capture(conversation, message.text,
                                   str(message.meta.get("display_name") or ""))
            except Exception:  # the loop must go on; the failure is logged
                log.exception("crm: contacts of message %s of %s not captured", message.seq,
                              conversation.id)

    async def capture(self, conversation: Conversation, text: str, display_name: str = ""
                      ) -> Customer:
        customer = await self.of(conversation.channel, conversation.user_id, display_name)
        found = contacts_in(text) if might_hold_contact(text) else []
        phones = [c.value for c in found if c.kind == "phone" and c.value not in customer.phones]
        emails = [c.value for c in found if c.kind == "email" and c.value not in customer.emails]
        if not (phones or emails):
            return customer
        customer = replace(customer, phones=(*customer.phones, *phones),
                           emails=(*customer.emails, *emails), updated_at=self._clock())
        await self._store.save_customer(customer)
        return customer

    # agents' changes

    async def update(self, agent: Agent, customer_id: str, *, name: str | None = None,
                     tags: list[str] | None = None, note: str | None = None,
                     owner_id: str | None = None) -> Customer:
        customer = await self._required(customer_id)
        now = self._clock()
        if name is not None:
            customer = replace(customer, name=name.strip()[:100])
        if tags is not None:
            customer = replace(customer, tags=tuple(dict.fromkeys(
                t.strip() for t in tags if t.strip())))
            if customer.owner_id is None:
                customer = replace(customer, owner_id=await self._owner_by_rules(customer,
                                                                                 None))
        if note:
            customer = replace(customer, notes=(*customer.notes, {
                "at": now, "by": agent.name, "text": note.strip()[:2000]}))
        if owner_id is not None:
            if await self._store.get_agent(owner_id) is None:
                raise CustomerError("not_found", f"no agent {owner_id}")
            customer = replace(customer, owner_id=owner_id)
        customer = replace(customer, updated_at=now)
        await self._store.save_customer(customer)
        return customer

    async def verify(self, agent: Agent, customer_id: str, contact: str) -> Customer:
        """The agent confirmed the contact is the customer's; records that verified the same
        contact are the same person and are merged into the older one."""
        customer = await self._required(customer_id)
        found = contacts_in(contact)
        value = found[0].value if found else contact.strip().lower()
        if value not in (*customer.phones, *customer.emails):
            raise CustomerError("bad_request", f"{contact!r} is not one of the customer's "
                                "phones or emails")
        customer = replace(customer, verified=tuple(dict.fromkeys((*customer.verified, value))),
                           updated_at=self._clock())
        await self._store.save_customer(customer)
        same = [c for c in await self._store.customers_with_contact(value)
                if c.id != customer.id and value in c.verified]
        for other in same:
            older, newer = sorted((customer, other), key=lambda c: (c.created_at, c.id))
            customer = await self.merge(agent, older.id, newer.id,
                                        why=f"both verified {value}")
        return customer

    async def merge(self, agent: Agent, keep_id: str, other_id: str, why: str = "") -> Customer:
        """`other` becomes part of `keep`: identities, contacts, tags, notes, cases."""
        keep, other = await self._required(keep_id), await self._required(other_id)
        if keep.id == other.id:
            raise CustomerError("bad_request", "a customer cannot be merged with itself")
        now = self._clock()
        for identity in await self._store.identities_of(other.id):
            await self._store.save_identity(replace(identity, customer_id=keep.id))
        for case in await self._store.cases(other.id):
            await self._store.save_case(replace(case, customer_id=keep.id))
        merged = replace(
            keep, name=keep.name or other.name, phones=_union(keep.phones, other.phones),
            emails=_union(keep.emails, other.emails),
            verified=_union(keep.verified, other.verified), tags=_union(keep.tags, other.tags),
            notes=(*sorted((*keep.notes, *other.notes), key=lambda n: n["at"]),
                   {"at": now, "by": agent.name,
                    "text": f"merged with {other.id}" + (f" ({why})" if why else "")}),
            owner_id=keep.owner_id or other.owner_id, updated_at=now)
        await self._store.save_customer(merged)
        await self._store.save_customer(replace(other, merged_into=keep.id, updated_at=now))
        log.info("crm: %s merged into %s by %s %s", other.id, keep.id, agent.name, why)
        return merged

    async def _required(self, customer_id: str) -> Customer:
        customer = await self.get(customer_id)
        if customer is None:
            raise CustomerError("not_found", f"no customer {customer_id}")
        return customer


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *second)))
