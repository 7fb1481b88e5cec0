"""Chatwoot's side, on 127.0.0.1, for tests: its Application API and an API inbox's webhooks.

Written from Chatwoot's published API reference and source, independently of kefu:

- every call needs the `api_access_token` header (a user's access token); without the
  right one, 401 `{"error": "You need to sign in or sign up before continuing."}`;
- contacts (`POST /contacts`, `GET`, `PUT` and `DELETE /contacts/{id}`, `GET
  /contacts/search?q=&page=` over name, email, phone number and identifier, 15 a page,
  `GET /contacts/{id}/conversations`), with Chatwoot's validations (app/models/contact.rb):
  identifier, email (case-insensitive) and phone number unique in the account, the phone in
  E.164, the email well formed; a refusal is 422 `{"message": "Email has already been
  taken", "attributes": ["email"]}` (render_record_invalid). `PUT` merges
  `custom_attributes` into the contact's; `DELETE` deletes its conversations too;
  contact inboxes with a `source_id` unique per inbox (`POST /contacts/{id}/contact_inboxes`);
- conversations (`POST /conversations` with `source_id`, `inbox_id`, `contact_id` and
  `custom_attributes`; `GET /conversations/{id}`, numbered per account as Chatwoot's
  `display_id`), `toggle_status`, `POST /conversations/{id}/assignments` with
  `assignee_id` (answers the agent, or `null`);
- messages (`POST`, `GET ?after=<id>`): `incoming`, `outgoing`, `private` notes, with the
  `source_id` the poster gave; API answers carry `message_type` as a number (0 incoming,
  1 outgoing, 2 activity), webhooks as a name;
- the inbox (`GET /inboxes/{id}`) with its working hours (day 0 is Sunday) and time zone;
- the API inbox's webhook: every `message_created` of the inbox, including the messages its
  own client posted and private notes (`"private": true`), `conversation_updated` with
  `changed_attributes` (a list of `{name: {previous_value, current_value}}`) on assignment,
  `conversation_status_changed` on resolve; signed with the inbox's secret as
  `X-Chatwoot-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, with
  `X-Chatwoot-Timestamp` and `X-Chatwoot-Delivery`; posted once, never retried: a
  delivery that fails is lost (chatwoot#15920).

Agents act through methods (`reply`, `note`, `assign`, `resolve`, `bot_says`,
`add_contact`, `delete_conversation`), as they would in Chatwoot's dashboard.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.channels.local import serve

MESSAGE_TYPES = {"incoming": 0, "outgoing": 1, "activity": 2, "template": 3}
E164 = re.compile(r"\+[1-9]\d{1,14}\Z")  # Contact's phone_number format
EMAIL = re.compile(r"\A[^@\s]+@[^@\s]+\Z")  # Devise.email_regexp
SEARCH_PAGE = 15  # ContactsController::RESULTS_PER_PAGE
UNAUTHORIZED = {"error": "You need to sign in or sign up before continuing."}
ALWAYS_OPEN = [{"day_of_week": d, "closed_all_day": False, "open_all_day": True,
                "open_hour": 0, "open_minutes": 0, "close_hour": 23, "close_minutes": 59}
               for d in range(7)]


@dataclass
class Message:
    id: int
    conversation_id: int
    content: str
    message_type: str
    private: bool
    created_at: float
    sender: dict[str, Any] | None
    source_id: str | None = None
    content_attributes: dict[str, Any] = field(default_factory=dict)

    def api(self) -> dict[str, Any]:
        """As `GET /messages` and `POST /messages` answer (push_event_data)."""
        return {"id": self.id, "content": self.content, "inbox_id": 1,
                "conversation_id": self.conversation_id,
                "message_type": MESSAGE_TYPES[self.message_type], "content_type": "text",
                "content_attributes": self.content_attributes,
                "created_at": int(self.created_at), "private": self.private,
                "source_id": self.source_id, "sender": self.sender,
                "sender_type": (self.sender or {}).get("type")}


@dataclass
class Conversation:
    id: int
    contact_id: int
    source_id: str
    custom_attributes: dict[str, Any]
    additional_attributes: dict[str, Any]
    status: str = "open"
    assignee: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)


class ChatwootStandIn:
    def __init__(self, *, account_id: int = 7, inbox_id: int = 3,
                 access_token: str = "cw-user-token-" + "x" * 12,
                 webhook_secret: str = "inbox-secret-1234567890") -> None:
        self.account_id, self.inbox_id = account_id, inbox_id
        self.access_token, self.webhook_secret = access_token, webhook_secret
        self.webhook_url = ""  # the API inbox's webhook URL, set in Chatwoot's settings
        self.contacts: dict[int, dict[str, Any]] = {}
        self.contact_inboxes: dict[str, int] = {}  # source_id -> contact id
        self.conversations: dict[int, Conversation] = {}
        self.messages: list[Message] = []
        self.working_hours_enabled = False
        self.working_hours = ALWAYS_OPEN
        self.timezone = "Asia/Shanghai"
        self.down = False  # answers 503 to every call, as while restarting
        self.webhooks_lost = False  # deliveries fail (kefu unreachable): gone for good
        self.sign = True  # an older install (before v4.13) signs nothing
        self.duplicate_webhooks = False  # each delivery arrives twice (a network replay)
        self.lost_answers = 0  # this many message posts are made, then answered 502
        self.refused_resolves = 0  # this many toggle_status calls are answered 500
        # every new contact refused with this 422 message, as by a rule kefu cannot satisfy
        # (a validation added by a plugin, a plan's contact limit)
        self.contact_refusal: str | None = None
        self.delivered: list[dict[str, Any]] = []  # webhooks that reached kefu
        self.calls: list[tuple[str, str]] = []  # (method, path) of every API call
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(1001)
        self._server: TestServer | None = None
        self.url = ""
        self._session: aiohttp.ClientSession | None = None
        self.agents = {"alice": {"id": 11, "name": "Alice", "email": "alice@shop.example",
                                 "type": "user"},
                       "bob": {"id": 12, "name": "Bob", "email": "bob@shop.example",
                               "type": "user"}}
        self.api_user = {"id": 99, "name": "kefu bridge", "email": "kefu@shop.example",
                         "type": "user"}

    async def start(self) -> ChatwootStandIn:
        app = web.Application(middlewares=[self._auth])
        base = f"/api/v1/accounts/{self.account_id}"
        app.router.add_post(f"{base}/contacts", self._create_contact)
        app.router.add_get(f"{base}/contacts/search", self._search_contacts)
        app.router.add_get(f"{base}/contacts/{{id:\\d+}}", self._show_contact)
        app.router.add_put(f"{base}/contacts/{{id:\\d+}}", self._update_contact)
        app.router.add_delete(f"{base}/contacts/{{id:\\d+}}", self._delete_contact)
        app.router.add_post(f"{base}/contacts/{{id}}/contact_inboxes", self._contact_inbox)
        app.router.add_get(f"{base}/contacts/{{id}}/conversations", self._contact_conversations)
        app.router.add_post(f"{base}/conversations", self._create_conversation)
        app.router.add_get(f"{base}/conversations/{{id}}", self._get_conversation)
        app.router.add_get(f"{base}/conversations/{{id}}/messages", self._list_messages)
        app.router.add_post(f"{base}/conversations/{{id}}/messages", self._post_message)
        app.router.add_post(f"{base}/conversations/{{id}}/toggle_status", self._toggle_status)
        app.router.add_post(f"{base}/conversations/{{id}}/assignments", self._assignments)
        app.router.add_get(f"{base}/inboxes/{{id}}", self._get_inbox)
        self._server, self.url = await serve(app)
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._server is not None:
            await self._server.close()

    # the API

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append((request.method, request.path))
        if self.down:
            return web.Response(status=503, text="Service Unavailable")
        if not hmac.compare_digest(request.headers.get("api_access_token", ""),
                                   self.access_token):
            return web.json_response(UNAUTHORIZED, status=401)
        return await handler(request)

    def _contact(self, contact_id: int) -> dict[str, Any]:
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "Resource could not be found"}),
                                   content_type="application/json")
        return contact

    def _conversation(self, request: web.Request) -> Conversation:
        conversation = self.conversations.get(int(request.match_info["id"]))
        if conversation is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "Resource could not be found"}),
                                   content_type="application/json")
        return conversation

    def _invalid(self, fields: dict[str, Any], contact_id: int | None = None
                 ) -> web.Response | None:
        """Chatwoot's validations of a contact, in the model's order; None when valid."""
        others = [c for c in self.contacts.values() if c["id"] != contact_id]
        errors: list[tuple[str, str]] = []
        email = fields.get("email")
        if email:
            if any(str(c.get("email") or "") == email for c in others):
                errors.append(("email", "Email has already been taken"))
            if not EMAIL.match(email):
                errors.append(("email", "Email Invalid email"))
        identifier = fields.get("identifier")
        if identifier and any(c.get("identifier") == identifier for c in others):
            errors.append(("identifier", "Identifier has already been taken"))
        phone = fields.get("phone_number")
        if phone:
            if any(c.get("phone_number") == phone for c in others):
                errors.append(("phone_number", "Phone number has already been taken"))
            if not E164.match(phone):
                errors.append(("phone_number", "Phone number should be in e164 format"))
        if not errors:
            return None
        return web.json_response({"message": ", ".join(m for _, m in errors),
                                  "attributes": list(dict.fromkeys(a for a, _ in errors))},
                                 status=422)

    @staticmethod
    def _fields(body: dict[str, Any]) -> dict[str, Any]:
        """The permitted params; an email is kept in lower case, a blank one as null."""
        fields = {k: body[k] for k in ("name", "identifier", "email", "phone_number")
                  if k in body}
        if "email" in fields:
            fields["email"] = str(fields["email"] or "").lower() or None
        return fields

    async def _create_contact(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.contact_refusal is not None:
            return web.json_response({"message": self.contact_refusal, "attributes": ["base"]},
                                     status=422)
        fields = self._fields(body)
        refused = self._invalid(fields)
        if refused is not None:
            return refused
        contact_id = next(self._ids)
        contact = {"id": contact_id, "name": fields.get("name") or "",
                   "email": fields.get("email"), "phone_number": fields.get("phone_number"),
                   "identifier": fields.get("identifier"),
                   "custom_attributes": body.get("custom_attributes") or {},
                   "additional_attributes": body.get("additional_attributes") or {},
                   "type": "contact", "thumbnail": ""}
        self.contacts[contact_id] = contact
        return web.json_response({"payload": {"contact": contact, "contact_inbox": {
            "inbox": None, "source_id": None}}})

    async def _show_contact(self, request: web.Request) -> web.Response:
        return web.json_response({"payload": self._contact(int(request.match_info["id"]))})

    async def _update_contact(self, request: web.Request) -> web.Response:
        contact = self._contact(int(request.match_info["id"]))
        body = await request.json()
        fields = self._fields(body)
        refused = self._invalid(fields, contact["id"])
        if refused is not None:
            return refused
        contact.update(fields)
        for merged in ("custom_attributes", "additional_attributes"):
            if isinstance(body.get(merged), dict):
                contact[merged] = {**contact[merged], **body[merged]}
        return web.json_response({"payload": contact})

    async def _delete_contact(self, request: web.Request) -> web.Response:
        """`has_many :conversations, dependent: :destroy_async`, and the rest of it."""
        contact = self._contact(int(request.match_info["id"]))
        del self.contacts[contact["id"]]
        gone = {c.id for c in self.conversations.values() if c.contact_id == contact["id"]}
        for conversation_id in gone:
            del self.conversations[conversation_id]
        self.messages = [m for m in self.messages if m.conversation_id not in gone]
        self.contact_inboxes = {k: v for k, v in self.contact_inboxes.items()
                                if v != contact["id"]}
        return web.Response(status=200)

    async def _search_contacts(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "").strip().lower()
        if not q:
            return web.json_response({"error": "Specify search string with parameter q"},
                                     status=422)
        page = max(int(request.query.get("page", "1")), 1)
        found = [c for c in self.contacts.values() if any(
            q in str(c.get(k) or "").lower()
            for k in ("name", "email", "phone_number", "identifier"))]
        listed = found[(page - 1) * SEARCH_PAGE:page * SEARCH_PAGE]
        return web.json_response({"meta": {"count": len(listed), "current_page": page,
                                           "has_more": len(found) > page * SEARCH_PAGE},
                                  "payload": listed})

    async def _contact_inbox(self, request: web.Request) -> web.Response:
        contact = self._contact(int(request.match_info["id"]))
        body = await request.json()
        if int(body.get("inbox_id", 0)) != self.inbox_id:
            return web.json_response({"error": "Inbox not found"}, status=404)
        source_id = str(body.get("source_id") or uuid.uuid4())
        if self.contact_inboxes.get(source_id, contact["id"]) != contact["id"]:
            return web.json_response({"message": "Source has already been taken"}, status=422)
        self.contact_inboxes[source_id] = contact["id"]
        return web.json_response({"source_id": source_id, "inbox": {"id": self.inbox_id,
                                                                     "name": "kefu"}})

    async def _contact_conversations(self, request: web.Request) -> web.Response:
        contact = self._contact(int(request.match_info["id"]))
        return web.json_response({"payload": [self.conversation_data(c)
                                              for c in self.conversations.values()
                                              if c.contact_id == contact["id"]]})

    async def _create_conversation(self, request: web.Request) -> web.Response:
        body = await request.json()
        source_id = str(body.get("source_id", ""))
        contact_id = self.contact_inboxes.get(source_id)
        if contact_id is None or int(body.get("inbox_id", 0)) != self.inbox_id:
            return web.json_response({"error": "Contact inbox not found"}, status=404)
        conversation = Conversation(
            id=len(self.conversations) + 1, contact_id=contact_id, source_id=source_id,
            custom_attributes=body.get("custom_attributes") or {},
            additional_attributes=body.get("additional_attributes") or {},
            status=body.get("status") or "open")
        self.conversations[conversation.id] = conversation
        return web.json_response(self.conversation_data(conversation))

    async def _get_conversation(self, request: web.Request) -> web.Response:
        return web.json_response(self.conversation_data(self._conversation(request)))

    async def _list_messages(self, request: web.Request) -> web.Response:
        conversation = self._conversation(request)
        after = int(request.query.get("after", 0))
        mine = [m for m in self.messages if m.conversation_id == conversation.id]
        listed = [m for m in mine if m.id > after][:100] if "after" in request.query \
            else mine[-20:]  # without `after`: the latest 20
        return web.json_response({"meta": {"contact": self._contact(conversation.contact_id),
                                           "assignee": conversation.assignee},
                                  "payload": [m.api() for m in listed]})

    async def _post_message(self, request: web.Request) -> web.Response:
        conversation = self._conversation(request)
        body = await request.json()
        message_type = body.get("message_type", "outgoing")
        if message_type not in ("incoming", "outgoing"):
            return web.json_response({"error": "Invalid message type"}, status=422)
        private = bool(body.get("private", False))
        sender = (self._contact(conversation.contact_id) if message_type == "incoming"
                  else self.api_user)
        message = await self.add_message(conversation, str(body.get("content", "")),
                                         message_type, private, sender,
                                         source_id=body.get("source_id"))
        if self.lost_answers:  # done, but the answer is lost on the way back
            self.lost_answers -= 1
            return web.Response(status=502, text="Bad Gateway")
        return web.json_response(message.api())

    async def _toggle_status(self, request: web.Request) -> web.Response:
        conversation = self._conversation(request)
        if self.refused_resolves:
            self.refused_resolves -= 1
            return web.json_response({"error": "Internal Server Error"}, status=500)
        status = (await request.json()).get("status", "open")
        await self.set_status(conversation, status)
        return web.json_response({"meta": {}, "payload": {
            "success": True, "current_status": status, "conversation_id": conversation.id}})

    async def _assignments(self, request: web.Request) -> web.Response:
        conversation = self._conversation(request)
        body = await request.json()
        if "assignee_id" not in body:
            return web.json_response(None)
        agent = next((a for a in self.agents.values() if a["id"] == body["assignee_id"]),
                     None)
        await self._assigned(conversation, agent)
        return web.json_response(agent)

    async def _get_inbox(self, request: web.Request) -> web.Response:
        if int(request.match_info["id"]) != self.inbox_id:
            return web.json_response({"error": "Resource could not be found"}, status=404)
        return web.json_response({
            "id": self.inbox_id, "name": "kefu", "channel_type": "Channel::Api",
            "webhook_url": self.webhook_url, "working_hours_enabled": self.working_hours_enabled,
            "working_hours": self.working_hours, "timezone": self.timezone,
            "out_of_office_message": "We are closed"})

    # what Chatwoot sends

    def conversation_data(self, conversation: Conversation) -> dict[str, Any]:
        contact = self._contact(conversation.contact_id)
        return {
            "id": conversation.id, "account_id": self.account_id, "inbox_id": self.inbox_id,
            "status": conversation.status, "channel": "Channel::Api", "can_reply": True,
            "custom_attributes": conversation.custom_attributes,
            "additional_attributes": conversation.additional_attributes,
            "contact_inbox": {"contact_id": contact["id"], "inbox_id": self.inbox_id,
                              "source_id": conversation.source_id},
            "meta": {"sender": contact, "assignee": conversation.assignee, "team": None},
            "messages": [], "timestamp": int(conversation.created_at),
            "created_at": int(conversation.created_at), "unread_count": 0}

    async def add_message(self, conversation: Conversation, content: str, message_type: str,
                          private: bool, sender: dict[str, Any] | None,
                          source_id: str | None = None) -> Message:
        if message_type == "incoming" and conversation.status == "resolved":
            await self.set_status(conversation, "open")  # a customer's message reopens it
        message = Message(next(self._message_ids), conversation.id, content, message_type,
                          private, time.time(), sender, source_id)
        self.messages.append(message)
        await self._webhook({
            "event": "message_created", "id": message.id, "content": content,
            "created_at": datetime.fromtimestamp(message.created_at, UTC).isoformat(),
            "message_type": message_type, "content_type": "text", "private": private,
            "content_attributes": {}, "source_id": source_id, "sender": sender,
            "contact": self._contact(conversation.contact_id),
            "inbox": {"id": self.inbox_id, "name": "kefu"},
            "conversation": self.conversation_data(conversation),
            "account": {"id": self.account_id, "name": "Shop"}})
        return message

    async def set_status(self, conversation: Conversation, status: str) -> None:
        before, conversation.status = conversation.status, status
        if before != status:
            await self._webhook({**self.conversation_data(conversation),
                                 "event": "conversation_status_changed",
                                 "changed_attributes": [{"status": {
                                     "previous_value": before, "current_value": status}}]})

    async def _webhook(self, payload: dict[str, Any]) -> None:
        """Posted once: Chatwoot's WebhookJob does not retry an API inbox's deliveries."""
        if not self.webhook_url or self._session is None:
            return
        body = json.dumps(payload)
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Chatwoot-Delivery": str(uuid.uuid4())}
        if self.sign:
            digest = hmac.new(self.webhook_secret.encode(), f"{timestamp}.{body}".encode(),
                              hashlib.sha256).hexdigest()
            headers |= {"X-Chatwoot-Timestamp": timestamp,
                        "X-Chatwoot-Signature": f"sha256={digest}"}
        if self.webhooks_lost:
            return
        for _ in range(2 if self.duplicate_webhooks else 1):
            try:
                async with self._session.post(self.webhook_url, data=body.encode(),
                                              headers=headers) as response:
                    if response.status < 300:
                        self.delivered.append(payload)
            except aiohttp.ClientError:
                return  # lost

    # agents in Chatwoot's dashboard

    def add_contact(self, **fields: Any) -> dict[str, Any]:
        """A contact your staff made in Chatwoot before kefu came."""
        contact_id = next(self._ids)
        self.contacts[contact_id] = {
            "id": contact_id, "name": "", "email": None, "phone_number": None,
            "identifier": None, "custom_attributes": {}, "additional_attributes": {},
            "type": "contact", "thumbnail": "", **fields}
        return self.contacts[contact_id]

    def delete_conversation(self, conversation: Conversation) -> None:
        """An administrator deletes a conversation (DELETE /conversations/{id})."""
        del self.conversations[conversation.id]
        self.messages = [m for m in self.messages if m.conversation_id != conversation.id]

    def conversation_of(self, kefu_conversation_id: str) -> Conversation:
        (found,) = [c for c in self.conversations.values()
                    if c.custom_attributes.get("kefu_conversation_id") == kefu_conversation_id]
        return found

    def thread(self, conversation: Conversation) -> list[Message]:
        return [m for m in self.messages if m.conversation_id == conversation.id]

    async def assign(self, conversation: Conversation, agent: str) -> None:
        await self._assigned(conversation, self.agents[agent])

    async def _assigned(self, conversation: Conversation, agent: dict[str, Any] | None
                        ) -> None:
        before = (conversation.assignee or {}).get("id")
        conversation.assignee = agent
        await self._webhook({**self.conversation_data(conversation),
                             "event": "conversation_updated", "changed_attributes": [
                                 {"assignee_id": {"previous_value": before,
                                                  "current_value": (agent or {}).get("id")}}]})

    async def reply(self, conversation: Conversation, agent: str, text: str) -> Message:
        return await self.add_message(conversation, text, "outgoing", False, self.agents[agent])

    async def note(self, conversation: Conversation, agent: str, text: str) -> Message:
        return await self.add_message(conversation, text, "outgoing", True, self.agents[agent])

    async def bot_says(self, conversation: Conversation, text: str) -> Message:
        return await self.add_message(conversation, text, "outgoing", False,
                                      {"id": 5, "name": "Captain", "type": "agent_bot"})

    async def resolve(self, conversation: Conversation) -> None:
        await self.set_status(conversation, "resolved")
