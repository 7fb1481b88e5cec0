"""kefu as the WeChat, WeCom, QQ and Telegram channel of a Chatwoot API inbox.

Outward, the transcript is the outbox. Every conversation handed off (queued, or held by a
Chatwoot agent) is copied to a Chatwoot conversation past a cursor kept in the store
(`chatwoot:<conversation id>`: the Chatwoot contact and conversation, the last seq
posted): customer messages as `incoming`, the bot's and kefu's own lines as private notes,
then the handoff's reason and match scores as a note. Each post carries `source_id`
`kefu:<conversation>:<seq>`; after a failure, or the first time a process looks at a
conversation, kefu reads back what Chatwoot has (every page), so a post that went through
before a crash is not made twice. One process at a time copies (the `chatwoot` lease).

The contact is found by kefu's identifier, made, or, when Chatwoot refuses a new one
because its email or phone number is another contact's (they are unique per account), that
contact; it follows kefu's customer record without overwriting what staff typed
(`_brought_up_to_date`). Conversations linked and not yet resolved in Chatwoot are listed in
the store (PENDING), so a conversation kefu closed is resolved there even across a
restart. An erased customer's contacts are queued by `forget` (ERASE_PREFIX keys) and
deleted by `run`.

Inward, the API inbox's webhook (signed, or with a secret in its URL on older installs)
and, because Chatwoot delivers it once and never retries, a read-back of each open
conversation every `catch_up_seconds`, become PlatformNews for the desk: an agent's reply
(`outgoing`, not private, written by a user: never a note, Chatwoot's bots or kefu's own
posts) is recorded once by its Chatwoot message id and delivered through the customer's
channel; an assignment (`conversation_updated` with `assignee_id`) tells the customer who
joined; a resolve hands the customer back to the bot with kefu's rating request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from bot.channel import PlatformNews, held_by_platform
from bot.cluster import Leases
from bot.messages import ConversationState, Role, StoredMessage
from bot.speaker import Speaker
from bot.store import Conversation, Customer, Store
from bot.tasks import BackgroundTasks
from handoff.bridges.chatwoot.api import ChatwootApi, ChatwootError
from handoff.bridges.chatwoot.settings import ChatwootSettings
from handoff.customers import CustomerBook

log = logging.getLogger(__name__)

NAME = "chatwoot"
LEADER = "chatwoot"
ROUTE = "/bridges/chatwoot/webhook"
MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
SEEN_DELIVERIES = 10_000  # delivery ids remembered, to drop a replay without a store read
OPEN = (ConversationState.QUEUED, ConversationState.AGENT)
HANDOFF_REASONS = {"request": "the customer asked for a person",
                   "complaint": "a complaint", "misses": "the bot could not answer, twice",
                   "entry": "the FAQ answer says a person should follow up"}
ROLE_LABEL = {Role.BOT: "kefu bot", Role.SYSTEM: "kefu", Role.AGENT: "kefu agent"}
PENDING = "chatwoot-pending"  # state key: conversations linked and not resolved yet
ERASE_PREFIX = "chatwoot-erase:"  # state keys: contacts of erased customers, to delete


def _listed(value: Any) -> list[str]:
    """kefu's custom attributes list phones and emails as "a, b"."""
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def link_key(conversation_id: str) -> str:
    """Where a kefu conversation's link to its Chatwoot contact and conversation is kept."""
    return f"{NAME}:{conversation_id}"


def _given(attributes: dict[str, Any]) -> dict[str, set[str]]:
    """The name, emails and phones kefu's custom attributes (`kefu_*`) say it gave."""
    return {"name": {str(attributes.get("kefu_name") or "")},
            "email": set(_listed(attributes.get("kefu_emails"))),
            "phone_number": {p for p in map(phone_for_chatwoot,
                                            _listed(attributes.get("kefu_phones"))) if p}}


