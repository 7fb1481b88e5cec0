"""The calls kefu makes to Chatwoot's Application API (`/api/v1/accounts/<id>/...`).

Written by hand on aiohttp: Chatwoot publishes no Python client, and the few community ones
are unmaintained and cover other endpoints. The access token goes in the `api_access_token`
header only, so it is never part of a URL, an error or a log line.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bot.http import LazySession
from handoff.bridges.chatwoot.settings import ChatwootSettings

SEARCH_PAGES = 20  # Chatwoot's search gives 15 contacts a page; an exact match is near
MESSAGE_PAGES = 1000  # `after` gives 100 messages a call


class ChatwootError(Exception):
    """A call that failed: `status` is Chatwoot's HTTP status, 0 when it was not reached;
    `attributes` the fields a 422 refused (Chatwoot's `render_record_invalid`)."""

    def __init__(self, what: str, status: int, detail: str) -> None:
        super().__init__(f"{what}: " + (f"HTTP {status} {detail}" if status else detail))
        self.status = status
        self.attributes: list[str] = []
        try:
            body = json.loads(detail)
        except ValueError:
            return
        if isinstance(body, dict) and isinstance(body.get("attributes"), list):
            self.attributes = [str(a) for a in body["attributes"]]


class ChatwootApi:
    def __init__(self, settings: ChatwootSettings) -> None:
        self._settings = settings
        self._base = (f"{settings.base_url.rstrip('/')}/api/v1/accounts/"
                      f"{settings.account_id}")
        self._http = LazySession(settings.timeout_seconds)

    async def _call(self, method: str, path: str, what: str, *,
                    body: dict[str, Any] | None = None,
                    query: dict[str, str] | None = None) -> Any:
        headers = {"api_access_token": self._settings.access_token,
                   "User-Agent": "kefu-chatwoot-bridge"}
        try:
            async with self._http.get().request(method, self._base + path, json=body,
                                                params=query, headers=headers) as response:
                if response.status >= 300:
                    detail = (await response.text())[:300]
                    raise ChatwootError(what, response.status, detail)
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChatwootError(what, 0, f"unreachable: {type(exc).__name__} {exc}"[:300]
                                ) from None

    async def aclose(self) -> None:
        await self._http.aclose()

    # contacts

    async def search_contacts(self, q: str) -> list[dict[str, Any]]:
        """Every contact Chatwoot's search gives for `q` (a substring of the name, email,
        phone number or identifier), page after page."""
        found: list[dict[str, Any]] = []
        for page in range(1, SEARCH_PAGES + 1):
            answer = await self._call("GET", "/contacts/search", "contacts/search",
                                      query={"q": q, "page": str(page)})
            listed = list(answer.get("payload") or [])
            found += listed
            more = (answer.get("meta") or {}).get("has_more")
            if not listed or more is False or (more is None and len(listed) < 15):
                break
        return found

    async def find_contact(self, field: str, value: str) -> dict[str, Any] | None:
        """The contact whose `field` (identifier, email, phone_number) is `value`."""
        wanted = value.lower() if field == "email" else value
        for contact in await self.search_contacts(value):
            have = str(contact.get(field) or "")
            if (have.lower() if field == "email" else have) == wanted:
                return contact
        return None

    async def contact_by_identifier(self, identifier: str) -> dict[str, Any] | None:
        return await self.find_contact("identifier", identifier)

    async def create_contact(self, contact: dict[str, Any]) -> dict[str, Any]:
        """The new contact; ChatwootError 422 when Chatwoot refuses it (a taken identifier,
        email or phone number, or one it finds malformed: `attributes` says which)."""
        made = await self._call("POST", "/contacts", "contacts", body=contact)
        return dict(made["payload"]["contact"])

    async def contact(self, contact_id: int) -> dict[str, Any]:
        return dict((await self._call("GET", f"/contacts/{contact_id}", "contact"))["payload"])

    async def update_contact(self, contact_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Chatwoot merges `custom_attributes` into the contact's: other keys stay."""
        return dict((await self._call("PUT", f"/contacts/{contact_id}", "update contact",
                                      body=fields))["payload"])

    async def delete_contact(self, contact_id: int) -> None:
        """The contact and, in Chatwoot, its conversations; done already when it is gone."""
        try:
            await self._call("DELETE", f"/contacts/{contact_id}", "delete contact")
        except ChatwootError as exc:
            if exc.status != 404:
                raise

    async def add_contact_inbox(self, contact_id: int, source_id: str) -> None:
        """The contact writes through kefu's inbox as `source_id`; kept if already there."""
        try:
            await self._call("POST", f"/contacts/{contact_id}/contact_inboxes",
                             "contact_inboxes", body={"inbox_id": self._settings.inbox_id,
                                                      "source_id": source_id})
        except ChatwootError as exc:
            if exc.status != 422:  # 422: that source id exists already
                raise

    async def conversations_of(self, contact_id: int) -> list[dict[str, Any]]:
        found = await self._call("GET", f"/contacts/{contact_id}/conversations",
                                 "contacts/conversations")
        return list(found.get("payload", []))

    # conversations

    async def create_conversation(self, source_id: str, contact_id: int,
                                  custom_attributes: dict[str, Any],
                                  additional_attributes: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("POST", "/conversations", "conversations", body={
            "source_id": source_id, "inbox_id": self._settings.inbox_id,
            "contact_id": contact_id, "status": "open",
            "custom_attributes": custom_attributes,
            "additional_attributes": additional_attributes}))

    async def conversation(self, conversation_id: int) -> dict[str, Any]:
        return dict(await self._call("GET", f"/conversations/{conversation_id}",
                                     "conversation"))

    async def messages_after(self, conversation_id: int, after: int) -> list[dict[str, Any]]:
        """Every message past `after`, oldest first (Chatwoot answers 100 at a time)."""
        found: list[dict[str, Any]] = []
        for _ in range(MESSAGE_PAGES):
            answer = await self._call("GET", f"/conversations/{conversation_id}/messages",
                                      "messages", query={"after": str(after)})
            listed = list(answer.get("payload") or [])
            found += listed
            if len(listed) < 100:
                break
            after = max(int(m["id"]) for m in listed)
        return found

    async def post_message(self, conversation_id: int, content: str, *, incoming: bool,
                           private: bool, source_id: str) -> dict[str, Any]:
        return dict(await self._call(
            "POST", f"/conversations/{conversation_id}/messages", "post message", body={
                "content": content, "message_type": "incoming" if incoming else "outgoing",
                "private": private, "source_id": source_id}))

    async def resolve(self, conversation_id: int) -> None:
        await self._call("POST", f"/conversations/{conversation_id}/toggle_status",
                         "toggle_status", body={"status": "resolved"})

    async def inbox(self) -> dict[str, Any]:
        return dict(await self._call("GET", f"/inboxes/{self._settings.inbox_id}", "inbox"))