async def forget(store: Store, conversation_ids: Sequence[str]) -> int:
    """Queue the deletion of the Chatwoot contacts of an erased customer's conversations
    (found by their links, which erasure deletes next): durable, so Chatwoot unreachable
    now still gets it; the bridge's `run` deletes them. How many were queued."""
    contacts = set()
    for conversation_id in conversation_ids:
        link = await store.load_state(link_key(conversation_id)) or {}
        if "contact" in link:
            contacts.add(int(link["contact"]))
    if contacts:
        await store.save_state(ERASE_PREFIX + uuid.uuid4().hex, {"contacts": sorted(contacts)})
    return len(contacts)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`X-Chatwoot-Signature` as Chatwoot computes it (lib/webhooks/trigger.rb)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def phone_for_chatwoot(phone: str) -> str | None:
    """Chatwoot takes E.164 only; a mainland mobile number gains +86."""
    digits = phone.replace(" ", "").replace("-", "")
    if digits.startswith("+") and digits[1:].isdigit():
        return digits
    if len(digits) == 11 and digits.startswith("1") and digits.isdigit():
        return "+86" + digits
    return None


def is_open_at(inbox: dict[str, Any], now: float) -> bool:
    """The inbox's working hours (day 0 is Sunday), in the inbox's time zone."""
    if not inbox.get("working_hours_enabled"):
        return True
    try:
        zone = ZoneInfo(str(inbox.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    moment = datetime.fromtimestamp(now, zone)
    day = (moment.weekday() + 1) % 7
    for hours in inbox.get("working_hours") or []:
        if hours.get("day_of_week") != day:
            continue
        if hours.get("closed_all_day"):
            return False
        if hours.get("open_all_day"):
            return True
        minute = moment.hour * 60 + moment.minute
        opens = int(hours.get("open_hour") or 0) * 60 + int(hours.get("open_minutes") or 0)
        closes = int(hours.get("close_hour") or 0) * 60 + int(hours.get("close_minutes") or 0)
        return opens <= minute < closes
    return False


class RedactSecret(logging.Filter):
    """Keeps the URL secret out of aiohttp's access log (the request line names the path)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = record.msg.replace(self._secret, "***")
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and self._secret in value:
                setattr(record, key, value.replace(self._secret, "***"))
        return True


class ChatwootBridge:
    name = NAME

    def __init__(self, settings: ChatwootSettings, store: Store, speaker: Speaker,
                 customers: CustomerBook, leases: Leases,
                 news: Callable[[PlatformNews], Any], clock: Callable[[], float] = time.time
                 ) -> None:
        self._settings = settings
        self._store = store
        self._customers = customers
        self._leases = leases
        self._news = news
        self._clock = clock
        self.api = ChatwootApi(settings)
        self._wake = asyncio.Event()
        self._dirty: set[str] = set()
        self._checked: set[str] = set()  # conversations read back since this process began
        self._retry: dict[str, tuple[int, float]] = {}  # conversation -> (failures, next try)
        self._logged: dict[str, str] = {}  # what -> the failure last logged for it
        self._pending: set[str] | None = None  # PENDING's copy, once read
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._inbox: tuple[float, dict[str, Any]] | None = None
        self._background = BackgroundTasks("chatwoot webhook")
        speaker.listen(self._heard)
        if settings.url_secret:
            logging.getLogger("aiohttp.access").addFilter(RedactSecret(settings.url_secret))

    # what the desk asks

    async def on_duty(self, now: float) -> bool:
        if self._inbox is None or now - self._inbox[0] >= self._settings.hours_cache_seconds:
            try:
                self._inbox = (now, await self.api.inbox())
            except ChatwootError as exc:
                log.warning("chatwoot: cannot read the inbox's business hours (%s); %s", exc,
                            "using the last ones read" if self._inbox else "taking handoffs")
                if self._inbox is None:
                    return True
        return is_open_at(self._inbox[1], now)

    async def end(self, conversation: Conversation) -> None:
        """Resolved in Chatwoot by the copy, once kefu has closed the conversation."""
        self._touch(conversation.id)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(ROUTE, self._webhook)
        app.router.add_post(ROUTE + "/{secret}", self._webhook)

    # outward: the transcript copied to Chatwoot

    def _heard(self, conversation: Conversation, message: StoredMessage | None) -> None:
        if conversation.state in OPEN or conversation.state is ConversationState.CLOSED:
            self._touch(conversation.id)

    def _touch(self, conversation_id: str) -> None:
        self._dirty.add(conversation_id)
        self._wake.set()

    async def run(self) -> None:
        next_scan = next_read = 0.0
        try:
            while True:
                await self._woken_or_after(self._settings.sync_seconds)
                due, self._dirty = self._dirty, set()  # the leader hears of them too
                if not await self._leases.try_lead(LEADER):
                    self._pending = None  # another process may change PENDING meanwhile
                    continue
                now = self._clock()
                if now >= next_scan:
                    due |= {c.id for c in await self._bridged()} | await self._pending_ids()
                    next_scan = now + self._settings.sync_seconds
                for conversation_id in sorted(due):
                    await self.sync(conversation_id)
                if now >= next_read:
                    await self.read_back()
                    await self.erase_queued()
                    next_read = now + self._settings.catch_up_seconds
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.timeout_seconds):
                    await self._background.drain()  # webhooks being handled
            await self._background.cancel()
            await self.api.aclose()

    async def _woken_or_after(self, seconds: float) -> None:
        """Wait for work, at most `seconds` (asyncio.wait: on Python 3.11, asyncio.timeout
        may take a cancel that arrives as it fires for the timeout, and lose it)."""
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait([waiter], timeout=seconds)
        finally:
            waiter.cancel()
        self._wake.clear()

    async def _bridged(self) -> list[Conversation]:
        """Open handoffs; not those a channel's own platform agents hold (WeCom's)."""
        found: list[Conversation] = []
        for state in OPEN:
            found += [c for c in await self._store.conversations_in_state(state)
                      if not held_by_platform(c.agent_id)
                      or (c.agent_id or "").startswith(NAME + ":")]
        return found

    async def sync(self, conversation_id: str) -> None:
        """Copy what Chatwoot does not have yet; on failure, try again later, doubling.
        Only `run` calls it, one conversation at a time."""
        failures, next_try = self._retry.get(conversation_id, (0, 0.0))
        if next_try > self._clock():
            return
        try:
            await self._copy(conversation_id)
        except ChatwootError as exc:
            self._checked.discard(conversation_id)  # a post may have gone through
            wait = min(self._settings.first_retry_seconds * 2 ** failures,
                       self._settings.max_retry_seconds)
            self._retry[conversation_id] = (failures + 1, self._clock() + wait)
            self._failed(f"copy {conversation_id}", exc,
                         "chatwoot: conversation %s not copied (%s); trying again in %.0f s, "
                         "doubling", conversation_id, exc, wait)
            return
        if self._retry.pop(conversation_id, None) is not None:
            self._recovered(f"copy {conversation_id}", "chatwoot: conversation %s copied "
                            "again", conversation_id)

    def _failed(self, what: str, exc: ChatwootError, message: str, *args: Any) -> None:
        """A failure logged once (a refusal as an error, an outage as a warning); the same
        failure again, while it lasts, only at debug level."""
        if self._logged.get(what) == str(exc):
            log.debug(message, *args)
            return
        self._logged[what] = str(exc)
        (log.error if 400 <= exc.status < 500 else log.warning)(message, *args)

    def _recovered(self, what: str, message: str, *args: Any) -> None:
        if self._logged.pop(what, None) is not None:
            log.info(message, *args)

    async def _pending_ids(self) -> set[str]:
        """Conversations linked to Chatwoot and not resolved there yet (PENDING in the
        store): a conversation kefu closed is resolved even after a restart."""
        if self._pending is None:
            self._pending = set((await self._store.load_state(PENDING) or {}).get(
                "conversations") or [])
        return self._pending

    async def _pend(self, conversation_id: str, pending: bool) -> None:
        """Only the leader's `run` writes PENDING (it holds the `chatwoot` lease)."""
        known = await self._pending_ids()
        if (conversation_id in known) == pending:
            return
        if pending:
            known.add(conversation_id)
        else:
            known.discard(conversation_id)
        if known:
            await self._store.save_state(PENDING, {"conversations": sorted(known)})
        else:
            await self._store.delete_state(PENDING)

    async def _link(self, conversation_id: str) -> dict[str, Any]:
        return await self._store.load_state(link_key(conversation_id)) or {}

    async def _save_link(self, conversation_id: str, link: dict[str, Any]) -> None:
        await self._store.save_state(link_key(conversation_id), link)

    async def _copy(self, conversation_id: str) -> None:
        conversation = await self._store.get_conversation(conversation_id)
        link = await self._link(conversation_id)
        if conversation is None or ("conversation" not in link
                                    and conversation.state not in OPEN):
            await self._pend(conversation_id, False)  # never handed off, or erased
            return
        if "conversation" not in link:
            link = await self._open(conversation)
            await self._save_link(conversation_id, link)
        await self._pend(conversation_id, not link.get("resolved"))
        remote = int(link["conversation"])
        await self._contact_current(conversation, link)
        posted = await self._already_posted(conversation_id, link)
        for message in await self._store.messages(conversation_id, link["posted_seq"]):
            source_id = f"kefu:{conversation_id}:{message.seq}"
            if message.meta.get("via") != NAME and message.text and source_id not in posted:
                customer = message.role is Role.CUSTOMER
                text = message.text if customer else \
                    f"[{ROLE_LABEL.get(message.role, 'kefu')}] {message.text}"
                made = await self.api.post_message(remote, text, incoming=customer,
                                                   private=not customer, source_id=source_id)
                link["last_posted"] = int(made.get("id") or link.get("last_posted", 0))
            link["posted_seq"] = message.seq
            await self._save_link(conversation_id, link)
        if not link.get("noted"):
            source_id = f"kefu:{conversation_id}:handoff"
            if source_id not in posted:
                await self.api.post_message(remote, await self._handoff_note(conversation),
                                            incoming=False, private=True, source_id=source_id)
            link["noted"] = True
            await self._save_link(conversation_id, link)
        if conversation.state is ConversationState.CLOSED and not link.get("resolved"):
            try:
                await self.api.resolve(remote)
            except ChatwootError as exc:
                if exc.status != 404:
                    raise
                log.info("chatwoot: conversation %s is gone from Chatwoot (%s)",
                         conversation_id, exc)
            link["resolved"] = True
            await self._save_link(conversation_id, link)
            await self._pend(conversation_id, False)
            self._checked.discard(conversation_id)  # done with

    async def _already_posted(self, conversation_id: str, link: dict[str, Any]) -> set[str]:
        """kefu's posts Chatwoot has past the last one kefu knows of, read once per process
        and after each failure: a post may have gone through before kefu heard back."""
        if conversation_id in self._checked:
            return set()
        found = await self.api.messages_after(int(link["conversation"]),
                                              int(link.get("last_posted", 0)))
        self._checked.add(conversation_id)
        return {str(m.get("source_id")) for m in found
                if str(m.get("source_id") or "").startswith("kefu:")}

    async def _open(self, conversation: Conversation) -> dict[str, Any]:
        """The Chatwoot contact (`_contact`) and conversation (found by kefu's conversation
        id, so a crash after creating it makes no second one)."""
        customer = await self._customers.of(conversation.channel, conversation.user_id)
        contact = await self._contact(conversation, customer)
        source_id = f"{conversation.channel}:{conversation.user_id}"
        await self.api.add_contact_inbox(int(contact["id"]), source_id)
        mine = [c for c in await self.api.conversations_of(int(contact["id"]))
                if (c.get("custom_attributes") or {}).get("kefu_conversation_id")
                == conversation.id]
        remote = mine[0] if mine else await self.api.create_conversation(
            source_id, int(contact["id"]), {"kefu_conversation_id": conversation.id},
            {"kefu_channel": conversation.channel})
        log.info("chatwoot: conversation %s is Chatwoot's conversation %s", conversation.id,
                 remote["id"])
        return {"contact": int(contact["id"]), "conversation": int(remote["id"]),
                "source_id": source_id, "posted_seq": 0, "read_after": 0,
                "customer_at": customer.updated_at}

    async def _wanted(self, conversation: Conversation, customer: Customer) -> dict[str, Any]:
        """The contact as kefu's record has it: name, first email and phone (E.164), and
        kefu's ids on each channel, every phone and email, as custom attributes."""
        identities = await self._store.identities_of(customer.id)
        phones = [p for p in map(phone_for_chatwoot, customer.phones) if p]
        name = customer.name or f"{conversation.channel} {conversation.user_id[:12]}"
        return {"name": name, "identifier": f"kefu:{customer.id}", "custom_attributes": {
                    "kefu_customer_id": customer.id, "kefu_name": name,
                    **{f"kefu_{i.channel}": i.user_id for i in identities},
                    "kefu_phones": ", ".join(customer.phones),
                    "kefu_emails": ", ".join(customer.emails)},
                **({"email": customer.emails[0]} if customer.emails else {}),
                **({"phone_number": phones[0]} if phones else {})}

    async def _contact(self, conversation: Conversation, customer: Customer
                       ) -> dict[str, Any]:
        """The customer's contact: found by kefu's identifier, else made; when Chatwoot
        refuses to make it (422: its email or phone number is another contact's, as for a
        person your team already had, or two kefu records of one person), that contact,
        found by email or phone, brought up to date and used."""
        wanted = await self._wanted(conversation, customer)
        identifier = str(wanted["identifier"])
        contact = await self.api.contact_by_identifier(identifier)
        if contact is not None:
            return await self._brought_up_to_date(contact, wanted)
        try:
            return await self.api.create_contact(wanted)
        except ChatwootError as exc:
            if exc.status != 422:
                raise
            refused = exc
        contact = await self.api.contact_by_identifier(identifier)  # made meanwhile?
        for field in ("email", "phone_number"):
            if contact is None and wanted.get(field):
                contact = await self.api.find_contact(field, str(wanted[field]))
        if contact is not None:
            log.info("chatwoot: customer %s is Chatwoot's contact %s (Chatwoot refused a "
                     "new one: %s)", customer.id, contact.get("id"), refused)
            return await self._brought_up_to_date(contact, wanted)
        # nobody has them: Chatwoot refused the values themselves (a malformed email...);
        # the custom attributes still carry every phone and email
        kept = {k: v for k, v in wanted.items()
                if k not in refused.attributes or k not in ("email", "phone_number")}
        if kept == wanted:
            raise refused
        return await self.api.create_contact(kept)

    async def _contact_current(self, conversation: Conversation, link: dict[str, Any]
                               ) -> None:
        """When kefu's record of the customer changed (a phone given in the chat...), the
        contact follows."""
        customer = await self._customers.of(conversation.channel, conversation.user_id)
        if customer.updated_at <= float(link.get("customer_at") or 0):
            return
        contact = await self.api.contact(int(link["contact"]))
        await self._brought_up_to_date(contact, await self._wanted(conversation, customer))
        link["customer_at"] = customer.updated_at
        await self._save_link(conversation.id, link)

    async def _brought_up_to_date(self, contact: dict[str, Any], wanted: dict[str, Any]
                                  ) -> dict[str, Any]:
        """PUT what kefu knows that the contact lacks. kefu's custom attributes always
        (Chatwoot merges them into the contact's others); its identifier when it has none;
        a name, email or phone when the contact has none, or still has the one kefu gave
        it before and kefu's record has dropped. What your staff typed stays."""
        attributes = dict(contact.get("custom_attributes") or {})
        change: dict[str, Any] = {}
        ours = wanted["custom_attributes"]
        if any(attributes.get(k) != v for k, v in ours.items()):
            change["custom_attributes"] = ours
        if not contact.get("identifier"):
            change["identifier"] = wanted["identifier"]
        before, now = _given(attributes), _given(ours)
        for field in ("name", "email", "phone_number"):
            have = str(contact.get(field) or "")
            value = str(wanted.get(field) or "")
            if field == "email":
                have, value = have.lower(), value.lower()
            if not value or have == value:
                continue
            if not have or (have in before[field] and have not in now[field]):
                change[field] = wanted[field]
        if not change:
            return contact
        contact_id = int(contact["id"])
        try:
            return await self.api.update_contact(contact_id, change)
        except ChatwootError as exc:
            if exc.status != 422:
                raise
            kept = {k: v for k, v in change.items() if k not in exc.attributes}
            if kept == change:
                raise
            log.info("chatwoot: contact %s keeps its %s (Chatwoot refused kefu's: %s)",
                     contact_id, ", ".join(sorted(set(change) - set(kept))), exc)
            return await self.api.update_contact(contact_id, kept) if kept else contact

    async def _handoff_note(self, conversation: Conversation) -> str:
        """Why kefu handed over, and what the bot made of the customer's last question."""
        scores: list[dict[str, Any]] = []
        for message in await self._store.messages(conversation.id):
            scores = message.meta.get("scores") or scores
        reason = conversation.handoff_reason or "request"
        lines = [f"kefu handed this customer over: {HANDOFF_REASONS.get(reason, reason)} "
                 f"(reason: {reason}; channel: {conversation.channel})"]
        if scores:
            lines.append("The bot's best matches for the last question (score):")
            lines += [f"- {s.get('entry')}: {float(s.get('score') or 0):.1f} "
                      f"\u201c{s.get('question')}\u201d" for s in scores[:5]]
        return "\n".join(lines)

    # inward: what Chatwoot's agents did

    async def read_back(self) -> None:
        """What the webhooks may have missed (Chatwoot sends each once): every open
        handoff's new messages and its assignee and status, as if webhooked."""
        for conversation in await self._bridged():
            link = await self._link(conversation.id)
            if "conversation" not in link:
                continue
            try:
                remote = await self.api.conversation(int(link["conversation"]))
                found = await self.api.messages_after(int(link["conversation"]),
                                                      int(link.get("read_after", 0)))
            except ChatwootError as exc:  # this one (deleted in Chatwoot?); the others go on
                self._failed(f"read {conversation.id}", exc, "chatwoot: cannot read "
                             "conversation %s back (%s)", conversation.id, exc)
                continue
            self._recovered(f"read {conversation.id}", "chatwoot: conversation %s read "
                            "back again", conversation.id)
            for message in found:
                await self._message(message, conversation)
            if found:
                link = await self._link(conversation.id)
                link["read_after"] = max(int(m["id"]) for m in found)
                await self._save_link(conversation.id, link)
            assignee = (remote.get("meta") or {}).get("assignee")
            if assignee and conversation.agent_id != f"{NAME}:{assignee.get('name')}":
                await self._tell(conversation, "assigned", str(assignee.get("name")))
            if remote.get("status") == "resolved":
                await self._tell(conversation, "ended", "")

    # erasure: a person erased in kefu is deleted from Chatwoot too

    async def erase_queued(self) -> None:
        """Delete the contacts `forget` queued (with their conversations, in Chatwoot);
        what fails stays queued for the next round."""
        for key in await self._store.state_keys():
            if not key.startswith(ERASE_PREFIX):
                continue
            queued = await self._store.load_state(key) or {}
            left = [int(c) for c in queued.get("contacts") or []]
            for contact_id in list(left):
                try:
                    await self.api.delete_contact(contact_id)
                except ChatwootError as exc:
                    self._failed(key, exc, "chatwoot: an erased customer's contact %s is not "
                                 "deleted yet (%s)", contact_id, exc)
                    break
                left.remove(contact_id)
                log.info("chatwoot: contact %s deleted (its customer was erased)", contact_id)
            if left:
                await self._store.save_state(key, {"contacts": left})
            else:
                await self._store.delete_state(key)
                self._logged.pop(key, None)

    async def _webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        refused = self._refusal(request, raw)
        if refused is not None:
            status, why = refused
            log.warning("chatwoot webhook from %s refused: %s", request.remote, why)
            return web.json_response({"error": why}, status=status)
        delivery = request.headers.get("X-Chatwoot-Delivery", "")
        if delivery and delivery in self._seen:
            return web.json_response({"ok": True, "duplicate": True})
        if delivery:
            self._seen[delivery] = None
            while len(self._seen) > SEEN_DELIVERIES:
                self._seen.popitem(last=False)
        try:
            payload = json.loads(raw)
        except ValueError:
            log.warning("chatwoot webhook: the body is not JSON")
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"error": "expected a JSON object"}, status=400)
        self._background.spawn(self._event(payload))
        return web.json_response({"ok": True})

    def _refusal(self, request: web.Request, raw: bytes) -> tuple[int, str] | None:
        """Why the request is not Chatwoot's; None when it is."""
        settings = self._settings
        if len(raw) > settings.max_body_bytes:
            return 413, f"the body is over {settings.max_body_bytes} bytes"
        in_url = request.match_info.get("secret")
        if in_url is not None:
            if settings.url_secret and hmac.compare_digest(in_url, settings.url_secret):
                return None
            return 403, "the secret in the URL is not kefu's"
        if not settings.webhook_secret:
            return 403, "this kefu expects the secret in the webhook URL"
        timestamp = request.headers.get("X-Chatwoot-Timestamp", "")
        given = request.headers.get("X-Chatwoot-Signature", "")
        if not timestamp or not given:
            return 401, "not signed (X-Chatwoot-Signature and X-Chatwoot-Timestamp)"
        try:
            age = abs(self._clock() - float(timestamp))
        except ValueError:
            return 401, "X-Chatwoot-Timestamp is not a number"
        if age > settings.timestamp_max_age_seconds:
            return 401, f"the timestamp is {age:.0f} s old"
        if not hmac.compare_digest(given, signature(settings.webhook_secret, timestamp, raw)):
            return 401, "the signature does not match the inbox's secret"
        return None

    async def _event(self, payload: dict[str, Any]) -> None:
        event = payload.get("event")
        if event == "message_created":
            conversation = await self._conversation_of(payload.get("conversation") or {})
            if conversation is not None:
                await self._message(payload, conversation)
        elif event in ("conversation_updated", "conversation_status_changed"):
            conversation = await self._conversation_of(payload)
            if conversation is None:
                return
            for change in payload.get("changed_attributes") or []:
                if not isinstance(change, dict):
                    continue
                assigned = (change.get("assignee_id") or {}).get("current_value")
                assignee = (payload.get("meta") or {}).get("assignee") or {}
                if assigned and assignee.get("name"):
                    await self._tell(conversation, "assigned", str(assignee["name"]))
                status = (change.get("status") or {}).get("current_value")
                if status == "resolved":
                    await self._tell(conversation, "ended", "")

    async def _conversation_of(self, remote: dict[str, Any]) -> Conversation | None:
        """kefu's conversation that this Chatwoot conversation copies; None for another."""
        kefu_id = (remote.get("custom_attributes") or {}).get("kefu_conversation_id")
        conversation = await self._store.get_conversation(str(kefu_id)) if kefu_id else None
        if conversation is None:
            log.info("chatwoot: conversation %s is not one of kefu's", remote.get("id"))
            return None
        linked = (await self._link(conversation.id)).get("conversation")
        if linked is not None and linked != remote.get("id"):  # None: being linked now
            log.info("chatwoot: conversation %s is not linked to kefu's %s", remote.get("id"),
                     conversation.id)
            return None
        return conversation

    async def _message(self, message: dict[str, Any], conversation: Conversation) -> None:
        """An agent's reply reaches the customer; notes, activity, the contact's side
        (kefu's own posts), Chatwoot's bots and kefu's own posts never do."""
        kind = message.get("message_type")
        kind = MESSAGE_TYPES.get(kind, "") if isinstance(kind, int) else kind
        sender = message.get("sender") or {}
        if kind != "outgoing" or message.get("private") or sender.get("type") != "user" \
                or str(message.get("source_id") or "").startswith("kefu:"):
            return
        text = str(message.get("content") or "").strip()
        if not text:
            log.info("chatwoot: message %s has no text (attachments are not passed on yet)",
                     message.get("id"))
            return
        platform_msg_id = f"{NAME}:{message.get('id')}"
        await self._tell(conversation, "wrote", str(sender.get("name") or sender.get("id")),
                         text=text, platform_msg_id=platform_msg_id)
        await self._tell_undelivered(conversation, message, platform_msg_id)

    async def _tell_undelivered(self, conversation: Conversation, message: dict[str, Any],
                                platform_msg_id: str) -> None:
        """A reply the customer's platform refused for good (WeChat's 48-hour window, its
        quota...) is kept in kefu's transcript; the agent reads why in a private note."""
        stored = next((m for m in reversed(await self._store.messages(conversation.id))
                       if m.platform_msg_id == platform_msg_id), None)
        if stored is None:
            return
        reason = next((str(e.detail.get("reason")) for e in await self._store.events(
            conversation.id, since=stored.ts - 60)
            if e.type == "undelivered" and e.detail.get("seq") == stored.seq), None)
        remote = (await self._link(conversation.id)).get("conversation")
        if reason is None or remote is None:
            return
        key = f"{NAME}:{conversation.id}:undelivered"  # told once, across restarts too
        told = list((await self._store.load_state(key) or {}).get("seqs") or [])
        if stored.seq in told:
            return
        await self._store.save_state(key, {"seqs": [*told, stored.seq]})
        try:
            await self.api.post_message(
                int(remote), f"[kefu] Not delivered to the customer: {reason}. The reply is "
                "kept in kefu's transcript.", incoming=False, private=True,
                source_id=f"kefu:{conversation.id}:undelivered:{stored.seq}")
        except ChatwootError as exc:
            log.warning("chatwoot: cannot tell the agent that message %s was not delivered "
                        "(%s)", message.get("id"), exc)

    async def _tell(self, conversation: Conversation, what: str, agent: str, **more: Any
                    ) -> None:
        await self._news(PlatformNews(conversation.channel, conversation.user_id, what, agent,
                                      self._clock(), can_tell=True, desk=NAME, **more))
